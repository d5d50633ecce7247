"""Acquisition geometry of a 2D surface seismic survey: grid, time sampling, wavelet, sources, receivers.

Cells are indexed ``(z, x)``: ``z`` the depth index (0 at the surface), ``x``
the lateral index; cell ``(i, j)`` sits at depth ``i dx`` and offset ``j dx``
(metres).  The source wavelet is the Ricker wavelet

    w(t) = (1 - 2 pi^2 f^2 (t - t0)^2) exp(-pi^2 f^2 (t - t0)^2),   t = k dt,  k = 0..nt-1,

with peak frequency ``f`` (Hz) and delay ``t0 = 1.5 / f`` (s), so the
wavelet starts at ``w(0) ~ 1e-9`` rather than with a jump.

:func:`openfwi_survey` builds the OpenFWI acquisition (Deng et al. 2022):
70 x 70 cells of 10 m, 1000 steps of 1 ms, 15 Hz, 5 sources and 70
receivers one cell (10 m) below the surface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError

__all__ = ["Survey", "ricker", "openfwi_survey", "surface_line"]


def ricker(peak_frequency: float, nt: int, dt: float, delay: float | None = None,
           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Ricker wavelet ``w(k dt)``, shape ``(nt,)``; peak frequency in Hz, ``dt`` and ``delay`` in s."""
    if not (peak_frequency > 0 and math.isfinite(peak_frequency)):
        raise InvalidParameterError(f"peak_frequency must be a finite number > 0 (Hz); got {peak_frequency}")
    t0 = 1.5 / peak_frequency if delay is None else float(delay)
    t = torch.arange(int(nt), dtype=torch.float64) * float(dt) - t0
    a = (math.pi * peak_frequency * t) ** 2
    return ((1 - 2 * a) * torch.exp(-a)).to(dtype)


def surface_line(count: int, width: int, depth: int = 1) -> np.ndarray:
    """``count`` cells ``(depth, x)`` spread evenly over ``x = 0 .. width - 1`` (rounded), shape ``(count, 2)``."""
    if count < 1:
        raise InvalidParameterError(f"count must be >= 1; got {count}")
    x = np.rint(np.linspace(0, width - 1, count)).astype(np.int64) if count > 1 else np.array([(width - 1) // 2])
    return np.stack([np.full(count, depth, dtype=np.int64), x], axis=1)


@dataclass(frozen=True, eq=False)
class Survey:
    """A 2D survey on a grid of ``shape = (nz, nx)`` cells of ``dx`` metres.

    Attributes
    ----------
    shape
        ``(nz, nx)``: cells in depth and laterally.
    dx
        Grid spacing (m), the same in both directions.
    dt, nt
        Time step (s) and number of time samples of the records.
    peak_frequency
        Peak frequency of the Ricker wavelet (Hz).
    sources
        ``(n_shots, 2)`` integer cells ``(z, x)``: one source per shot.
    receivers
        ``(n_receivers, 2)`` integer cells: the same receivers record every shot.
    wavelet
        ``(nt,)`` source time function (default :func:`ricker` at ``peak_frequency``).
    """

    shape: tuple[int, int]
    dx: float
    dt: float
    nt: int
    peak_frequency: float
    sources: np.ndarray
    receivers: np.ndarray
    wavelet: torch.Tensor | None = None

    def __post_init__(self) -> None:
        nz, nx = (int(s) for s in self.shape)
        if nz < 2 or nx < 2:
            raise InvalidParameterError(f"the model needs at least 2 x 2 cells; got shape {self.shape}")
        object.__setattr__(self, "shape", (nz, nx))
        for name in ("dx", "dt", "peak_frequency"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidParameterError(f"{name} must be a finite number > 0; got {value!r}")
        if int(self.nt) < 2:
            raise InvalidParameterError(f"nt must be >= 2 time samples; got {self.nt}")
        object.__setattr__(self, "nt", int(self.nt))
        for name in ("sources", "receivers"):
            cells = np.asarray(getattr(self, name))
            if cells.ndim != 2 or cells.shape[1] != 2 or len(cells) == 0:
                raise InvalidParameterError(f"{name} must be an (n, 2) array of (z, x) cells with n >= 1; "
                                            f"got shape {cells.shape}")
            if not np.issubdtype(cells.dtype, np.integer):
                if not np.array_equal(cells, np.rint(cells)):
                    raise InvalidParameterError(f"{name} must be integer cell indices (z, x)")
                cells = np.rint(cells)
            cells = cells.astype(np.int64)
            outside = (cells[:, 0] < 0) | (cells[:, 0] >= nz) | (cells[:, 1] < 0) | (cells[:, 1] >= nx)
            if outside.any():
                raise InvalidParameterError(
                    f"{int(outside.sum())} of the {name} lie outside the model of {nz} x {nx} cells (first: "
                    f"{tuple(cells[outside][0])}); allowed z in [0, {nz - 1}], x in [0, {nx - 1}]")
            object.__setattr__(self, name, cells)
        wavelet = ricker(self.peak_frequency, self.nt, self.dt) if self.wavelet is None else self.wavelet
        wavelet = torch.as_tensor(wavelet, dtype=torch.float64).detach()
        if wavelet.shape != (self.nt,) or not bool(torch.isfinite(wavelet).all()):
            raise InvalidParameterError(f"wavelet must be a finite tensor of shape ({self.nt},); got "
                                        f"{tuple(wavelet.shape)}")
        object.__setattr__(self, "wavelet", wavelet)

    @property
    def n_shots(self) -> int:
        return len(self.sources)

    @property
    def n_receivers(self) -> int:
        return len(self.receivers)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """Shape of one sample's shot gathers: ``(n_shots, n_receivers, nt)``."""
        return (self.n_shots, self.n_receivers, self.nt)

    def times(self) -> np.ndarray:
        """Sample times ``k dt`` (s)."""
        return np.arange(self.nt) * self.dt

    def describe(self) -> dict:
        """The survey's parameters as plain numbers (stored beside data sets and in reports)."""
        return {"nz": self.shape[0], "nx": self.shape[1], "dx": self.dx, "dt": self.dt, "nt": self.nt,
                "peak_frequency": self.peak_frequency, "n_shots": self.n_shots, "n_receivers": self.n_receivers,
                "source_depth_cells": int(self.sources[0, 0]), "receiver_depth_cells": int(self.receivers[0, 0])}


def openfwi_survey(nz: int = 70, nx: int = 70, dx: float = 10.0, nt: int = 1000, dt: float = 1e-3,
                   peak_frequency: float = 15.0, n_shots: int = 5, n_receivers: int | None = None,
                   depth: int = 1) -> Survey:
    """The OpenFWI acquisition (defaults): sources and receivers spread evenly along the row ``depth``.

    ``n_receivers`` defaults to one per lateral cell (``nx``).
    """
    return Survey((nz, nx), dx, dt, nt, peak_frequency, surface_line(n_shots, nx, depth),
                  surface_line(nx if n_receivers is None else n_receivers, nx, depth))
