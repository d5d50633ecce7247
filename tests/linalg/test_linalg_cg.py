"""physinv.linalg.cg: preconditioned, batched conjugate gradients."""

import numpy as np
import pytest
import torch

from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.linalg.cg import CGResult, cg

DT = torch.float64


def _spd(n, eigenvalues, seed=0):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=DT))
    return q @ torch.diag(torch.as_tensor(eigenvalues, dtype=DT)) @ q.T


def _rand(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def test_solves_spd_system_like_numpy():
    a = _spd(30, np.logspace(0, 2, 30))  # condition number 100
    b = _rand(30)
    result = cg(lambda x: a @ x, b, rtol=1e-12)
    assert isinstance(result, CGResult) and result.converged
    want = np.linalg.solve(a.numpy(), b.numpy())
    assert np.linalg.norm(result.x.numpy() - want) <= 1e-9 * np.linalg.norm(want)
    assert result.residual_history[-1] <= 1e-12
    assert len(result.residual_history) == result.iterations + 1
    assert result.residual_history[0] == pytest.approx(1.0, rel=1e-15)


def test_batched_with_different_right_hand_sides():
    a = _spd(20, np.logspace(0, 2, 20))
    b = torch.stack([_rand(20, seed=2), 1e3 * _rand(20, seed=3), torch.zeros(20, dtype=DT), _rand(20, seed=4)])
    result = cg(lambda x: x @ a, b, rtol=1e-12, batched=True)  # a is symmetric: x @ a = (a x^T)^T
    assert result.converged
    want = np.linalg.solve(a.numpy(), b.numpy().T).T
    for got_i, want_i in zip(result.x.numpy(), want):
        assert np.linalg.norm(got_i - want_i) <= 1e-9 * max(np.linalg.norm(want_i), 1e-300)
    assert float(result.x[2].abs().max()) == 0.0  # a zero right-hand side gives x = 0, not NaN


def test_converges_in_as_many_steps_as_distinct_eigenvalues():
    a = _spd(40, [1.0] * 15 + [5.0] * 15 + [20.0] * 10)
    result = cg(lambda x: a @ x, _rand(40), rtol=1e-10)
    assert result.converged and result.iterations == 3


def test_preconditioner_used():
    # diagonal badly scaled matrix: Jacobi makes it the identity, one step
    d = torch.logspace(0, 6, 50, dtype=DT)
    b = _rand(50)
    plain = cg(lambda x: d * x, b, rtol=1e-10)
    pre = cg(lambda x: d * x, b, precond=lambda r: r / d, rtol=1e-10)
    assert pre.iterations == 1 and plain.iterations > 10
    torch.testing.assert_close(pre.x, b / d, rtol=1e-12, atol=0)


def test_initial_guess():
    a = _spd(10, np.linspace(1, 3, 10))
    b = _rand(10)
    exact = torch.linalg.solve(a, b)
    assert cg(lambda x: a @ x, b, x0=exact, rtol=1e-8).iterations == 0
    result = cg(lambda x: a @ x, b, x0=exact + 1e-3 * _rand(10, seed=5), rtol=1e-12)
    assert result.converged
    torch.testing.assert_close(result.x, exact, rtol=1e-10, atol=1e-12)


def _laplacian_iterations(n):
    grid = UniformGrid((n, n))
    op = FDPoissonOperator(grid)
    kappa = torch.ones(grid.node_shape, dtype=DT)
    b = op.rhs(kappa, source=torch.ones(grid.node_shape, dtype=DT))
    result = cg(lambda x: op.apply(kappa, x), b, rtol=1e-8)
    assert result.converged
    return result.iterations


def test_iterations_grow_with_laplacian_size():
    its = [_laplacian_iterations(n) for n in (8, 16, 32)]
    assert its[0] < its[1] < its[2]
    # unpreconditioned CG needs O(sqrt(cond)) = O(n) iterations: doubling n roughly doubles them
    assert 1.5 <= its[2] / its[1] <= 2.5


def test_non_convergence_is_reported():
    a = _spd(50, np.logspace(0, 4, 50))
    result = cg(lambda x: a @ x, _rand(50), rtol=1e-12, maxiter=5)
    assert result.converged is False
    assert result.iterations == 5
    assert result.residual_history[-1] > 1e-12
