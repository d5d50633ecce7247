"""DPS and EnKG on a linear-Gaussian problem whose posterior is known, exact call counts, bad input."""

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.invert import IdentityParametrization, InverseProblem, sample_dps, sample_enkg
from physinv.learn.diffusion import GaussianMixturePrior

N, S, NOISE = 8, 1.0, 0.1


def observe(x):
    return x[..., ::2, ::2]


def _problem(seed=3):
    """Prior N(0, S^2 I) on 8x8, every other pixel observed with noise 0.1: the posterior mean of an
    observed pixel is S^2 y / (S^2 + NOISE^2), of an unobserved one 0."""
    prior = GaussianMixturePrior(torch.zeros(1, N, N, dtype=torch.float64), S)
    truth = prior.sample(1, seed=seed)[0]
    gen = torch.Generator().manual_seed(seed)
    y = observe(truth) + NOISE * torch.randn(N // 2, N // 2, dtype=torch.float64, generator=gen)
    problem = InverseProblem(observe, y, NOISE, lambda m: m.new_zeros(()), IdentityParametrization())
    return problem, prior, S**2 * y / (S**2 + NOISE**2)


def _relative(a, b):
    return float((a - b).norm() / b.norm())


def test_dps_mean_matches_the_posterior_mean_and_counts_calls():
    problem, prior, posterior_mean = _problem()
    result = sample_dps(problem, prior, samples=16, steps=100, zeta=0.3, seed=1)
    # observed pixels: the posterior mean to 5% (prior mean 0 is 100% off); measured 1.2%
    assert _relative(observe(result.m), posterior_mean) < 0.05
    # unobserved pixels keep the prior's spread (1): 16 draws of a unit Gaussian, std within 30%
    assert abs(float(result.spread[1::2, 1::2].mean()) - S) < 0.3
    assert (result.calls.forward, result.calls.adjoint) == (16 * 100 + 1, 16 * 100)
    assert result.samples.shape == (16, N, N) and len(result.calls_history) == 100


def test_enkg_mean_matches_the_posterior_mean_without_gradients():
    problem, prior, posterior_mean = _problem()
    result = sample_enkg(problem, prior, ensemble=64, steps=50, guidance_scale=0.5, seed=1)
    assert _relative(observe(result.m), posterior_mean) < 0.05  # measured 2.0%
    assert (result.calls.forward, result.calls.adjoint) == (64 * 50 + 1, 0)
    # the guidance fits the data: the mean's misfit ratio well below the prior mean's (about 10)
    prior_ratio = problem.misfit_over_noise(torch.zeros(N, N, dtype=torch.float64))
    assert result.misfit_ratio < 0.2 * prior_ratio


def test_without_guidance_no_simulator_is_called_and_the_prior_is_sampled():
    problem, prior, _ = _problem()
    result = sample_enkg(problem, prior, ensemble=400, steps=60, guidance_scale=0.0, seed=2)
    assert result.calls.forward == 1  # the mean's report only
    # Euler on the probability-flow ODE, 60 levels: the pointwise std of unit-Gaussian draws within 10%
    assert abs(float(result.spread.mean()) - S) < 0.1
    dps = sample_dps(problem, prior, samples=4, steps=20, zeta=0.0)
    assert (dps.calls.forward, dps.calls.adjoint) == (1, 0)


def test_bad_input_is_refused():
    problem, prior, _ = _problem()
    other = GaussianMixturePrior(torch.zeros(1, 16, 16, dtype=torch.float64), S)
    for sampler in (sample_dps, sample_enkg):
        with pytest.raises(ShapeMismatchError, match=r"prior's fields of shape \(16, 16\) do not fit"):
            sampler(problem, other)
        with pytest.raises(InvalidParameterError, match="steps must be an integer >= 1"):
            sampler(problem, prior, steps=0)
    with pytest.raises(InvalidParameterError, match="samples must be an integer >= 1"):
        sample_dps(problem, prior, samples=0)
    with pytest.raises(InvalidParameterError, match="ensemble must be an integer >= 2"):
        sample_enkg(problem, prior, ensemble=1)
    with pytest.raises(InvalidParameterError, match="zeta"):
        sample_dps(problem, prior, zeta=float("nan"))
    y = problem.data.clone()
    y[0, 0] = float("nan")
    with pytest.raises(InvalidParameterError, match="data contains 1 NaN"):
        InverseProblem(observe, y, NOISE, lambda m: m.new_zeros(()), IdentityParametrization())
