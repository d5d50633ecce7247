"""physinv.problems.poisson.simulator.PoissonSimulator."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.linalg.solvers import CGSolver, CountingSolver, DirectSolver
from physinv.problems.poisson import PoissonSimulator

DT = torch.float64


def _fd_setup():
    grid = UniformGrid((6, 5))
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    x, y = grid.coordinates()
    sources = torch.stack([torch.ones_like(x), 10 * x * y])
    kappa1 = 1.0 + x + y**2
    kappa2 = 2.0 - 0.5 * x * y
    return grid, op, sources, x, kappa1, kappa2


def _sim(solver=None, observe=True):
    grid, op, sources, x, k1, k2 = _fd_setup()
    obs = GridPointInterpolator(grid, [[0.3, 0.4], [0.9, 0.1], [0.5, 1.0]]) if observe else None
    return PoissonSimulator(op, sources, dirichlet=x, observe=obs, solver=solver), k1, k2


def test_state_solves_the_discrete_problem():
    grid, op, sources, x, k1, _ = _fd_setup()
    sim = PoissonSimulator(op, sources, dirichlet=x)
    u = sim(k1)
    assert u.shape == (2,) + grid.node_shape
    a = op.assemble(k1)
    b = op.rhs(k1, source=sources, dirichlet=x)
    res = a @ u.reshape(2, -1).numpy().T - b.reshape(2, -1).numpy().T
    assert abs(res).max() <= 1e-12 * float(b.abs().max())
    torch.testing.assert_close(u[:, op.dirichlet_mask], x[op.dirichlet_mask].expand(2, -1), rtol=0, atol=1e-14)


def test_observation_is_applied():
    sim, k1, _ = _sim()
    full = sim.state(k1)
    torch.testing.assert_close(sim(k1), sim.observe(full), rtol=0, atol=0)
    assert sim(k1).shape == (2, 3)


def test_p1_simulator_solves_the_discrete_problem():
    mesh = TriMesh.unit_square(4)
    op = P1PoissonOperator(mesh)
    pts = torch.from_numpy(mesh.points)
    sim = PoissonSimulator(op, torch.ones(1, mesh.num_nodes, dtype=DT))
    kappa = 1.0 + pts[op.cells].mean(1)[:, 0]
    u = sim(kappa)
    res = op.assemble(kappa) @ u[0].numpy() - op.rhs(kappa, source=sim.sources).numpy()[0]
    assert abs(res).max() <= 1e-14


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_bad_kappa_raises(bad):
    sim, k1, _ = _sim()
    k = k1.clone()
    k[2, 3] = bad
    with pytest.raises(InvalidParameterError, match="kappa"):
        sim(k)


def test_wrong_shape_kappa_raises():
    sim, k1, _ = _sim()
    with pytest.raises(ShapeMismatchError, match="kappa"):
        sim(k1[:-1])


def test_nan_sources_rejected_at_construction():
    _, op, sources, *_ = _fd_setup()
    sources = sources.clone()
    sources[1, 2, 2] = math.nan
    with pytest.raises(InvalidParameterError, match="sources"):
        PoissonSimulator(op, sources)


@pytest.mark.parametrize("solver", [DirectSolver, lambda: CGSolver("jacobi", rtol=1e-12)], ids=["direct", "cg"])
def test_cache_invalidated_when_kappa_changes(solver):
    sim, k1, k2 = _sim(solver())
    u1 = sim(k1)
    u2 = sim(k2)
    fresh, *_ = _sim(solver())
    want = fresh(k2)
    assert float((u2 - want).abs().max()) <= 1e-10 * float(want.abs().max())
    assert float((u2 - u1).abs().max()) > 1e-2  # the two kappas really give different data
    # and back to kappa1: not a stale kappa2 solve either
    torch.testing.assert_close(sim(k1), u1, rtol=1e-10, atol=1e-12)


def test_cache_invalidated_by_in_place_update():
    sim, k1, k2 = _sim(CGSolver("none", rtol=1e-12))
    k = k1.clone()
    sim(k)
    k.copy_(k2)  # an optimizer step in place
    fresh, *_ = _sim(DirectSolver())
    torch.testing.assert_close(sim(k), fresh(k2), rtol=1e-9, atol=1e-12)


def test_cache_reused_while_kappa_is_unchanged():
    counting = CountingSolver(DirectSolver())
    sim, k1, k2 = _sim(counting)
    kk = k1.clone().requires_grad_(True)
    sim(kk).sum().backward()  # forward + adjoint solve
    sim(k1.clone())  # equal values, new tensor
    assert counting.prepares == 1 and counting.solves == 3
    sim(k2)
    assert counting.prepares == 2


def test_cache_does_not_alias_callers_tensor():
    sim, k1, _ = _sim(CGSolver("none", rtol=1e-12), observe=False)
    t = k1.clone()
    u1 = sim(t)
    t.mul_(3.0)  # caller reuses its buffer; the simulator must not see this
    u_again = sim(k1.clone())
    torch.testing.assert_close(u_again, u1, rtol=1e-9, atol=1e-12)


def test_gradient_matches_between_direct_and_cg_simulators():
    sims = [_sim(DirectSolver())[0], _sim(CGSolver("amg", rtol=1e-13))[0]]
    _, k1, _ = _sim()
    grads = []
    for sim in sims:
        k = k1.clone().requires_grad_(True)
        (sim(k) ** 2).sum().backward()
        grads.append(k.grad)
    assert float((grads[0] - grads[1]).norm() / grads[0].norm()) <= 1e-7
