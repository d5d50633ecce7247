"""OpenFWI metrics of velocity maps: MAE and MSE of the normalized velocity, SSIM on ``[0, 1]``.

OpenFWI (Deng et al. 2022) scores a predicted velocity map against the true one on the *normalized*
velocity

    u = 2 (v - vmin) / (vmax - vmin) - 1  in [-1, 1]   (vmin = 1500 m/s, vmax = 4500 m/s),

the scale of InversionNet's ``tanh`` output (:func:`normalize_velocity`):

* ``mae = mean |u_pred - u_true|`` and ``mse = mean (u_pred - u_true)^2`` per map;
* ``ssim``: structural similarity of the maps rescaled to ``[0, 1]`` (``(u + 1) / 2``), Gaussian window
  of 11 pixels with ``sigma = 1.5``, ``data_range = 1`` (so ``C1 = 0.01^2``, ``C2 = 0.03^2``), computed by
  torchmetrics' ``structural_similarity_index_measure`` (the ``seismic`` extra; imported on first use).
  torchmetrics pads the maps by reflection (5 pixels) and averages the SSIM map over all pixels; OpenFWI's
  own SSIM code zero-pads instead, which changes the SSIM map at the border pixels only.

Predictions are *not* clipped to ``[-1, 1]``.  :func:`velocity_metrics` gives the means over a batch
and the per-map values.  Every function takes maps ``(B, nz, nx)``, a single map ``(nz, nx)`` or
``(B, 1, nz, nx)``, as torch tensors or numpy arrays, and raises
:class:`~physinv.core.errors.ShapeMismatchError` for maps of different shapes and
:class:`~physinv.core.errors.InvalidParameterError` for NaN or infinite values.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.extras import require
from physinv.problems.seismic.velocity_families import V_MAX, V_MIN

__all__ = ["VMIN", "VMAX", "normalize_velocity", "denormalize_velocity", "mae", "mse", "ssim", "velocity_metrics"]

VMIN, VMAX = V_MIN, V_MAX  # OpenFWI's label range (m/s)
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5


def _check_range(vmin: float, vmax: float) -> None:
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
        raise InvalidParameterError(f"need finite vmin < vmax; got vmin={vmin}, vmax={vmax}")


def normalize_velocity(v, vmin: float = VMIN, vmax: float = VMAX):
    """Velocity (m/s) -> ``2 (v - vmin) / (vmax - vmin) - 1`` (``[-1, 1]`` on ``[vmin, vmax]``); tensor or array."""
    _check_range(vmin, vmax)
    return 2.0 * (v - vmin) / (vmax - vmin) - 1.0


def denormalize_velocity(u, vmin: float = VMIN, vmax: float = VMAX):
    """Inverse of :func:`normalize_velocity`: ``vmin + (u + 1) (vmax - vmin) / 2`` (m/s)."""
    _check_range(vmin, vmax)
    return vmin + (u + 1.0) * (vmax - vmin) / 2.0


def _maps(x, name: str) -> torch.Tensor:
    """``x`` as a float64 tensor ``(B, nz, nx)``, checked for finite values."""
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).detach()
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    elif t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or min(t.shape) < 1:
        raise ShapeMismatchError(f"{name}: expected velocity maps (B, nz, nx), (nz, nx) or (B, 1, nz, nx); "
                                 f"got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    check_finite(name, t)
    return t


def _pair(pred, true) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _maps(pred, "pred"), _maps(true, "true")
    if p.shape != t.shape:
        raise ShapeMismatchError(f"pred and true maps differ in shape: {tuple(p.shape)} vs {tuple(t.shape)}")
    return p, t


def mae(pred, true) -> torch.Tensor:
    """Mean absolute error per map, ``(B,)`` float64 (inputs on one scale, e.g. normalized velocity)."""
    p, t = _pair(pred, true)
    return (p - t).abs().mean(dim=(1, 2))


def mse(pred, true) -> torch.Tensor:
    """Mean squared error per map, ``(B,)`` float64."""
    p, t = _pair(pred, true)
    return (p - t).pow(2).mean(dim=(1, 2))


def ssim(pred, true) -> torch.Tensor:
    """SSIM per map of maps already on ``[0, 1]`` (Gaussian window 11, sigma 1.5, data_range 1), ``(B,)`` float64.

    Maps need at least 6 x 6 pixels (the 5-pixel reflection padding of the 11-pixel window).
    """
    p, t = _pair(pred, true)
    if min(p.shape[1:]) <= SSIM_KERNEL // 2:
        raise ShapeMismatchError(f"SSIM with an {SSIM_KERNEL}-pixel window needs maps of at least "
                                 f"{SSIM_KERNEL // 2 + 1} x {SSIM_KERNEL // 2 + 1} pixels; got {tuple(p.shape[1:])}")
    functional = require("torchmetrics.functional.image", "seismic", "the OpenFWI SSIM metric")
    return functional.structural_similarity_index_measure(
        p[:, None], t[:, None], gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_KERNEL,
        data_range=1.0, reduction="none").reshape(-1)


def velocity_metrics(pred, true, *, normalized: bool = False, vmin: float = VMIN, vmax: float = VMAX) -> dict:
    """OpenFWI metrics of predicted against true velocity maps.

    Parameters
    ----------
    pred, true
        Maps ``(B, nz, nx)`` (or one map ``(nz, nx)``): velocity in m/s, or the normalized velocity in
        ``[-1, 1]`` with ``normalized=True`` (e.g. InversionNet's output).  A mix-up of the two is caught:
        m/s input must not lie within ``[-2, 2]`` and normalized input within ``[-10, 10]``.
    vmin, vmax
        Velocity range of the normalization (m/s).

    Returns
    -------
    dict
        ``mae``, ``mse``, ``ssim``: means over the maps (floats); ``mae_per_sample``,
        ``mse_per_sample``, ``ssim_per_sample``: per-map values, numpy ``(B,)`` float64.
    """
    p, t = _pair(pred, true)
    if normalized:
        worst = float(torch.maximum(p.abs().max(), t.abs().max()))
        if worst > 10:
            raise InvalidParameterError(f"normalized=True but the maps reach |u| = {worst:g}: they look like "
                                        "velocities in m/s (pass normalized=False)")
    else:
        if float(torch.maximum(p.abs().max(), t.abs().max())) <= 2:
            raise InvalidParameterError("the maps lie within [-2, 2]: they look like normalized velocities, "
                                        "not m/s (pass normalized=True)")
        p, t = normalize_velocity(p, vmin, vmax), normalize_velocity(t, vmin, vmax)
    per = {"mae": mae(p, t), "mse": mse(p, t), "ssim": ssim((p + 1) / 2, (t + 1) / 2)}
    out: dict = {k: float(v.mean()) for k, v in per.items()}
    out.update({f"{k}_per_sample": v.numpy() for k, v in per.items()})
    return out
