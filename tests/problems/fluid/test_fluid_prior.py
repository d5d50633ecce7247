"""The stationary Gaussian prior: its draws have the samples' spectrum, and it round-trips."""

import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.problems.fluid.prior import StationaryGaussianPrior


def _samples():
    gen = torch.Generator().manual_seed(0)
    k = torch.fft.fftfreq(16, 1 / 16)
    decay = 1.0 / (1.0 + k[:, None] ** 2 + 2 * k[None, :] ** 2)  # anisotropic spectrum
    white = torch.randn(40, 16, 16, dtype=torch.float64, generator=gen)
    return 3.0 + torch.fft.ifft2(torch.fft.fft2(white) * decay).real


def test_draws_have_the_samples_mean_power_per_mode():
    samples = _samples()
    prior = StationaryGaussianPrior(samples)
    z = torch.randn(4000, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    draws = prior(z)
    power = lambda w: (torch.fft.rfft2(w - w.mean(0)).abs() ** 2).mean(0)  # noqa: E731
    ratio = power(draws)[power(samples) > 1e-3 * power(samples).max()] / power(samples)[
        power(samples) > 1e-3 * power(samples).max()]
    # 4000 draws: each mode's power is a chi-square mean with relative std ~ 1/sqrt(4000) = 1.6%
    assert float((ratio - 1).abs().max()) < 0.1
    torch.testing.assert_close(draws.mean(0), prior.mean, atol=0.05 * float(samples.std()), rtol=0)


def test_inverse_round_trips_and_bad_samples_are_refused():
    samples = _samples()
    prior = StationaryGaussianPrior(samples)
    w = samples[0]
    assert float((prior(prior.inverse(w)) - w).norm() / w.norm()) < 1e-12
    with pytest.raises(InvalidParameterError, match="J >= 2"):
        StationaryGaussianPrior(samples[:1])
    with pytest.raises(InvalidParameterError, match="NaN"):
        StationaryGaussianPrior(samples * float("nan"))
