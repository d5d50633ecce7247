"""Multiscale full-waveform inversion (FWI): velocity from shot gathers, through the shared inversion stack.

For frequency bands ``f_1 < f_2 < ... `` (the last may be the full band) FWI
minimizes, band after band, each band starting from the previous band's model,

    J_k(m) = 1/2 || (P_k F(1000 m) - P_k d) / sigma ||^2 + beta R(m),    1.5 <= m <= 4.5 (km/s),

with ``F`` the :class:`~physinv.problems.seismic.simulator.AcousticSimulator`
(source wavelet known), ``P_k`` the zero-phase low-pass filter of band ``k``
(:func:`lowpass`), ``m`` the velocity in km/s (so the search variable is of
order one), ``R`` total variation or the H1 seminorm (Tikhonov) of ``m`` on
the grid (lengths in km), and the bounds the velocity range.  Low frequencies
first is the classic remedy for cycle skipping (Bunks et al. 1995): the
misfit of low-passed data is convex over a wider basin around the truth.
Each band is one call of :func:`physinv.invert.minimize_lbfgs` (L-BFGS-B with
the bounds) on an :class:`~physinv.invert.InverseProblem`; the weight
``beta`` is a parameter, chosen by the shared weight rules (the case picks it
by the L-curve on a validation map).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.grid import UniformGrid
from physinv.invert import H1Seminorm, InverseProblem, OptimizationResult, SimulatorCalls, TotalVariation
from physinv.invert.optimize import minimize_lbfgs
from physinv.problems.seismic.simulator import AcousticSimulator

__all__ = ["FWIResult", "KilometresPerSecond", "lowpass", "multiscale_fwi", "fwi_regularizer"]

REGULARIZERS = ("tv", "tikhonov")


class KilometresPerSecond:
    """Parametrization ``v = 1000 m``: the search variable ``m`` is the velocity in km/s."""

    name = "km/s"

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        return 1000.0 * m

    def inverse(self, v: torch.Tensor) -> torch.Tensor:
        return v / 1000.0


def lowpass(d: torch.Tensor, cutoff: float | None, dt: float, order: int = 6) -> torch.Tensor:
    """Zero-phase Butterworth low-pass of ``d`` along its last (time) axis.

    ``D(f) -> D(f) / (1 + (f / cutoff)^(2 order))`` (the gain of a Butterworth filter run forward
    and backward), applied by FFT on the record zero-padded to twice its length, so the filter does
    not wrap late arrivals onto early ones.  Linear, differentiable; ``cutoff`` in Hz (None: identity).
    """
    if cutoff is None:
        return d
    if not (cutoff > 0 and math.isfinite(cutoff)):
        raise InvalidParameterError(f"cutoff must be a frequency > 0 (Hz) or None; got {cutoff}")
    nt = d.shape[-1]
    n = 2 * nt
    f = torch.fft.rfftfreq(n, dt, dtype=d.dtype, device=d.device)
    gain = 1.0 / (1.0 + (f / cutoff) ** (2 * order))
    return torch.fft.irfft(torch.fft.rfft(d, n=n) * gain, n=n)[..., :nt]


def fwi_regularizer(kind: str, shape: tuple[int, int], dx: float, tv_eps: float = 1e-2):
    """``R(m)`` for ``m`` in km/s on the ``(nz, nx)`` cells, the grid's lengths in km: TV or the H1 seminorm."""
    if kind not in REGULARIZERS:
        raise InvalidParameterError(f"regularizer must be one of {REGULARIZERS}; got {kind!r}")
    nz, nx = shape
    grid = UniformGrid((nz - 1, nx - 1), ((nz - 1) * dx / 1000.0, (nx - 1) * dx / 1000.0))
    return TotalVariation(grid, tv_eps) if kind == "tv" else H1Seminorm(grid)


@dataclass
class FWIResult:
    """Outcome of :func:`multiscale_fwi`: the velocity (m/s), one L-BFGS result per band, the total
    simulator calls, the objective history over all bands (one entry per iteration) and the wall time (s)."""

    velocity: torch.Tensor
    bands: list[OptimizationResult]
    cutoffs: tuple[float | None, ...]
    calls: SimulatorCalls = field(default_factory=SimulatorCalls)
    objective_history: list[float] = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def iterations(self) -> int:
        return sum(r.iterations for r in self.bands)


def multiscale_fwi(simulator: AcousticSimulator, data: torch.Tensor, v0: torch.Tensor,
                   cutoffs: tuple[float | None, ...] = (5.0, 8.0, 12.0, None), iterations: int = 20,
                   beta: float = 0.0, regularizer: str = "tv", noise_std: float | None = None,
                   callback: Callable[[int, int, float], None] | None = None) -> FWIResult:
    """Multiscale FWI from the starting velocity ``v0`` (m/s, ``(nz, nx)``) to the shot gathers ``data``.

    Parameters
    ----------
    simulator
        The forward model (its ``velocity_range`` gives the bounds).
    data
        Observed gathers, ``(n_shots, n_receivers, nt)``.
    cutoffs
        Low-pass cutoff (Hz) of each band, increasing; None is the full band.
    iterations
        L-BFGS iterations per band.
    beta, regularizer
        Weight and kind (``"tv"`` or ``"tikhonov"``) of the regularization.
    noise_std
        ``sigma`` weighting the misfit (data units); default 1% of the data's RMS amplitude, so that
        ``beta`` means the same for records of any amplitude.
    callback
        ``callback(band, iteration, objective)`` after each L-BFGS iteration.
    """
    start = time.perf_counter()
    shape = simulator.survey.shape
    if tuple(data.shape) != simulator.survey.data_shape:
        raise ShapeMismatchError(f"data must have shape {simulator.survey.data_shape} (shots, receivers, time); "
                                 f"got {tuple(data.shape)}")
    if tuple(v0.shape) != shape:
        raise ShapeMismatchError(f"v0 must have the model's shape {shape}; got {tuple(v0.shape)}")
    check_finite("data", data)
    simulator.check_parameters(v0)
    finite = [c for c in cutoffs if c is not None]
    if not cutoffs or finite != sorted(finite) or None in cutoffs[:-1]:
        raise InvalidParameterError(f"cutoffs must increase, with None (full band) only last; got {cutoffs}")
    if int(iterations) < 1:
        raise InvalidParameterError(f"iterations must be >= 1 per band; got {iterations}")
    sigma = float(noise_std) if noise_std is not None else 0.01 * float(data.pow(2).mean().sqrt())
    vmin, vmax = simulator.velocity_range
    param = KilometresPerSecond()
    reg = fwi_regularizer(regularizer, shape, simulator.survey.dx)
    dt = simulator.survey.dt
    m = param.inverse(v0.detach())
    result = FWIResult(velocity=v0, bands=[], cutoffs=tuple(cutoffs))
    for k, cutoff in enumerate(cutoffs):
        observed = lowpass(data, cutoff, dt)
        problem = InverseProblem(forward=lambda v, c=cutoff: lowpass(simulator(v), c, dt), data=observed,
                                 noise_std=sigma, regularizer=reg, parametrization=param)
        report = None if callback is None else (lambda i, j, _r, k=k: callback(k, i, j))
        band = minimize_lbfgs(problem, m, beta, maxiter=int(iterations), gtol=1e-8, callback=report,
                              bounds=(vmin / 1000.0, vmax / 1000.0))
        m = band.m
        result.bands.append(band)
        result.calls = result.calls + band.calls
        result.objective_history.extend(band.objective_history)
    result.velocity = param(m).detach()
    result.wall_time = time.perf_counter() - start
    return result
