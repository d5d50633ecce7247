"""physinv.linalg.solvers: direct and CG solvers behind one interface."""

import pytest
import torch

from physinv.core.errors import InvalidParameterError, UnknownNameError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.core.errors import ConvergenceError
from physinv.linalg.solvers import CGSolver, CountingSolver, DirectSolver, make_solver

DT = torch.float64


def _fd2d():
    grid = UniformGrid((10, 8), (1.0, 0.8))
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    x, y = grid.coordinates()
    kappa = 1.0 + x + torch.exp(y)
    sources = torch.stack([torch.ones_like(x), torch.sin(3 * x) * y])
    return op, kappa, op.rhs(kappa, source=sources, dirichlet=x)


def _fd3d():
    grid = UniformGrid((5, 4, 4))
    op = FDPoissonOperator(grid, neumann_sides=("z0",))
    x, y, z = grid.coordinates()
    kappa = 1.0 + x * y + z
    return op, kappa, op.rhs(kappa, source=(1 + x)[None], dirichlet=y)


def _p1():
    mesh = TriMesh.unit_square(6)
    op = P1PoissonOperator(mesh)
    pts = torch.from_numpy(mesh.points)
    kappa = 1.0 + pts[:, 0] ** 2
    return op, kappa, op.rhs(kappa, source=torch.stack([pts[:, 1], torch.ones(mesh.num_nodes, dtype=DT)]), dirichlet=pts[:, 0])


PROBLEMS = {"fd2d": _fd2d, "fd3d": _fd3d, "p1": _p1}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("precond", ["none", "jacobi", "amg"])
def test_cg_solvers_agree_with_direct(problem, precond):
    op, kappa, b = PROBLEMS[problem]()
    direct = DirectSolver().prepare(op, kappa)(b)
    # the direct solution solves the assembled system
    a = op.assemble(kappa)
    flat_b = b.reshape(b.shape[0], -1).numpy()
    res = (a @ direct.reshape(b.shape[0], -1).numpy().T).T - flat_b
    assert abs(res).max() <= 1e-12 * abs(flat_b).max()
    solver = CGSolver(precond, rtol=1e-12)
    got = solver.prepare(op, kappa)(b)
    assert got.shape == b.shape
    assert float((got - direct).norm() / direct.norm()) <= 1e-8
    assert len(solver.iterations) == 1 and solver.iterations[0] > 0


def test_leading_batch_dimensions_are_kept():
    op, kappa, b = _fd2d()
    bb = torch.stack([b, 2 * b, -b])  # (3, 2, *node_shape)
    for solver in (DirectSolver(), CGSolver("jacobi")):
        x = solver.prepare(op, kappa)(bb)
        assert x.shape == bb.shape
        torch.testing.assert_close(x[1], 2 * x[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(x[2], -x[0], rtol=1e-9, atol=1e-12)


def test_direct_keeps_dtype():
    op, kappa, b = _fd2d()
    x = DirectSolver().prepare(op, kappa)(b.to(torch.float32))
    assert x.dtype == torch.float32


def test_wrong_rhs_shape_raises():
    op, kappa, _ = _fd2d()
    for solver in (DirectSolver(), CGSolver("none")):
        with pytest.raises(InvalidParameterError, match="right-hand side has shape"):
            solver.prepare(op, kappa)(torch.zeros(3, 4, dtype=DT))


def test_maxiter_too_small_raises_convergence_error():
    op, kappa, b = _fd2d()
    solver = CGSolver("none", rtol=1e-10, maxiter=3)
    with pytest.raises(ConvergenceError, match=r"after 3 iterations"):
        solver.prepare(op, kappa)(b)


@pytest.mark.parametrize(
    "name, cls, precond",
    [("direct", DirectSolver, None), ("cg", CGSolver, "none"), ("cg-jacobi", CGSolver, "jacobi"), ("cg-amg", CGSolver, "amg")],
)
def test_make_solver(name, cls, precond):
    solver = make_solver(name)
    assert isinstance(solver, cls)
    if precond is not None:
        assert solver.preconditioner == precond and solver.name == f"cg-{precond}"


@pytest.mark.parametrize("name", ["lu", "cg-ilu", "CG", ""])
def test_unknown_solver_names_raise(name):
    with pytest.raises(UnknownNameError, match="allowed"):
        make_solver(name)


def test_unknown_preconditioner_raises():
    with pytest.raises(UnknownNameError, match="allowed: none, jacobi, amg"):
        CGSolver("ilu")


def test_counting_solver():
    op, kappa, b = _fd2d()
    counting = CountingSolver(DirectSolver())
    solve = counting.prepare(op, kappa)
    x1, x2 = solve(b), solve(b[0])
    torch.testing.assert_close(x2, x1[0], rtol=1e-13, atol=1e-13)
    assert (counting.prepares, counting.solves, counting.name) == (1, 2, "direct")
