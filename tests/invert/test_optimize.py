import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.verify import taylor_test
from physinv.discretize import UniformGrid
from physinv.invert import (
    H1Seminorm,
    IdentityParametrization,
    InverseProblem,
    discrepancy_principle,
    minimize_gauss_newton,
    minimize_lbfgs,
)


def test_objective_gradient_passes_the_taylor_test(small_problem):
    problem, m0, _ = small_problem
    dm = 0.3 * torch.randn(m0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    result = taylor_test(lambda m: problem.objective(m, 2.0), m0, dm)
    assert 1.9 <= result.slope <= 2.1


def test_lbfgs_and_gauss_newton_reach_the_same_minimizer(small_problem):
    problem, m0, kappa_true = small_problem
    beta = 5.0
    lb = minimize_lbfgs(problem, m0, beta, maxiter=500, gtol=1e-7)
    gn = minimize_gauss_newton(problem, m0, beta, maxiter=40, gtol=1e-7)
    assert lb.converged and gn.converged
    # two different algorithms, one minimizer
    assert lb.objective_history[-1] == pytest.approx(gn.objective_history[-1], rel=1e-8)
    assert float((lb.m - gn.m).abs().max()) < 1e-3
    # Newton-type convergence takes far fewer outer iterations
    assert gn.iterations < lb.iterations / 3
    # monotone decrease of the Gauss-Newton objective (Armijo line search)
    j = gn.objective_history
    assert all(b <= a for a, b in zip(j, j[1:]))


def test_gauss_newton_solves_a_linear_least_squares_problem():
    """F(m) = m at a few points, H1 regularization: J is quadratic; GN is Newton."""
    grid = UniformGrid((6, 6))
    gen = torch.Generator().manual_seed(0)
    index = torch.randperm(grid.num_nodes, generator=gen)[:15]
    forward = lambda m: m.reshape(-1)[index]  # noqa: E731
    data = torch.randn(15, dtype=torch.float64, generator=gen)
    problem = InverseProblem(forward, data, 0.1, H1Seminorm(grid), IdentityParametrization())
    beta = 0.5
    m0 = torch.zeros(grid.node_shape, dtype=torch.float64)
    gn = minimize_gauss_newton(problem, m0, beta, gtol=1e-10, maxiter=20)
    # reference: normal equations (B^T B / sigma^2 + beta L) m = B^T d / sigma^2
    n = grid.num_nodes
    hess = torch.autograd.functional.hessian(lambda v: problem.objective(v.reshape(grid.node_shape), beta),
                                             torch.zeros(n, dtype=torch.float64))
    grad0 = torch.autograd.functional.jacobian(lambda v: problem.objective(v.reshape(grid.node_shape), beta),
                                               torch.zeros(n, dtype=torch.float64))
    exact = torch.linalg.solve(hess, -grad0).reshape(grid.node_shape)
    assert gn.converged
    assert float((gn.m - exact).abs().max()) <= 1e-8 * float(exact.abs().max())
    assert gn.iterations <= 6


def test_discrepancy_principle_lands_in_its_band(small_problem):
    problem, m0, kappa_true = small_problem
    lines = []
    dp = discrepancy_principle(problem, m0, minimize_lbfgs, beta0=100.0, band=0.05,
                               report=lines.append, maxiter=300, gtol=1e-6)
    ratio = dp.misfit_ratio
    assert abs(ratio - 1.0) <= 0.05
    assert len(dp.beta_path) == len(lines) >= 1 and dp.converged
    # the misfit ratio grows with beta along the path
    betas, ratios = zip(*[(b, r) for b, r, _ in dp.beta_path])
    order = sorted(range(len(betas)), key=betas.__getitem__)
    assert all(ratios[a] <= ratios[b] + 1e-6 for a, b in zip(order, order[1:]))
    # and the recovered conductivity is closer to the truth than the start
    err = lambda k: float((k - kappa_true).norm() / kappa_true.norm())  # noqa: E731
    assert err(torch.exp(dp.m)) < 0.5 * err(torch.exp(m0))
    # the one result counts the whole budget: every solve's iterations and simulator calls
    assert dp.iterations == sum(it for _, _, it in dp.beta_path)
    assert dp.calls.adjoint == dp.evaluations >= dp.iterations


def test_inverse_problem_input_errors(small_problem):
    problem, m0, _ = small_problem
    with pytest.raises(InvalidParameterError, match="NaN"):
        InverseProblem(problem.forward, problem.data * float("nan"), 0.1, problem.regularizer)
    with pytest.raises(InvalidParameterError, match="noise_std"):
        InverseProblem(problem.forward, problem.data, -1.0, problem.regularizer)
    with pytest.raises(ShapeMismatchError, match="broadcast"):
        InverseProblem(problem.forward, problem.data, torch.ones(5), problem.regularizer)
    with pytest.raises(InvalidParameterError, match="beta"):
        minimize_lbfgs(problem, m0, beta=-1.0)
    with pytest.raises(InvalidParameterError, match="NaN"):
        minimize_gauss_newton(problem, m0 * math.nan, beta=1.0)


def test_dense_and_matrix_free_gauss_newton_reach_the_same_minimizer(small_problem):
    """Two linearizations of one objective: the dense Jacobian (autograd here) and jvp products."""
    problem, m0, _ = small_problem
    beta = 5.0
    cg = minimize_gauss_newton(problem, m0, beta, maxiter=40, gtol=1e-7)
    dense = minimize_gauss_newton(problem, m0, beta, maxiter=40, gtol=1e-7, linearization="dense")
    assert cg.converged and dense.converged, dense.message
    assert dense.objective_history[-1] == pytest.approx(cg.objective_history[-1], rel=1e-8)
    assert float((dense.m - cg.m).abs().max()) < 1e-4
    # the exact Gauss-Newton system needs no more outer steps than the inexact one
    assert dense.iterations <= cg.iterations
    assert dense.calls.linearized == len(dense.grad_norm_history)  # one Jacobian per formed gradient
    with pytest.raises(UnknownNameError, match="linearization"):
        minimize_gauss_newton(problem, m0, beta, linearization="bfgs")
    with pytest.raises(InvalidParameterError, match="max_step"):
        minimize_gauss_newton(problem, m0, beta, max_step=0.0)


def test_dense_gauss_newton_uses_the_given_jacobian_and_caps_its_steps():
    """A linear model F(m) = A m with its Jacobian given: with max_step the first step is capped,
    and the answer is the normal-equations minimizer."""
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(30, 8, dtype=torch.float64, generator=gen)
    data = torch.randn(30, dtype=torch.float64, generator=gen) * 10
    ridge = lambda m: 0.5 * (m**2).sum()  # noqa: E731
    problem = InverseProblem(lambda m: a @ m, data, 0.5, ridge, IdentityParametrization(), jacobian=lambda m: a)
    gn = minimize_gauss_newton(problem, torch.zeros(8, dtype=torch.float64), 0.3, maxiter=50, gtol=1e-12,
                               max_step=0.5, linearization="dense")
    exact = torch.linalg.solve(a.T @ a / 0.25 + 0.3 * torch.eye(8, dtype=torch.float64), a.T @ data / 0.25)
    assert gn.converged
    assert float((gn.m - exact).abs().max()) <= 1e-9 * float(exact.abs().max())
    assert float(exact.abs().max()) > 0.5 and gn.iterations > 1  # the cap was active


def test_mask_and_projection_define_the_misfit_ratio():
    """Masked entries never enter the residual; the projected ratio uses N = rank of the basis."""
    gen = torch.Generator().manual_seed(5)
    data = torch.randn(4, 5, dtype=torch.float64, generator=gen)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0] = False
    ident = IdentityParametrization()
    zero = lambda m: m.new_zeros(())  # noqa: E731
    problem = InverseProblem(lambda m: m, data, 2.0, zero, ident, mask=mask)
    m = data.clone()
    m[0] += 100.0  # only unobserved entries are wrong
    assert problem.num_data == 15 and problem.misfit_over_noise(m) == 0.0
    basis = torch.linalg.qr(torch.randn(15, 3, dtype=torch.float64, generator=gen)).Q
    projected = InverseProblem(lambda m: m, data, 2.0, zero, ident, mask=mask, projection=basis)
    r = ((torch.zeros(4, 5, dtype=torch.float64) - data) / 2.0)[mask]
    assert projected.num_data == 3
    assert projected.misfit_over_noise(torch.zeros(4, 5, dtype=torch.float64)) == pytest.approx(
        float((basis.T @ r).norm()) / math.sqrt(3), rel=1e-14)
    with pytest.raises(ShapeMismatchError, match="mask"):
        InverseProblem(lambda m: m, data, 2.0, zero, ident, mask=mask[:2])
    with pytest.raises(InvalidParameterError, match="no data"):
        InverseProblem(lambda m: m, data, 2.0, zero, ident, mask=torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(ShapeMismatchError, match="projection"):
        InverseProblem(lambda m: m, data, 2.0, zero, ident, mask=mask, projection=basis[:4])
