r"""Second-order statistics of periodic 2D fields, to judge a prior's samples against simulated ones.

For a field :math:`f` on the periodic ``H x W`` grid, :math:`\hat f(k) = \frac{1}{HW}\sum_x f(x)
e^{-2\pi i (k_1 x_1/H + k_2 x_2/W)}` are its Fourier coefficients on the integer wavenumbers
:math:`k = (k_1, k_2)` (``numpy.fft.fftfreq`` times ``H``, ``W``).

- :func:`energy_spectrum`: :math:`E(\kappa) = \big\langle \sum_{k:\ \mathrm{round}(|k|) = \kappa}
  |\hat f(k)|^2 \big\rangle`, the power summed over the shell of integer radius :math:`\kappa`
  and averaged over the samples (the usual energy spectrum: by Parseval
  :math:`\sum_\kappa E(\kappa) = \langle \overline{f^2} \rangle`, the mean square of the fields;
  units: field units squared);
- :func:`two_point_correlation`: :math:`C(r) = \big\langle f'(x) f'(x + r e_a) \big\rangle` over
  samples, grid points :math:`x` and both axes :math:`a`, with :math:`f' = f - \bar f` about the mean
  of all samples and points (field units squared; :math:`C(0)` the variance);
- :func:`spectrum_relative_error`: the metric ``prior_spectrum_rel_err``,
  :math:`\|E_s - E_r\|_2 / \|E_r\|_2` over the shells :math:`\kappa = 1..\kappa_{max}`.
"""

from __future__ import annotations

import math

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["energy_spectrum", "spectrum_relative_error", "two_point_correlation"]


def _as_fields(fields, name: str = "fields") -> torch.Tensor:
    fields = torch.as_tensor(fields)
    if fields.ndim < 2 or fields.is_complex() or min(fields.shape[-2:]) < 2:
        raise ShapeMismatchError(f"{name} must be real 2D fields (..., H, W) with H, W >= 2; got shape "
                                 f"{tuple(fields.shape)}")
    fields = fields.double()
    if not bool(torch.isfinite(fields).all()):
        raise InvalidParameterError(f"{name} contain NaN or Inf values")
    return fields.reshape(-1, *fields.shape[-2:])


def _shells(height: int, width: int) -> torch.Tensor:
    """``round(|k|)`` of every mode of the ``height x width`` grid (int64, ``(H, W)``)."""
    k1 = torch.fft.fftfreq(height, d=1.0 / height, dtype=torch.float64)
    k2 = torch.fft.fftfreq(width, d=1.0 / width, dtype=torch.float64)
    return torch.sqrt(k1[:, None] ** 2 + k2[None, :] ** 2).round().long()


def energy_spectrum(fields) -> torch.Tensor:
    r"""Shell spectrum :math:`E(\kappa)`, ``kappa = 0..max round|k|`` (float64), of fields ``(..., H, W)``.

    Every leading axis counts samples (a ``(C, H, W)`` field is ``C`` samples); see the module
    docstring for the definition (``E.sum()`` equals the mean of ``fields**2``).
    """
    f = _as_fields(fields)
    height, width = f.shape[-2:]
    power = (torch.fft.fft2(f).abs() ** 2).mean(0) / (height * width) ** 2
    shells = _shells(height, width)
    return torch.zeros(int(shells.max()) + 1, dtype=torch.float64).index_add_(0, shells.flatten(), power.flatten())


def two_point_correlation(fields, max_lag: int) -> torch.Tensor:
    r""":math:`C(r)`, ``r = 0..max_lag`` grid cells (float64), of periodic fields ``(..., H, W)`` (module docstring).

    ``max_lag`` must lie in ``[0, min(H, W) // 2]`` (beyond half the period the lags repeat).
    """
    f = _as_fields(fields)
    limit = min(f.shape[-2:]) // 2
    if isinstance(max_lag, bool) or not isinstance(max_lag, int) or not 0 <= max_lag <= limit:
        raise InvalidParameterError(f"max_lag must be an integer in [0, min(H, W) // 2] = [0, {limit}]; "
                                    f"got {max_lag!r}")
    f = f - f.mean()
    out = torch.empty(max_lag + 1, dtype=torch.float64)
    for r in range(max_lag + 1):
        out[r] = 0.5 * ((f * torch.roll(f, -r, dims=-2)).mean() + (f * torch.roll(f, -r, dims=-1)).mean())
    return out


def spectrum_relative_error(samples, reference, k_max: int | None = None) -> float:
    r"""``prior_spectrum_rel_err``: :math:`\|E_s - E_r\|_2 / \|E_r\|_2` over shells ``1..k_max``.

    Parameters
    ----------
    samples, reference
        Fields ``(..., H, W)`` on the same grid: the prior's draws and held-out simulated fields.
    k_max
        Largest shell compared; default ``min(H, W) // 2``, the largest shell that is complete
        (all of whose modes the grid resolves).  The mean (:math:`\kappa = 0`) is left out.

    Notes
    -----
    0 for identical spectra; a prior that reproduces the reference's second-order statistics
    scores near the sampling error of the spectra, :math:`\approx 1/\sqrt{\text{samples per shell}}`.
    """
    s, r = _as_fields(samples, "samples"), _as_fields(reference, "reference")
    if s.shape[-2:] != r.shape[-2:]:
        raise ShapeMismatchError(f"samples are {tuple(s.shape[-2:])} fields, the reference {tuple(r.shape[-2:])}; "
                                 "they must be on the same grid")
    limit = min(s.shape[-2:]) // 2
    k_max = limit if k_max is None else k_max
    if isinstance(k_max, bool) or not isinstance(k_max, int) or not 1 <= k_max <= limit:
        raise InvalidParameterError(f"k_max must be an integer in [1, min(H, W) // 2] = [1, {limit}]; got {k_max!r}")
    e_s, e_r = energy_spectrum(s)[1:k_max + 1], energy_spectrum(r)[1:k_max + 1]
    norm = float(e_r.norm())
    if not norm > 0 or not math.isfinite(norm):
        raise InvalidParameterError("the reference fields have no power in shells 1..k_max (constant fields?)")
    return float((e_s - e_r).norm()) / norm
