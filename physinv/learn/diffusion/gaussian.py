r"""Priors with an exact denoiser: a stationary Gaussian field and a Gaussian mixture.

Both implement :class:`~physinv.learn.diffusion.prior.DiffusionPrior` with the exact posterior
mean :math:`D(x, \sigma) = E[x_0 \mid x_0 + \sigma\varepsilon = x]`, so every sampler can be run
and compared on the same prior without training a network (the CPU setting of the diffusion
case; the trained :class:`~physinv.learn.diffusion.unet.UNetPrior` is the paper-sized one).

**Stationary Gaussian field.**  For samples :math:`w_1..w_J` of fields on the periodic
``n x n`` grid, the prior is :math:`N(\mu, C)` with :math:`\mu` the sample mean and :math:`C` the
circulant (translation-invariant) covariance whose eigenvalue on each Fourier mode is the
samples' mean power there,

.. math::

    \lambda(k) = \frac{1}{J} \sum_j |\mathcal F(w_j - \mu)(k)|^2 / n^2,

full rank wherever the samples have power (unlike the rank-``J - 1`` sample covariance).  As a
parametrization it is :math:`w = \mu + \mathcal F^{-1}(\sqrt\lambda\,\mathcal F(z))` of a white
:math:`z \sim N(0, I)`: with the penalty :math:`\tfrac12\|z\|^2` the minimizer of
:math:`\tfrac12\|(G(w) - y)/\sigma\|^2 + \tfrac12\|z\|^2` is the MAP estimate under
:math:`N(\mu, C)`.  Its denoiser is the Wiener filter

.. math::

    D(x, \sigma) = \mu + \mathcal F^{-1}\Big(\frac{\lambda}{\lambda + \sigma^2}\,\mathcal F(x - \mu)\Big).

The power is kept per mode, not averaged over shells (a Kolmogorov forcing makes a flow anisotropic).

**Gaussian mixture.**  :math:`p(x_0) = \sum_k \pi_k N(x_0; \mu_k, s^2 I)` has

.. math::

    D(x, \sigma) = \sum_k r_k(x) \Big(\mu_k + \frac{s^2}{s^2 + \sigma^2}(x - \mu_k)\Big), \qquad
    r_k \propto \pi_k \exp\Big(-\frac{\|x - \mu_k\|^2}{2(s^2 + \sigma^2)}\Big),

e.g. an inclusion prior whose components are the inclusion fields of a finite catalogue.
"""

from __future__ import annotations

import math

import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.diffusion.prior import check_prior_input

