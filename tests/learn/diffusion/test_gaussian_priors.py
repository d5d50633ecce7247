"""The exact priors: their denoisers against independent formulas, their draws, the samplers."""

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.diffusion import GaussianMixturePrior, StationaryGaussianPrior, sample_prior


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


def test_wiener_denoiser_equals_the_dense_gaussian_posterior_mean():
    """D(x, s) = mu + C (C + s^2 I)^-1 (x - mu) with the circulant C assembled densely from the prior's draws."""
    samples = _samples()[:, :6, :6].contiguous()
    prior = StationaryGaussianPrior(samples)
    basis = torch.eye(36, dtype=torch.float64).reshape(36, 6, 6)
    columns = prior(basis) - prior.mean  # C^{1/2} e_j (the colouring is symmetric)
    root = columns.reshape(36, 36)
    cov = root @ root.T
    x = torch.randn(3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for sigma in (0.05, 0.7, 20.0):
        dense = prior.mean.reshape(-1) + (cov @ torch.linalg.solve(cov + sigma**2 * torch.eye(36, dtype=torch.float64),
                                                                    (x - prior.mean).reshape(3, 36).T)).T
        torch.testing.assert_close(prior.denoise(x, sigma).reshape(3, 36), dense, atol=1e-10, rtol=1e-10)


def test_mixture_denoiser_is_tweedies_formula():
    """D(x, s) = x + s^2 grad log p_s(x), p_s = sum_k pi_k N(mu_k, (std^2 + s^2) I), the gradient by autograd."""
    gen = torch.Generator().manual_seed(5)
    means = 2.0 * torch.randn(4, 3, 5, dtype=torch.float64, generator=gen)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    prior = GaussianMixturePrior(means, 0.4, weights)
    x = torch.randn(6, 3, 5, dtype=torch.float64, generator=gen) * 2
    for sigma in (0.1, 1.0, 5.0):
        var = 0.4**2 + sigma**2
        xr = x.clone().requires_grad_(True)
        sq = ((xr[:, None] - means[None]) ** 2).flatten(2).sum(-1)
        logp = torch.logsumexp(torch.log(weights) - sq / (2 * var), dim=1).sum()
        score, = torch.autograd.grad(logp, xr)
        torch.testing.assert_close(prior.denoise(x, sigma), x + sigma**2 * score, atol=1e-10, rtol=1e-10)


def test_heun_sampler_reproduces_the_prior_spectrum():
    samples = _samples()
    prior = StationaryGaussianPrior(samples)
    draws = sample_prior(prior, 2000, steps=100, seed=1)
    power = lambda w: (torch.fft.rfft2(w - w.mean(0)).abs() ** 2).mean(0)  # noqa: E731
    keep = power(samples) > 1e-3 * power(samples).max()
    ratio = power(draws)[keep] / power(samples)[keep]
    # 2000 draws: per-mode sampling error ~ 2.2%, so 3.5 standard errors allowed; Euler at 100 steps is 7-17% low
    assert float((ratio - 1).abs().max()) < 0.08
    euler = sample_prior(prior, 2000, steps=100, seed=1, method="euler")
    assert float((power(euler)[keep] / power(samples)[keep]).mean()) < 0.97


def test_mixture_draws_and_bad_arguments():
    means = torch.stack([torch.full((4, 4), v, dtype=torch.float64) for v in (-3.0, 0.0, 3.0)])
    prior = GaussianMixturePrior(means, 0.2)
    draws = sample_prior(prior, 600, steps=60, seed=2)
    label = prior.responsibilities(draws, 1e-6).argmax(1)
    counts = torch.bincount(label, minlength=3).double()
    assert float((counts / 600 - 1 / 3).abs().max()) < 0.07  # binomial std 1.9%
    assert abs(float((draws - means[label]).std()) - 0.2) < 0.02
    with pytest.raises(InvalidParameterError, match="std must be finite and > 0"):
        GaussianMixturePrior(means, 0.0)
    with pytest.raises(ShapeMismatchError, match=r"fields of shape \(4, 4\)"):
        prior.denoise(torch.zeros(2, 5, 5, dtype=torch.float64), 1.0)
    with pytest.raises(InvalidParameterError, match="sigma"):
        prior.denoise(torch.zeros(2, 4, 4, dtype=torch.float64), 0.0)
    with pytest.raises(InvalidParameterError, match="unknown sampler"):
        sample_prior(prior, 2, method="ddim")


def test_sample_counts_and_batch_size_are_checked():
    means = torch.stack([torch.full((4, 4), v, dtype=torch.float64) for v in (-3.0, 3.0)])
    mixture = GaussianMixturePrior(means, 0.2)
    stationary = StationaryGaussianPrior(_samples())
    for prior in (mixture, stationary):
        for count in (0, -1, 2.0, True, "3"):
            with pytest.raises(InvalidParameterError, match="count must be an integer >= 1"):
                prior.sample(count)
        assert prior.sample(1).shape == (1, *prior.shape)
    for batch_size in (0, -4, 1.5, False, None):
        with pytest.raises(InvalidParameterError, match="batch_size must be an integer >= 1"):
            sample_prior(mixture, 2, steps=2, batch_size=batch_size)
    assert sample_prior(mixture, 3, steps=2, batch_size=1).shape == (3, 4, 4)


def test_mixture_denoise_checks_its_input_once_and_matches_the_responsibilities(monkeypatch):
    import physinv.learn.diffusion.gaussian as gaussian

    means = torch.stack([torch.full((4, 4), v, dtype=torch.float64) for v in (-1.0, 2.0)])
    prior = GaussianMixturePrior(means, 0.5)
    x = torch.randn(3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = prior.responsibilities(x, 0.7)
    expected = torch.tensordot(r, means, dims=1)
    expected = expected + 0.25 / (0.25 + 0.49) * (x - expected)
    calls = []
    original = gaussian.check_prior_input
    monkeypatch.setattr(gaussian, "check_prior_input", lambda *a: calls.append(1) or original(*a))
    torch.testing.assert_close(prior.denoise(x, 0.7), expected, rtol=1e-12, atol=1e-12)
    assert len(calls) == 1
