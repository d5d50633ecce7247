"""Classic flame fit: recovery, Laplace sigmas against a Monte-Carlo spread, errors."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.invert import OptimizationResult
from physinv.problems.flame.fit import (
    FlameObservations,
    fit_flame,
    laplace_covariance,
    observation_points,
    synthetic_observations,
)
from physinv.problems.flame.model import DEFAULT_PARAMS
from physinv.problems.flame.solver import solve_flame

LAM, EA = DEFAULT_PARAMS["lam"], DEFAULT_PARAMS["Ea"]
FIT_GRID = 601  # coarser than the data's 3001 nodes: s_L differs by ~3e-5, far below the 2% noise


@pytest.fixture(scope="module")
def s_true():
    return solve_flame(0.46, grid=3001).s_L


def test_noise_free_data_are_recovered_tightly(s_true):
    obs = synthetic_observations(0.46, 10, 0.0, seed=0)
    res = fit_flame(obs, grid=1501)  # from lambda = 0.03, E_a = 1.5e5
    assert res.converged, res.message
    assert res.params["lam"] == pytest.approx(LAM, rel=2e-4)
    assert res.params["Ea"] == pytest.approx(EA, rel=5e-5)
    assert res.params["sL"] == pytest.approx(s_true, rel=5e-5)
    assert res.misfit_ratio < 0.05  # data and fit differ only by the grid (weights: 0.1% nominal)
    assert res.objective_history[-1] < 1e-6 * res.objective_history[0]


def test_noisy_data_are_recovered_within_three_sigma(s_true):
    obs = synthetic_observations(0.46, 10, 0.02, seed=0)
    res = fit_flame(obs, grid=FIT_GRID)
    for k, true in (("lam", LAM), ("Ea", EA), ("sL", s_true)):
        assert abs(res.params[k] - true) < 3 * res.sigma[k], (k, res.params[k], res.sigma[k])
        assert abs(res.params[k] / true - 1) < 0.03
    assert 0.3 < res.misfit_ratio < 2.0
    assert -1 < res.correlation < 1
    # one result type: both passes (fit, re-weighted refit) are counted, each iteration one Jacobian
    assert isinstance(res, OptimizationResult) and len(res.beta_path) == 2
    assert res.iterations == sum(steps for _, _, steps in res.beta_path)
    assert res.calls.linearized >= res.iterations and res.wall_time > 0


def test_laplace_sigmas_agree_with_monte_carlo_spread(s_true):
    """Spread of the estimates over 24 noise draws vs the Gauss-Newton 1-sigma (the estimator is nearly linear
    at 2% noise; with 24 draws the sample standard deviation is itself uncertain by ~15%)."""
    draws = 24
    est, sig = [], []
    for seed in range(100, 100 + draws):
        obs = synthetic_observations(0.46, 10, 0.02, seed=seed)
        res = fit_flame(obs, grid=FIT_GRID, initial={"lam": LAM, "Ea": EA}, maxiter=20)
        est.append([res.params["lam"], res.params["Ea"], res.params["sL"]])
        sig.append([res.sigma["lam"], res.sigma["Ea"], res.sigma["sL"]])
    est, sig = np.array(est), np.array(sig)
    spread = est.std(axis=0, ddof=1)
    laplace = sig.mean(axis=0)
    ratio = spread / laplace
    assert np.all(ratio > 0.6) and np.all(ratio < 1.6), ratio
    # and no gross bias: the mean is within 3 standard errors of the truth
    bias = est.mean(axis=0) - np.array([LAM, EA, s_true])
    assert np.all(np.abs(bias) < 3 * spread / np.sqrt(draws)), bias / spread


def test_laplace_covariance_of_a_linear_model():
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    sigma = torch.rand(30, generator=gen, dtype=torch.float64) + 0.5
    cov = laplace_covariance(J, sigma)
    W = torch.diag(1 / sigma**2)
    torch.testing.assert_close(cov, torch.linalg.inv(J.T @ W @ J))
    with pytest.raises(InvalidParameterError, match="not identifiable"):
        laplace_covariance(torch.stack([J[:, 0], 2 * J[:, 0]], 1), sigma)


def test_observations_are_reproducible_and_noisy_as_stated():
    a = synthetic_observations(0.46, 25, 0.02, seed=3)
    b = synthetic_observations(0.46, 25, 0.02, seed=3)
    np.testing.assert_array_equal(a.T, b.T)
    np.testing.assert_array_equal(a.x, observation_points(25))
    rel = np.concatenate([a.T / a.clean_T - 1, a.u / a.clean_u - 1])
    assert 0.01 < rel.std() < 0.03
    assert a.clean_u[0] == pytest.approx(solve_flame(0.46, grid=3001).s_L, rel=1e-12)  # u(0) = s_L


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: FlameObservations([0, 1e-3], [298.0, 3000.0], [0.34, 3.0], 0.02), "at least 3"),
        (lambda: FlameObservations([0, 5e-4, 1e-3], [298.0, np.nan, 3000.0], [0.34, 1.0, 3.0], 0.02), "NaN"),
        (lambda: FlameObservations([0, 5e-4, 1e-3], [298.0, 900.0, 3000.0], [0.34, 1.0, 3.0], 1.5), "noise"),
        (lambda: observation_points(2), "at least 3"),
        (lambda: synthetic_observations(0.46, 10, -0.01), "noise"),
        (lambda: synthetic_observations(0.1, 10, 0.02), "phi"),
        (lambda: synthetic_observations(0.46, 10, 0.02, T_in=0.0), "T_in"),
        (lambda: synthetic_observations(0.46, 10, 0.02, p_atm=-1.0), "p_atm"),
    ],
)
def test_bad_data_are_a_clear_error(make, match):
    with pytest.raises(InvalidParameterError, match=match):
        make()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(phi=1.2), "phi"),
        (dict(T_in=-298.0), "T_in"),
        (dict(p_atm=0.0), "p_atm"),
        (dict(method="newton"), "method"),
        (dict(initial={"lam": float("nan")}), "initial lam"),
    ],
)
def test_bad_fit_arguments_are_a_clear_error(kwargs, match):
    obs = FlameObservations(observation_points(5), np.full(5, 1000.0), np.full(5, 1.0), 0.02)
    with pytest.raises(InvalidParameterError, match=match):
        fit_flame(obs, **kwargs)


def test_nan_smuggled_into_observations_is_caught():
    obs = synthetic_observations(0.46, 5, 0.02, seed=0)
    obs.u[2] = np.nan  # mutated after construction
    with pytest.raises(InvalidParameterError, match="NaN"):
        fit_flame(obs)
