"""Inverse design at a budget: gradient descent, CEM, guided diffusion; exact call counts."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.invert import (DesignProblem, DesignResult, SimulatorCalls, calls_to_reach, design_cem, design_diffusion,
                            design_gradient, diffusion_design_calls)
from physinv.learn.diffusion import GaussianMixturePrior, StationaryGaussianPrior


def _linear_problem():
    """``f(x) = 1/2 ||A x - y||^2`` with ``A`` (6, 4) of singular values in [1, 2]; optimum ``x_star``."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 4, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor([1.0, 1.3, 1.7, 2.0], dtype=torch.float64)) @ v.T
    x_star = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
    y = a @ x_star
    problem = DesignProblem(lambda x: x @ a.T, lambda out: 0.5 * ((out - y) ** 2).sum(-1), (4,))
    return problem, x_star, a


def _starts(count, seed=1):
    return 3 * torch.randn(count, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mixture():
    """Three well separated components (distance >= 4.2 = 8.5 std); the objective prefers component 2."""
    means = torch.tensor([[3.0, 0, 0, 0], [-3.0, 0, 0, 0], [0, 3.0, 0, 0]], dtype=torch.float64)
    prior = GaussianMixturePrior(means, 0.5)
    w = torch.tensor([[1.0, 0.5, 0, 0], [0, 1.0, 0.5, 0], [0.2, 0, 0, 1.0]], dtype=torch.float64)
    goal = means[2] @ w.T
    problem = DesignProblem(lambda x: x @ w.T, lambda out: ((out - goal) ** 2).sum(-1), (4,))
    return problem, prior


# ---------------------------------------------------------------------------------------------
# gradient descent


def test_gradient_sgd_reaches_the_known_optimum_with_exact_call_counts():
    problem, x_star, a = _linear_problem()
    lipschitz = float(torch.linalg.matrix_norm(a, 2) ** 2)  # 4: step 1/L converges at rate 1 - 1/4
    result = design_gradient(problem, _starts(2), budget=1001, lr=1 / lipschitz, optimizer="sgd")
    # K = (1001 - 2) // 4 = 249 gradient evaluations of 2 starts, then one final evaluation
    assert result.calls == SimulatorCalls(forward=2 * 250, adjoint=2 * 249)
    assert problem.calls == result.calls
    assert result.iterations == 249 and len(result.history) == 250
    assert result.history[-1] == (500, 498, result.value)
    # contraction 0.75^249 from a start ~5 away: machine precision
    assert float((result.design - x_star).norm()) < 1e-8
    assert float((result.designs - x_star).norm(dim=1).max()) < 1e-8
    assert result.value < 1e-15


def test_gradient_adam_reaches_the_optimum_and_counts_through_decode():
    problem, x_star, _ = _linear_problem()
    # search u with x = 2 u + 1: the latent optimum is (x_star - 1) / 2
    result = design_gradient(problem, _starts(3) / 2, budget=1503, lr=0.05, decode=lambda u: 2 * u + 1)
    assert result.calls == SimulatorCalls(forward=3 * 251, adjoint=3 * 250)  # K = 1500 // 6
    assert result.method == "gradient-adam"
    # Adam with a constant step ends in a small oscillation around the optimum
    assert float((result.design - x_star).norm()) < 1e-2


def test_gradient_stops_at_target_and_calls_to_reach_agrees():
    problem, _, a = _linear_problem()
    result = design_gradient(problem, _starts(2), budget=10_000, lr=0.25, optimizer="sgd", target=1e-6)
    assert result.value <= 1e-6 and result.message.startswith("target")
    assert result.calls.adjoint == result.calls.forward  # stopped right after a gradient evaluation
    assert calls_to_reach(result, 1e-6) == result.total_calls < 10_000


# ---------------------------------------------------------------------------------------------
# cross-entropy method


def test_cem_reaches_the_optimum_of_a_4d_quadratic():
    center = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    problem = DesignProblem(lambda x: x, lambda x: ((x - center) ** 2).sum(-1), (4,))
    result = design_cem(problem, torch.zeros(4, dtype=torch.float64), 2.0, budget=3050, population=100, elites=10,
                        seed=3)
    assert result.calls == SimulatorCalls(forward=3000, adjoint=0)  # 30 generations of 100
    assert result.iterations == 30 and len(result.history) == 30
    assert [h[0] for h in result.history] == list(range(100, 3001, 100))
    # elite fraction 0.1 shrinks the spread ~3x a generation: 30 generations reach rounding level
    assert float((result.design - center).norm()) < 1e-4
    assert float((result.info["mean"] - center).norm()) < 1e-4
    # the history's best value never increases
    bests = [h[2] for h in result.history]
    assert all(b1 <= b0 for b0, b1 in zip(bests, bests[1:]))


def test_cem_in_a_latent_parametrization():
    center = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    problem = DesignProblem(lambda x: x, lambda x: ((x - center) ** 2).sum(-1), (4,))
    result = design_cem(problem, torch.zeros(2, 2, dtype=torch.float64), 1.0, budget=2000, population=100,
                        elites=10, decode=lambda u: 2 * u.reshape(-1, 4) - 1, seed=0)
    assert result.designs.shape == (100, 4)
    assert float((result.design - center).norm()) < 1e-3
    assert float((result.info["mean"].reshape(4) - (center + 1) / 2).norm()) < 1e-3


# ---------------------------------------------------------------------------------------------
# guided diffusion


def _component2_share(prior, designs):
    return float(prior.responsibilities(designs, prior.sigma_min)[:, 2].mean())


@pytest.mark.parametrize("method", ["ancestral", "euler"])
def test_diffusion_guidance_ends_in_the_preferred_component(method):
    problem, prior = _mixture()
    budget = diffusion_design_calls(8, 40, 0.2, None, guided_steps=0.5)
    assert budget == SimulatorCalls(forward=8 * 21, adjoint=8 * 20)  # 20 guided steps + final evaluation
    result = design_diffusion(problem, prior, budget=budget.forward + budget.adjoint, particles=8, steps=40,
                              guidance_scale=0.2, resample_every=None, guided_steps=0.5, seed=0,
                              method=method)
    assert result.calls == budget and result.method == "diffusion"
    assert _component2_share(prior, result.designs) > 0.9
    assert _component2_share(prior, result.design[None]) > 0.9
    # the same sampler unguided: each component holds ~1/3 of 64 particles (sd 0.06; 30 seeds: max 0.53)
    free = design_diffusion(problem, prior, budget=64, particles=64, steps=40, guidance_scale=0.0,
                            resample_every=None, seed=0, method=method)
    assert free.calls == SimulatorCalls(forward=64)
    assert _component2_share(prior, free.designs) < 0.6


def test_diffusion_resampling_alone_ends_in_the_preferred_component():
    problem, prior = _mixture()
    expected = diffusion_design_calls(32, 40, 0.0, 2, guided_steps=0.5)
    assert expected == SimulatorCalls(forward=32 * 11, adjoint=0)  # 10 resamplings + final evaluation
    result = design_diffusion(problem, prior, budget=10_000, particles=32, steps=40, guidance_scale=0.0,
                              resample_every=2, guided_steps=0.5, temperature=1.0, seed=1)
    assert result.calls == expected and result.method == "diffusion-resample"
    assert result.info["resamplings"] == 10 and all(0 < e <= 1 for e in result.info["ess"])
    assert _component2_share(prior, result.designs) > 0.9
    # only the final samples are candidates by default: best is inf until the last batch
    assert all(math.isinf(h[2]) for h in result.history[:-1]) and result.history[-1][2] == result.value
    assert calls_to_reach(result, result.value) == 32 * 11


def test_diffusion_respects_a_short_budget():
    problem, prior = _mixture()
    # a guided step costs 16 calls, 8 are kept for the final evaluation: 5 guided steps (80) + 8
    result = design_diffusion(problem, prior, budget=100, particles=8, steps=40, guidance_scale=0.2,
                              resample_every=None, guided_steps=0.5)
    assert result.calls == SimulatorCalls(forward=48, adjoint=40)
    assert result.info["guided_steps"] == 5 and result.message.startswith("budget spent")
    assert torch.isfinite(result.designs).all()


def test_budgets_are_never_exceeded():
    problem, _, _ = _linear_problem()
    g = design_gradient(problem, _starts(3), budget=10, lr=0.1)
    assert g.calls == SimulatorCalls(forward=6, adjoint=3)  # K = (10 - 3) // 6 = 1
    c = design_cem(problem, torch.zeros(4, dtype=torch.float64), 1.0, budget=250, population=100, elites=10)
    assert c.calls == SimulatorCalls(forward=200)
    for r in (g, c):
        assert r.total_calls <= r.history[-1][0] + r.history[-1][1] <= 250


def test_calls_to_reach_on_a_hand_made_history():
    result = DesignResult(torch.zeros(1), 1.0, torch.zeros(1, 1), torch.zeros(1), "hand",
                          history=[(10, 0, math.inf), (20, 0, 5.0), (20, 10, 3.0), (40, 20, 1.0)])
    assert calls_to_reach(result, 10.0) == 20
    assert calls_to_reach(result, 5.0) == 20
    assert calls_to_reach(result, 4.0) == 30
    assert calls_to_reach(result, 1.0) == 60
    assert calls_to_reach(result, 0.5) is None


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_clear_errors():
    problem, _, _ = _linear_problem()
    start = _starts(2)
    mean = torch.zeros(4, dtype=torch.float64)
    for bad_budget in (0, -5):
        with pytest.raises(InvalidParameterError, match="budget"):
            design_gradient(problem, start, budget=bad_budget, lr=0.1)
        with pytest.raises(InvalidParameterError, match="budget"):
            design_cem(problem, mean, 1.0, budget=bad_budget, population=10, elites=2)
    with pytest.raises(InvalidParameterError, match="budget"):
        design_cem(problem, mean, 1.0, budget=50, population=100, elites=10)  # less than one generation
    nan_start = start.clone()
    nan_start[1, 2] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        design_gradient(problem, nan_start, budget=100, lr=0.1)
    with pytest.raises(ShapeMismatchError, match=r"\(B, 4\)"):
        design_gradient(problem, torch.zeros(2, 5, dtype=torch.float64), budget=100, lr=0.1)
    with pytest.raises(ShapeMismatchError):
        problem.evaluate(torch.zeros(4, dtype=torch.float64))  # no batch axis
    with pytest.raises(InvalidParameterError, match="elites"):
        design_cem(problem, mean, 1.0, budget=1000, population=10, elites=20)
    with pytest.raises(InvalidParameterError, match="optimizer"):
        design_gradient(problem, start, budget=100, lr=0.1, optimizer="lbfgs")
    with pytest.raises(InvalidParameterError, match="lr"):
        design_gradient(problem, start, budget=100, lr=-1.0)
    nan_objective = DesignProblem(lambda x: x, lambda x: x.sum(-1) * float("nan"), (4,))
    with pytest.raises(InvalidParameterError, match="NaN/Inf"):
        nan_objective.evaluate(start)
    wrong_values = DesignProblem(lambda x: x, lambda x: x, (4,))
    with pytest.raises(ShapeMismatchError, match="one value per design"):
        wrong_values.evaluate(start)


def test_diffusion_bad_input_raises():
    problem, prior = _mixture()
    field_prior = StationaryGaussianPrior(torch.randn(4, 6, 6, generator=torch.Generator().manual_seed(0),
                                                      dtype=torch.float64))
    with pytest.raises(ShapeMismatchError, match="shape"):
        design_diffusion(problem, field_prior, budget=100)  # a prior over (6, 6) fields for (4,) designs
    with pytest.raises(InvalidParameterError, match="budget"):
        design_diffusion(problem, prior, budget=0)
    with pytest.raises(InvalidParameterError, match="budget"):
        design_diffusion(problem, prior, budget=4, particles=8)  # cannot pay the final evaluation
    with pytest.raises(InvalidParameterError, match="guided_steps"):
        design_diffusion(problem, prior, budget=100, guided_steps=0.0)
    with pytest.raises(InvalidParameterError, match="diffusion step"):
        design_diffusion(problem, prior, budget=100, method="heun")
    with pytest.raises(InvalidParameterError, match="temperature"):
        design_diffusion(problem, prior, budget=100, temperature=0.0)


def test_cem_decodes_each_generation_once():
    center = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    problem = DesignProblem(lambda x: x, lambda x: ((x - center) ** 2).sum(-1), (4,))
    decoded = []

    def decode(u):
        decoded.append(u.shape[0])
        return 2 * u.reshape(-1, 4) - 1

    result = design_cem(problem, torch.zeros(2, 2, dtype=torch.float64), 1.0, budget=200, population=20,
                        elites=4, decode=decode, seed=0)
    assert result.iterations == 10
    assert decoded == [1] + [20] * 10  # the check of decode(mean), then one decode per generation
    torch.testing.assert_close(result.values, ((result.designs - center) ** 2).sum(-1))


def test_gradient_final_evaluation_decodes_once():
    problem, _, _ = _linear_problem()
    decoded = []

    def decode(u):
        decoded.append(u.requires_grad)
        return 2 * u + 1

    result = design_gradient(problem, _starts(2), budget=2 * 3 + 2, lr=0.01, decode=decode)
    assert result.iterations == 1
    # check of decode(start), one gradient step (with autograd), the final evaluation (once, no autograd)
    assert decoded == [False, True, False]
