r"""What a diffusion prior is to physinv's samplers: a denoiser in the variance-exploding convention.

A prior over fields ``x0`` of shape ``shape`` (e.g. ``(n, n)`` or ``(C, n, n)``, physical
units) is known to the samplers of :mod:`physinv.invert` only through its denoiser

.. math::

    D(x, \sigma) = E[x_0 \mid x = x_0 + \sigma \varepsilon], \qquad \varepsilon \sim N(0, I),

which by Tweedie's formula gives the score of the noised prior,
:math:`\nabla_x \log p_\sigma(x) = (D(x, \sigma) - x) / \sigma^2`.  Any noise schedule maps to
this one: a variance-preserving model (DDPM, :math:`x_t = \sqrt{\bar\alpha_t} x_0 +
\sqrt{1 - \bar\alpha_t}\,\varepsilon`) has :math:`x = x_t / \sqrt{\bar\alpha_t}` and
:math:`\sigma = \sqrt{(1 - \bar\alpha_t)/\bar\alpha_t}`.  ``sigma_max`` is where sampling starts
(there the noised prior is close to :math:`N(0, \sigma_{max}^2 I)` around the data) and
``sigma_min`` the smallest noise level the denoiser is trained for.

Implementations: :class:`~physinv.learn.diffusion.gaussian.StationaryGaussianPrior` and
:class:`~physinv.learn.diffusion.gaussian.GaussianMixturePrior` (exact denoisers) and
:class:`~physinv.learn.diffusion.unet.UNetPrior` (a trained network).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["DiffusionPrior", "check_prior_input"]


@runtime_checkable
class DiffusionPrior(Protocol):
    """``shape``, ``sigma_max``, ``sigma_min`` and ``denoise(x, sigma)`` (module docstring).

    ``denoise`` takes ``x`` of shape ``(B, *shape)`` and ``sigma`` a positive number or a ``(B,)``
    tensor, and returns ``E[x0 | x]`` of ``x``'s shape, differentiably in ``x`` (DPS
    back-propagates through it).
    """

    shape: tuple[int, ...]
    sigma_max: float
    sigma_min: float

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor: ...


def check_prior_input(prior: DiffusionPrior, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """``sigma`` as a ``(B,)`` tensor on ``x``'s device, after checking ``x`` is ``(B, *prior.shape)``.

    Raises :class:`ShapeMismatchError` for a field of another shape (a prior trained on other
    fields) and :class:`InvalidParameterError` for a non-positive or non-finite ``sigma``.
    """
    shape = tuple(prior.shape)
    if tuple(x.shape[1:]) != shape or x.ndim != len(shape) + 1:
        raise ShapeMismatchError(
            f"this prior is over fields of shape {shape}; got a batch of shape {tuple(x.shape)} "
            f"(expected (B, {', '.join(map(str, shape))}))")
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ShapeMismatchError(f"sigma must be a number or a ({x.shape[0]},) tensor; got {tuple(sigma.shape)}")
    if not bool(torch.isfinite(sigma).all()) or bool((sigma <= 0).any()):
        raise InvalidParameterError("sigma (the noise level) must be finite and > 0")
    return sigma