__all__ = ["GaussianMixturePrior", "StationaryGaussianPrior"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _check_count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidParameterError(f"count must be an integer >= 1; got {count!r}")
    return count


class StationaryGaussianPrior:
    """``N(mu, C)`` on the periodic ``n x n`` grid fitted to samples ``(J, n, n)`` (module docstring).

    Call it on a white ``z`` ``(..., n, n)`` for ``mu + irfft2(sqrt(lambda) rfft2(z))``;
    :meth:`inverse` whitens; :meth:`denoise` is the exact denoiser; :meth:`sample` draws.
    """

    name = "stationary-gaussian"

    def __init__(self, samples: torch.Tensor):
        if samples.ndim != 3 or samples.shape[0] < 2 or samples.shape[1] != samples.shape[2]:
            raise InvalidParameterError(f"samples must be (J, n, n) with J >= 2; got {tuple(samples.shape)}")
        check_finite("samples", samples)
        n = samples.shape[-1]
        self.mean = samples.mean(0)
        self.eigenvalues = (torch.fft.rfft2(samples - self.mean).abs() ** 2).mean(0) / n**2
        self.amplitude = self.eigenvalues.sqrt()
        self.shape = (n, n)
        self.sigma_max = 80.0 * float(samples.std())
        self.sigma_min = 1e-3 * float(samples.std())

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + torch.fft.irfft2(self.amplitude * torch.fft.rfft2(z), s=self.shape)

    def inverse(self, w: torch.Tensor) -> torch.Tensor:
        """The white ``z`` of ``w`` (modes without prior power map to 0)."""
        spectrum = torch.fft.rfft2(w - self.mean)
        safe = torch.where(self.amplitude > 0, self.amplitude, torch.ones_like(self.amplitude))
        return torch.fft.irfft2(torch.where(self.amplitude > 0, spectrum / safe, torch.zeros_like(spectrum)),
                                s=self.shape)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """The Wiener filter ``mu + irfft2(lambda / (lambda + sigma^2) rfft2(x - mu))``."""
        sigma = check_prior_input(self, x, sigma)
        lam = self.eigenvalues.to(x.dtype)
        gain = lam / (lam + sigma.reshape(-1, 1, 1) ** 2)
        mean = self.mean.to(x.dtype)
        return mean + torch.fft.irfft2(gain * torch.fft.rfft2(x - mean), s=self.shape)

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` exact draws ``(count, n, n)`` (``count`` an integer >= 1)."""
        count = _check_count(count)
        z = torch.randn(count, *self.shape, dtype=self.mean.dtype, generator=_generator(seed))
        return self(z.to(self.mean.device))


class GaussianMixturePrior:
    """``sum_k weights_k N(means_k, std^2 I)`` over fields ``means.shape[1:]`` (module docstring).

    ``means`` is ``(K, *shape)``; ``std > 0`` the within-component standard deviation (field
    units); ``weights`` ``(K,)`` positive (default uniform), normalized here.
    """

    name = "gaussian-mixture"

    def __init__(self, means: torch.Tensor, std: float, weights: torch.Tensor | None = None):
        if means.ndim < 2 or means.shape[0] < 1:
            raise InvalidParameterError(f"means must be (K, *shape) with K >= 1; got {tuple(means.shape)}")
        check_finite("means", means)
        if not (math.isfinite(std) and std > 0):
            raise InvalidParameterError(f"std must be finite and > 0; got {std!r}")
        if weights is None:
            weights = torch.ones(means.shape[0], dtype=means.dtype, device=means.device)
        check_finite("weights", weights)
        if weights.shape != (means.shape[0],) or bool((weights <= 0).any()):
            raise ShapeMismatchError(f"weights must be ({means.shape[0]},) and positive; got {tuple(weights.shape)}")
        self.means, self.std = means, float(std)
        self.log_weights = torch.log(weights / weights.sum())
        self.shape = tuple(means.shape[1:])
        spread = float((means - means.mean(0)).pow(2).mean().sqrt()) + self.std
        self.sigma_max = 80.0 * spread
        self.sigma_min = 1e-3 * self.std

    def responsibilities(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """``r_k(x)`` ``(B, K)``: the components' posterior probabilities given ``x = x0 + sigma eps``."""
        return self._responsibilities(x, check_prior_input(self, x, sigma))

    def _responsibilities(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """:meth:`responsibilities` for ``sigma`` already checked (a ``(B,)`` tensor of :func:`check_prior_input`)."""
        var = self.std**2 + sigma**2
        flat_x, flat_mu = x.reshape(x.shape[0], -1), self.means.to(x.dtype).reshape(self.means.shape[0], -1)
        sq = torch.cdist(flat_x, flat_mu) ** 2
        return torch.softmax(self.log_weights.to(x.dtype) - sq / (2 * var[:, None]), dim=1)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        sigma = check_prior_input(self, x, sigma)
        r = self._responsibilities(x, sigma)
        shrink = (self.std**2 / (self.std**2 + sigma**2)).reshape(-1, *([1] * len(self.shape)))
        mean = torch.tensordot(r, self.means.to(x.dtype), dims=1)  # sum_k r_k mu_k
        return mean + shrink * (x - mean)

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` exact draws ``(count, *shape)`` (``count`` an integer >= 1)."""
        count = _check_count(count)
        gen = _generator(seed)
        k = torch.multinomial(self.log_weights.exp().cpu().double(), count, replacement=True, generator=gen)
        noise = torch.randn(count, *self.shape, dtype=self.means.dtype, generator=gen).to(self.means.device)
        return self.means[k.to(self.means.device)] + self.std * noise
