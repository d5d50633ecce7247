"""A stationary Gaussian prior for periodic fields, fitted to samples, as a whitening parametrization.

For samples ``w_1..w_J`` of fields on the periodic ``n x n`` grid, the prior is
``N(mu, C)`` with ``mu`` the sample mean and ``C`` the circulant (translation-invariant)
covariance whose spectrum is the samples' mean power per Fourier mode,

    P(k) = (1 / J) sum_j |F(w_j - mu)(k)|^2 / n^2,

so ``C`` is full rank wherever the samples have power (unlike the rank-``J - 1`` sample
covariance).  :class:`StationaryGaussianPrior` is the parametrization
``w = mu + F^-1( sqrt(P) F(z) )`` of a white ``z ~ N(0, I)``: with the penalty ``1/2 ||z||^2``
the minimizer of ``1/2 ||(G(w) - y) / sigma||^2 + 1/2 ||z||^2`` is the MAP estimate under
``N(mu, C)``.  The Kolmogorov forcing makes the flow anisotropic, so ``P`` is kept per mode,
not averaged over shells.
"""

from __future__ import annotations

import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError

__all__ = ["StationaryGaussianPrior"]


class StationaryGaussianPrior:
    """``z -> mu + irfft2(sqrt(P) rfft2(z))`` for samples ``(J, n, n)`` (module docstring); ``z`` is ``(n, n)``."""

    name = "stationary-gaussian"

    def __init__(self, samples: torch.Tensor):
        if samples.ndim != 3 or samples.shape[0] < 2 or samples.shape[1] != samples.shape[2]:
            raise InvalidParameterError(f"samples must be (J, n, n) with J >= 2; got {tuple(samples.shape)}")
        check_finite("samples", samples)
        n = samples.shape[-1]
        self.mean = samples.mean(0)
        power = (torch.fft.rfft2(samples - self.mean).abs() ** 2).mean(0) / n**2
        self.amplitude = power.sqrt()

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        n = self.mean.shape[-1]
        return self.mean + torch.fft.irfft2(self.amplitude * torch.fft.rfft2(z), s=(n, n))

    def inverse(self, w: torch.Tensor) -> torch.Tensor:
        """The white ``z`` of ``w`` (modes without prior power map to 0)."""
        n = self.mean.shape[-1]
        spectrum = torch.fft.rfft2(w - self.mean)
        safe = torch.where(self.amplitude > 0, self.amplitude, torch.ones_like(self.amplitude))
        return torch.fft.irfft2(torch.where(self.amplitude > 0, spectrum / safe, torch.zeros_like(spectrum)), s=(n, n))
