"""The one seeded Gaussian noise model of the package (README, case studies, data sets).

``add_noise(data, level, seed, scale=...)`` returns the noisy data and the
standard deviation it used, ready to be the ``noise_std`` of an
:class:`~physinv.invert.InverseProblem`.  The scale of the noise:

* ``"absolute"``: std = ``level`` (data units);
* ``"rms"``: std = ``level`` x RMS of each sample's measured entries;
* ``"max"``: std = ``level`` x max |d| of each sample's measured entries;
* ``"multiplicative"``: ``d (1 + level xi)``, std = ``level |d|`` per entry.

A *sample* is made of the trailing ``sample_ndim`` axes (default: all of them,
the whole array is one sample).  ``mask`` (boolean, one sample's shape) marks
the entries that are measured: the scale is taken over those, and only those
get noise.  The draws ``xi ~ N(0, 1)`` come from a private
:class:`torch.Generator` seeded with ``seed`` (float64, the data's shape, on the
CPU), so they are reproducible and independent of the global random state;
:func:`noise_seed` derives distinct seeds for noise levels and data splits.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError

__all__ = ["NOISE_SCALES", "Noisy", "add_noise", "noise_seed"]

NOISE_SCALES = ("absolute", "rms", "max", "multiplicative")
_SEED_STRIDE = 1_000_003  # a prime above 1e4 x any sensible level + stream
_STREAMS = 100


class Noisy(NamedTuple):
    """Noisy data (the input's dtype and device) and the noise standard deviation used.

    ``std`` broadcasts against ``data``: a scalar (``"absolute"``), one value per
    sample with the sample axes kept as size 1 (``"rms"``, ``"max"``), or one per
    entry (``"multiplicative"``).
    """

    data: torch.Tensor
    std: torch.Tensor


def noise_seed(seed: int, level: float = 0.0, stream: int = 0) -> int:
    """A seed for the noise at ``level`` in ``stream`` (a split, a figure set ...) of run ``seed``.

    Parameters
    ----------
    seed : int
        The run's seed (``--seed``).
    level : float
        Noise level; rounded to 1e-4.
    stream : int
        Small integer in [0, 100) naming the use (e.g. test, validation, training data).

    Returns
    -------
    int
        ``1_000_003 (seed + 1) + round(1e4 level) + stream``: distinct for distinct seeds, and for
        distinct (level, stream) pairs when the levels are whole per cent.
    """
    if not (math.isfinite(level) and level >= 0):
        raise InvalidParameterError(f"noise level must be a finite number >= 0; got {level}")
    if not 0 <= int(stream) < _STREAMS:
        raise InvalidParameterError(f"noise stream must be an integer in [0, {_STREAMS}); got {stream}")
    return _SEED_STRIDE * (int(seed) + 1) + int(round(level * 1e4)) + int(stream)


def add_noise(data: torch.Tensor, level: float, seed: int, *, scale: str = "absolute",
              sample_ndim: int | None = None, mask: torch.Tensor | None = None) -> Noisy:
    """White Gaussian noise of the given scale, drawn from a generator seeded with ``seed``.

    Parameters
    ----------
    data : torch.Tensor
        Clean data, finite.
    level : float
        Standard deviation (``"absolute"``, data units) or relative level (the other scales), >= 0.
    seed : int
        Seed of the private generator (e.g. from :func:`noise_seed`).
    scale : str
        One of :data:`NOISE_SCALES` (see the module docstring).
    sample_ndim : int, optional
        Number of trailing axes that form one sample (default: all).
    mask : torch.Tensor, optional
        Boolean, one sample's shape: the measured entries (default: all).

    Returns
    -------
    Noisy
        ``(data, std)``; entries outside ``mask`` are returned unchanged.
    """
    if scale not in NOISE_SCALES:
        raise UnknownNameError(f"unknown noise scale {scale!r}; allowed: {', '.join(NOISE_SCALES)}")
    if not (isinstance(level, (int, float)) and math.isfinite(level) and level >= 0):
        raise InvalidParameterError(f"noise level must be a finite number >= 0; got {level}")
    check_finite("data", data)
    ndim = data.ndim if sample_ndim is None else int(sample_ndim)
    if not 0 <= ndim <= data.ndim:
        raise ShapeMismatchError(f"sample_ndim must be in [0, {data.ndim}] for data of shape {tuple(data.shape)}; "
                                 f"got {sample_ndim}")
    sample_shape = tuple(data.shape[data.ndim - ndim:])
    if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != sample_shape):
        raise ShapeMismatchError(f"mask must be boolean with one sample's shape {sample_shape}; "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
    d = data.detach().to(torch.float64).cpu()
    xi = torch.randn(d.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    if scale == "multiplicative":
        std, noisy = level * d.abs(), d * (1 + level * xi)
    else:
        std = torch.tensor(float(level), dtype=torch.float64)
        if scale != "absolute":
            std = level * _sample_scale(d, scale, ndim, mask)
        noisy = d + std * xi
    if mask is not None:
        noisy = torch.where(mask.cpu(), noisy, d)
    return Noisy(noisy.to(dtype=data.dtype, device=data.device), std.to(dtype=data.dtype, device=data.device))


def _sample_scale(d: torch.Tensor, scale: str, ndim: int, mask: torch.Tensor | None) -> torch.Tensor:
    """RMS or max |d| of each sample's measured entries, the sample axes kept as size 1."""
    batch = d.shape[:d.ndim - ndim]
    flat = d[..., mask.cpu()] if mask is not None else d.reshape(*batch, -1)
    if flat.shape[-1] == 0:
        raise InvalidParameterError("the noise scale needs at least one measured entry per sample")
    value = flat.pow(2).mean(dim=-1).sqrt() if scale == "rms" else flat.abs().amax(dim=-1)
    return value.reshape(*batch, *([1] * ndim))
