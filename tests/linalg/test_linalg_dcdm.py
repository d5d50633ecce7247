"""physinv.linalg.dcdm: deep conjugate directions with non-learned direction maps."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.fluid import FluidPoissonOperator, box_with_obstacles
from physinv.discretize.grid import UniformGrid
from physinv.linalg.cg import CGResult, ConvergenceError, cg
from physinv.linalg.dcdm import (
    DCDMSolver,
    DirectionShapeError,
    JacobiDirection,
    NotPositiveDefiniteError,
    dcdm,
    identity_direction,
)
from physinv.linalg.implicit import implicit_solve
from physinv.linalg.solvers import DirectSolver

DT = torch.float64
ALL_SIDES_3D = ("x0", "x1", "y0", "y1", "z0", "z1")


def _rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _fd_laplacian(n):
    """3D Dirichlet Laplacian with n^3 unknowns (vertex-centred, n + 1 cells), matvec and rhs."""
    grid = UniformGrid((n + 1,) * 3)
    op = FDPoissonOperator(grid)
    kappa = torch.ones(grid.node_shape, dtype=DT)
    b = _rand(grid.node_shape, seed=n) * op._free(kappa)
    return op.bind(kappa), b


def _fluid_laplacian(n):
    """The same matrix on the cell-centred fluid grid with every side open (scaled by 1/h)."""
    op = FluidPoissonOperator(np.ones((n, n, n), dtype=bool), open_sides=ALL_SIDES_3D)
    return op.bind(), op.random_rhs(seed=n)


@pytest.mark.parametrize("n", [16, 32])
@pytest.mark.parametrize("make", [_fd_laplacian, _fluid_laplacian], ids=["fd", "fluid"])
def test_identity_direction_is_cg(make, n):
    # measured: DCDM(identity) == CG, 38 / 69 at 16^3 / 32^3 to tol 1e-4 (rhs-dependent by a few)
    matvec, b = make(n)
    ref = cg(matvec, b, rtol=1e-4, maxiter=500)
    got = dcdm(matvec, b, identity_direction, rtol=1e-4, maxiter=500)
    assert isinstance(got, CGResult) and got.converged and ref.converged
    assert abs(got.iterations - ref.iterations) <= 2
    assert {16: 25, 32: 50}[n] <= got.iterations <= {16: 50, 32: 90}[n]
    assert len(got.residual_history) == got.iterations + 1
    assert got.residual_history[-1] <= 1e-4
    # same iterates, not only the same count: x agrees to far below the 1e-4 tolerance
    if got.iterations == ref.iterations:
        assert float((got.x - ref.x).norm() / ref.x.norm()) < 1e-8
    # the recursive residual is the true one
    true = float((b - matvec(got.x)).norm() / b.norm())
    assert true == pytest.approx(got.residual_history[-1], rel=1e-6)


def test_jacobi_direction_equals_jacobi_pcg_on_obstacles():
    op = FluidPoissonOperator(box_with_obstacles(16, "spheres", seed=0))
    matvec, b, diag = op.bind(), op.random_rhs(seed=1), op.diagonal()
    assert float(diag.min()) < float(diag.max())  # obstacles make the diagonal vary
    pcg = cg(matvec, b, precond=lambda r: r / diag, rtol=1e-8, maxiter=1000)
    got = dcdm(matvec, b, lambda r: r / diag, rtol=1e-8, maxiter=1000)
    assert got.converged and abs(got.iterations - pcg.iterations) <= 2
    want = np.linalg.solve(op.assemble().toarray(), b.numpy().ravel()).reshape(b.shape)
    assert float((got.x - torch.from_numpy(want)).norm()) <= 1e-6 * float(np.linalg.norm(want))


def test_any_direction_decreases_the_energy_error():
    # exact line search: the A-norm of the error never grows, whatever the direction map
    op = FluidPoissonOperator(box_with_obstacles((10, 9, 8), "boxes", seed=2))
    a = op.assemble().toarray()
    b = op.random_rhs(seed=3)
    x_star = np.linalg.solve(a, b.numpy().ravel())
    weights = 0.2 + _rand(b.shape, seed=4).abs()  # a fixed, poor, nonsymmetric-in-effect scaling
    errors = []

    def direction(r):
        q = r * weights + 0.05 * r.roll(1, dims=0)  # not a symmetric preconditioner
        return op.restrict(q)

    for k in range(0, 40, 5):
        res = dcdm(op.bind(), b, direction, rtol=1e-14, maxiter=k)
        e = res.x.numpy().ravel() - x_star
        errors.append(float(e @ a @ e))
    assert all(e1 <= e0 * (1 + 1e-12) for e0, e1 in zip(errors, errors[1:]))
    assert errors[-1] < errors[0] / 50  # 150x measured in 35 steps


def test_batched_systems_stop_independently():
    op = FluidPoissonOperator(box_with_obstacles(8, seed=5))
    b = torch.stack([op.random_rhs(seed=6), torch.zeros(op.state_shape, dtype=DT), 1e4 * op.random_rhs(seed=7)])
    res = dcdm(op.bind(), b, identity_direction, rtol=1e-10, maxiter=300, batched=True)
    assert res.converged
    a = op.assemble()
    for i in range(3):
        resid = np.linalg.norm(b[i].numpy().ravel() - a @ res.x[i].numpy().ravel())
        assert resid <= 1e-9 * max(float(b[i].norm()), 1e-300)
    assert float(res.x[1].abs().max()) == 0.0  # zero rhs: x = 0, no NaN


def test_non_spd_operator_is_detected():
    op = FluidPoissonOperator(box_with_obstacles(6, seed=0))
    matvec = op.bind()
    with pytest.raises(NotPositiveDefiniteError, match=r"q\^T A q = .* <= 0.*not positive definite"):
        dcdm(lambda u: -matvec(u), op.random_rhs(seed=0), identity_direction)
    # it is an InvalidParameterError (and a ValueError)
    with pytest.raises(InvalidParameterError):
        dcdm(lambda u: -matvec(u), op.random_rhs(seed=0), identity_direction)


def test_bad_inputs_raise():
    op = FluidPoissonOperator(box_with_obstacles(6, seed=0))
    b = op.random_rhs(seed=0)
    nan = b.clone()
    nan[1, 1, 1] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        dcdm(op.bind(), nan, identity_direction)
    with pytest.raises(DirectionShapeError, match=r"direction returned \(6, 6\) for a residual of shape \(6, 6, 6\)"):
        dcdm(op.bind(), b, lambda r: r[0])
    assert issubclass(DirectionShapeError, ShapeMismatchError) and issubclass(DirectionShapeError,
                                                                              InvalidParameterError)
    with pytest.raises(InvalidParameterError, match="NaN/Inf"):
        dcdm(op.bind(), b, lambda r: r * float("nan"))
    with pytest.raises(InvalidParameterError, match="rtol"):
        dcdm(op.bind(), b, identity_direction, rtol=0.0)
    with pytest.raises(ShapeMismatchError, match="x0"):
        dcdm(op.bind(), b, identity_direction, x0=b[0])


def test_x0_is_used():
    op = FluidPoissonOperator(box_with_obstacles(8, seed=1))
    b = op.random_rhs(seed=2)
    exact = dcdm(op.bind(), b, identity_direction, rtol=1e-12, maxiter=500)
    again = dcdm(op.bind(), b, identity_direction, x0=exact.x, rtol=1e-8)
    assert again.iterations == 0 and again.residual_history[0] <= 1e-11


def test_solver_interface_and_convergence_error():
    op = FluidPoissonOperator(box_with_obstacles(8, seed=3))
    b = op.random_rhs(batch=2, seed=4).reshape(2, 1, *op.state_shape)
    solver = DCDMSolver(JacobiDirection(), rtol=1e-10, maxiter=300)
    x = solver.prepare(op, None)(b)
    assert x.shape == b.shape and len(solver.iterations) == 1
    want = DirectSolver().prepare(op, None)(b)
    assert float((x - want).norm()) <= 1e-8 * float(want.norm())
    with pytest.raises(ConvergenceError, match="after 3 iterations"):
        DCDMSolver(identity_direction, rtol=1e-10, maxiter=3).prepare(op, None)(b)


def _tiny_fd():
    grid = UniformGrid((4, 3))
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    x, y = grid.coordinates()
    kappa = 1.0 + x + 0.5 * y**2
    b = op.rhs(kappa, source=torch.ones_like(x) + x * y, dirichlet=x)
    return op, kappa, b


def test_implicit_gradient_matches_direct_solver():
    op, kappa, b = _tiny_fd()
    w = _rand(b.shape, seed=9)
    grads = []
    for solver in (DirectSolver(), DCDMSolver(JacobiDirection(), rtol=1e-13, maxiter=200)):
        th = kappa.clone().requires_grad_(True)
        rhs = b.clone().requires_grad_(True)
        loss = (w * implicit_solve(op, th, rhs, solver)).sum()
        grads.append(torch.autograd.grad(loss, (th, rhs)))
    for got, want in zip(grads[1], grads[0]):
        assert float((got - want).abs().max()) <= 1e-6 * float(want.abs().max())


def test_maxiter_none_means_ten_times_the_size_like_cg():
    a = torch.diag(torch.linspace(1.0, 100.0, 12, dtype=DT))
    b = _rand(12, seed=1)
    got = dcdm(lambda x: a @ x, b, identity_direction, rtol=1e-12, maxiter=None)
    ref = cg(lambda x: a @ x, b, rtol=1e-12, maxiter=None)
    assert got.converged and abs(got.iterations - ref.iterations) <= 2
    torch.testing.assert_close(got.x, b / torch.diagonal(a), rtol=1e-10, atol=0)


def _stalling_direction(n):
    """Almost the same vector every time: orthogonalized away, so plain DCDM stalls."""
    return lambda r: torch.linspace(0.0, 1.0, n, dtype=r.dtype) + 1e-6 * r * r.abs()


def test_stall_fallback_switches_to_residual_directions():
    from physinv.linalg.dcdm import StallFallback

    a = torch.diag(torch.linspace(1.0, 100.0, 50, dtype=DT))
    b = _rand(50, seed=5)
    plain = dcdm(lambda x: a @ x, b, _stalling_direction(50), rtol=1e-10, maxiter=200)
    assert not plain.converged and plain.residual_history[-1] > 1e-2
    fallback = StallFallback(window=5, ratio=0.5)
    safe = dcdm(lambda x: a @ x, b, _stalling_direction(50), rtol=1e-10, maxiter=200, fallback=fallback)
    assert safe.converged and fallback.switched_at is not None and fallback.switched_at <= 10
    cg_its = cg(lambda x: a @ x, b, rtol=1e-10).iterations
    assert safe.iterations <= fallback.switched_at + 2 * cg_its  # then CG-like from the current iterate
    # with CG's own directions (plateaus trip the criterion too) the switch is a CG restart:
    # the Krylov history is lost, which costs a few iterations, not a stall
    restarted = dcdm(lambda x: a @ x, b, identity_direction, rtol=1e-10, fallback=StallFallback())
    assert restarted.converged and cg_its <= restarted.iterations <= 1.25 * cg_its


@pytest.mark.parametrize("kwargs", [dict(window=0), dict(ratio=1.0), dict(ratio=0.0)])
def test_stall_fallback_rejects_bad_parameters(kwargs):
    from physinv.linalg.dcdm import StallFallback

    with pytest.raises(InvalidParameterError, match="StallFallback"):
        StallFallback(**kwargs)
