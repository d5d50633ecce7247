"""The weight rules (physinv.invert.weight_rules) on a problem whose misfit ratio is known in closed form.

Ridge regression ``F(m) = m`` with ``R(m) = 1/2 |m|^2``: the minimizer is ``m = d / (1 + beta sigma^2)``,
so ``r(beta) = beta sigma^2 / (1 + beta sigma^2) |d / sigma| / sqrt(N)`` and the exact discrepancy
weight solves ``r = tau``.
"""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.invert import (
    IdentityParametrization,
    InverseProblem,
    NuisanceFree,
    OptimizationResult,
    cell_regularizer,
    discrepancy_search,
    lcurve_search,
    minimize_gauss_newton,
)

SIGMA = 0.1


@pytest.fixture
def ridge():
    data = 0.3 * torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    problem = InverseProblem(lambda m: m, data, SIGMA, lambda m: 0.5 * (m**2).sum(), IdentityParametrization(),
                             jacobian=lambda m: torch.eye(50, dtype=torch.float64))

    def solve(beta: float, m: torch.Tensor) -> OptimizationResult:
        return minimize_gauss_newton(problem, m, beta, maxiter=5, gtol=1e-12, linearization="dense")

    return problem, solve


def _ratio(problem, beta):
    s2 = SIGMA**2
    return beta * s2 / (1 + beta * s2) * float((problem.data / SIGMA).norm()) / math.sqrt(problem.num_data)


def test_discrepancy_with_band_bisects_to_the_target(ridge):
    problem, solve = ridge
    out = discrepancy_search(solve, torch.zeros(50, dtype=torch.float64), 1e4, tau=1.0, factor=4.0, band=0.01)
    assert out.converged and abs(out.misfit_ratio - 1.0) <= 0.01
    assert out.misfit_ratio == pytest.approx(_ratio(problem, out.beta), rel=1e-10)  # the closed form
    betas = [b for b, _, _ in out.beta_path]
    assert len(set(betas)) == len(betas) and betas[:2] == [1e4, 2.5e3]


def test_discrepancy_without_band_keeps_the_first_fitting_weight_of_the_sequence(ridge):
    problem, solve = ridge
    out = discrepancy_search(solve, torch.zeros(50, dtype=torch.float64), 1e4, tau=1.0, factor=2.0, band=None)
    betas = [b for b, _, _ in out.beta_path]
    assert betas == [1e4 / 2**k for k in range(len(betas))]
    assert out.beta == betas[-1] and out.misfit_ratio <= 1.0 < out.beta_path[-2][1]
    # starting below the target, the weight goes up until it does not fit, keeping the last that did
    up = discrepancy_search(solve, torch.zeros(50, dtype=torch.float64), betas[-1] / 8, tau=1.0, factor=2.0,
                            band=None)
    assert up.converged and up.beta == pytest.approx(out.beta, rel=1e-12)
    assert up.iterations == sum(it for _, _, it in up.beta_path)


def test_discrepancy_reports_when_it_runs_out(ridge):
    _, solve = ridge
    out = discrepancy_search(solve, torch.zeros(50, dtype=torch.float64), 1e6, tau=1.0, factor=1.5, max_solves=3)
    assert not out.converged and "not met within 3 solves" in out.message and len(out.beta_path) == 3
    for bad in (dict(beta0=0.0), dict(factor=1.0), dict(max_solves=0), dict(tau=-1.0), dict(band=0.0)):
        kw = dict(beta0=1.0, factor=2.0, max_solves=3, tau=1.0, band=0.05) | bad
        with pytest.raises(InvalidParameterError):
            discrepancy_search(solve, torch.zeros(50, dtype=torch.float64), **kw)


def test_lcurve_keeps_an_interior_corner(ridge):
    problem, solve = ridge
    out = lcurve_search(solve, torch.zeros(50, dtype=torch.float64), 1e6, problem.regularizer, factor=4.0, count=12)
    betas = [b for b, _, _ in out.beta_path]
    assert len(betas) == 12 and out.beta in betas[1:-1] and "L-curve" in out.message
    with pytest.raises(InvalidParameterError, match="at least 3"):
        lcurve_search(solve, torch.zeros(50, dtype=torch.float64), 1.0, problem.regularizer, count=2)


def test_nuisance_entries_carry_no_penalty():
    from physinv.discretize.mesh import TriMesh

    mesh = TriMesh.unit_square(4)
    reg = cell_regularizer("tv", mesh, tv_beta=0.1)
    n = mesh.cells.shape[0]
    m = torch.randn(n + 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    partial = NuisanceFree(reg, n)
    assert float(partial(m)) == float(reg(m[:n]))
    grad = torch.autograd.functional.jacobian(partial, m)
    torch.testing.assert_close(partial.gradient(m), grad, rtol=1e-12, atol=1e-14)
    assert partial.hessian(m).shape == (n + 2, n + 2) and float(partial.hessian(m)[n:].abs().sum()) == 0.0
    with pytest.raises(InvalidParameterError):
        NuisanceFree(reg, 0)
