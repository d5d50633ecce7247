"""physinv.linalg.implicit: implicitly differentiated solves in both AD modes."""

import pytest
import torch

from physinv.core.autodiff import jvp
from physinv.core.errors import InvalidParameterError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.linalg.implicit import implicit_solve
from physinv.linalg.solvers import CGSolver, DirectSolver

DT = torch.float64


def _fd():
    grid = UniformGrid((4, 3))
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    x, y = grid.coordinates()
    kappa = 1.0 + x + 0.5 * y**2
    b = op.rhs(kappa, source=torch.stack([torch.ones_like(x), x * y]), dirichlet=x)
    return op, kappa, b


def _p1():
    mesh = TriMesh.unit_square(3)
    op = P1PoissonOperator(mesh)
    pts = torch.from_numpy(mesh.points)
    kappa = 1.0 + pts[op.cells].mean(1)[:, 0]
    b = op.rhs(kappa, source=torch.ones(mesh.num_nodes, dtype=DT), dirichlet=pts[:, 1])
    return op, kappa, b


def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


@pytest.mark.parametrize("make", [_fd, _p1], ids=["fd", "p1"])
def test_gradcheck_theta_and_b(make):
    op, kappa, b = make()
    solver = DirectSolver()

    def f(theta, rhs):
        return implicit_solve(op, theta, rhs, solver)

    args = (kappa.clone().requires_grad_(True), b.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_gradcheck_detects_a_wrong_operator_derivative():
    # the check is sharp: an operator whose apply() has a wrong kappa-derivative fails it
    op, kappa, b = _fd()

    class Scaled(FDPoissonOperator):
        def apply(self, theta, u):  # forward uses theta, the derivative sees 2 * theta
            return super().apply(theta.detach() + 2.0 * (theta - theta.detach()), u)

    wrong = Scaled(op.grid, op.neumann_sides)
    f = lambda th: implicit_solve(wrong, th, b, DirectSolver())  # noqa: E731
    assert not torch.autograd.gradcheck(f, (kappa.clone().requires_grad_(True),), eps=1e-6, atol=1e-7,
                                        rtol=1e-6, raise_exception=False)


@pytest.mark.parametrize("wrt", ["theta", "b", "both"])
def test_forward_mode_matches_finite_differences(wrt):
    op, kappa, b = _fd()
    solver = DirectSolver()
    dk, db = 0.3 * kappa * _rand(kappa.shape, 1), _rand(b.shape, 2)
    tk = dk if wrt in ("theta", "both") else torch.zeros_like(dk)
    tb = db if wrt in ("b", "both") else torch.zeros_like(db)

    def model(s):  # s: scalar step along the chosen direction, shape (1,)
        return implicit_solve(op, kappa + s * tk, b + s * tb, solver)

    zero = torch.zeros(1, dtype=DT)
    got = jvp(model, zero, torch.ones(1, dtype=DT))
    h = 1e-5
    with torch.no_grad():
        fd = (model(zero + h) - model(zero - h)) / (2 * h)
    # central differences: truncation O(h^2) ~ 1e-10, round-off ~ 1e-16 / h ~ 1e-11
    assert float((got - fd).norm() / fd.norm()) <= 1e-8


def test_forward_mode_is_exact_in_b():
    # u is linear in b: the jvp along db is the solve of db itself
    op, kappa, b = _fd()
    solver = DirectSolver()
    db = _rand(b.shape, 3)
    got = jvp(lambda rhs: implicit_solve(op, kappa, rhs, solver), b, db)
    want = solver.prepare(op, kappa)(db)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("precond", ["none", "jacobi", "amg"])
def test_cg_backward_equals_direct_backward(precond):
    op, kappa, b = _fd()
    w = _rand(b.shape, 4)

    def grads(solver):
        th, rhs = kappa.clone().requires_grad_(True), b.clone().requires_grad_(True)
        loss = (w * implicit_solve(op, th, rhs, solver)).sum() + (implicit_solve(op, th, rhs, solver) ** 2).sum()
        return torch.autograd.grad(loss, (th, rhs))

    gd = grads(DirectSolver())
    gc = grads(CGSolver(precond, rtol=1e-13))
    for a, c in zip(gd, gc):
        assert float((a - c).norm() / a.norm()) <= 1e-7


def test_prepared_solve_is_reused():
    op, kappa, b = _fd()
    solver = DirectSolver()
    prepared = solver.prepare(op, kappa)
    calls = []

    def counted(rhs):
        calls.append(rhs.shape)
        return prepared(rhs)

    th = kappa.clone().requires_grad_(True)
    u = implicit_solve(op, th, b, solver=None, prepared=counted)
    u.sum().backward()
    assert len(calls) == 2  # forward and adjoint, no new factorization
    torch.testing.assert_close(u.detach(), prepared(b), rtol=0, atol=0)


def test_non_symmetric_operator_rejected():
    op, kappa, b = _fd()

    class NonSymmetric(FDPoissonOperator):
        symmetric = False

    with pytest.raises(InvalidParameterError, match="symmetric"):
        implicit_solve(NonSymmetric(op.grid, op.neumann_sides), kappa, b, DirectSolver())


class _WithoutTangent:
    """Delegates to an operator but hides ``apply_tangent``: forces the generic double-vjp path."""

    def __init__(self, op):
        self._op = op

    def __getattr__(self, name):
        if name == "apply_tangent":
            raise AttributeError(name)
        return getattr(self._op, name)


@pytest.mark.parametrize("make", [_fd, _p1], ids=["fd", "p1"])
def test_operator_tangent_equals_generic_double_vjp(make):
    """The analytic ``apply_tangent`` and the generic fallback give the same forward-mode derivative."""
    op, kappa, b = make()
    dk = 0.3 * kappa * _rand(kappa.shape, 5)
    solver = DirectSolver()
    fast = jvp(lambda th: implicit_solve(op, th, b, solver), kappa, dk)
    generic = jvp(lambda th: implicit_solve(_WithoutTangent(op), th, b, solver), kappa, dk)
    assert float((fast - generic).abs().max()) <= 1e-12 * float(fast.abs().max())
