"""Bad input gets a clear physinv error, never a raw exception or a silent wrong answer (issue 12, items 11, 13).

Each case names the error type and a fragment of the message that says what was wrong and what is allowed.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, SingularMatrixError
from physinv.core.seeding import seed_everything
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator, point_observation
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.invert.weight_rules import discrepancy_principle, discrepancy_search, lcurve_search
from physinv.linalg.solvers import DirectSolver
from physinv.problems.poisson.simulator import PoissonSimulator

DT = torch.float64
NAN, INF = math.nan, math.inf


def _never(*args, **kwargs):
    raise AssertionError("the solver must not be called with invalid arguments")


# ---------------------------------------------------------------- item 11: sensors and grids


@pytest.mark.parametrize("space", ["grid", "mesh"])
@pytest.mark.parametrize("point", [(NAN, 0.5), (0.5, INF), (-INF, 0.5)])
def test_non_finite_sensor_coordinates_are_refused(space, point):
    where = UniformGrid((8, 8)) if space == "grid" else TriMesh.unit_square(4)
    with pytest.raises(InvalidParameterError, match="NaN/Inf"):
        point_observation(where, torch.tensor([[0.5, 0.5], point], dtype=DT))


@pytest.mark.parametrize("space", ["grid", "mesh"])
def test_sensor_outside_the_domain_is_refused(space):
    where = UniformGrid((8, 8)) if space == "grid" else TriMesh.unit_square(4)
    with pytest.raises(InvalidParameterError, match=r"outside .*1\.5"):
        point_observation(where, torch.tensor([[0.5, 0.5], [1.5, 0.5]], dtype=DT))


@pytest.mark.parametrize("lengths, fragment", [
    ((NAN, 1.0), r"lengths must be finite and > 0.*nan"),
    ((INF, 1.0), r"lengths must be finite and > 0.*inf"),
    ((0.0, 1.0), r"lengths must be finite and > 0"),
    (1.0, r"lengths must be a sequence of 2"),
])
def test_grid_lengths_must_be_finite_and_positive(lengths, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        UniformGrid((8, 8), lengths=lengths)


@pytest.mark.parametrize("cells, fragment", [
    ((8.5, 8), r"integer.*8\.5"),
    ((NAN, 8), r"integer.*nan"),
    (("a", 8), r"integer.*'a'"),
    (8, r"cells must be a sequence"),
    ((1, 8), r"at least 2 cells"),
])
def test_grid_cells_must_be_integers(cells, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        UniformGrid(cells)


def test_grid_integral_float_cells_are_kept():
    assert UniformGrid((8.0, np.int64(4))).cells == (8, 4)


# ---------------------------------------------------------------- item 13: seeds


@pytest.mark.parametrize("seed, fragment", [
    (-1, r"seed must be an integer >= 0.*-1"),
    (2**64, r"seed must be an integer .*< 2\*\*64"),
    (1.5, r"seed must be an integer.*float"),
    (True, r"seed must be an integer.*bool"),
    ("3", r"seed must be an integer.*str"),
])
def test_bad_seed_is_refused(seed, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        seed_everything(seed)


def test_numpy_integer_seed_is_accepted():
    a = seed_everything(np.int64(7)).random()
    b = seed_everything(7).random()
    assert a == b


# ---------------------------------------------------------------- item 13: weight rules


@pytest.mark.parametrize("bad, fragment", [
    (dict(max_solves=0), "max_solves must be an integer >= 1"),
    (dict(max_solves=2.5), "max_solves must be an integer >= 1"),
    (dict(max_solves=NAN), "max_solves must be an integer >= 1"),
    (dict(tau=0.0), "tau must be finite and > 0"),
    (dict(tau=NAN), "tau must be finite and > 0"),
    (dict(factor=1.0), "factor must be finite and > 1"),
    (dict(beta0=-1.0), "beta0 must be finite and > 0"),
    (dict(band=-0.1), "band must be finite and > 0"),
])
def test_discrepancy_principle_arguments(bad, fragment):
    kwargs = dict(beta0=1.0) | bad
    with pytest.raises(InvalidParameterError, match=fragment):
        discrepancy_principle(None, torch.zeros(3), _never, report=None, **kwargs)


@pytest.mark.parametrize("bad, fragment", [
    (dict(count=2), "at least 3 weights"),
    (dict(count=4.5), "must be an integer >= 1"),
    (dict(factor=0.5), "factor must be finite and > 1"),
    (dict(beta0=INF), "beta0 must be finite and > 0"),
])
def test_lcurve_arguments(bad, fragment):
    kwargs = dict(beta0=1.0) | bad
    with pytest.raises(InvalidParameterError, match=fragment):
        lcurve_search(_never, torch.zeros(3), penalty=lambda m: m.sum(), **kwargs)


def test_discrepancy_search_checks_before_solving():
    with pytest.raises(InvalidParameterError, match="max_solves"):
        discrepancy_search(_never, torch.zeros(3), 1.0, max_solves=0)


# ---------------------------------------------------------------- item 13: a batch of kappas


def test_batched_kappa_on_fd_simulator_is_refused():
    grid = UniformGrid((8, 8))
    sim = PoissonSimulator(FDPoissonOperator(grid), torch.ones(1, 9, 9, dtype=DT))
    with pytest.raises(ShapeMismatchError, match=r"kappa has shape \(3, 9, 9\); expected \(9, 9\)"):
        sim(torch.ones(3, 9, 9, dtype=DT))
    with pytest.raises(ShapeMismatchError, match=r"expected \(9, 9\)"):
        DirectSolver().prepare(sim.operator, torch.ones(3, 9, 9, dtype=DT))


def test_batched_kappa_on_p1_simulator_is_refused():
    mesh = TriMesh.unit_square(4)
    sim = PoissonSimulator(P1PoissonOperator(mesh), torch.ones(1, mesh.num_nodes, dtype=DT))
    with pytest.raises(ShapeMismatchError, match=r"kappa has shape \(3, 32\).*one coefficient field"):
        sim(torch.ones(3, mesh.num_cells, dtype=DT))


def test_fd_apply_broadcasts_a_batch_of_kappas_over_one_state():
    grid = UniformGrid((4, 5))
    op = FDPoissonOperator(grid)
    kappa = 1.0 + torch.rand((3,) + grid.node_shape, dtype=DT, generator=torch.Generator().manual_seed(0))
    u = torch.rand(grid.node_shape, dtype=DT, generator=torch.Generator().manual_seed(1))
    out = op.apply(kappa, u)
    assert out.shape == kappa.shape
    for i in range(3):
        torch.testing.assert_close(out[i], op.apply(kappa[i], u))


def test_fd_apply_with_kappa_of_another_grid_is_refused():
    op = FDPoissonOperator(UniformGrid((8, 8)))
    with pytest.raises(ShapeMismatchError, match=r"kappa has shape \(5, 5\).*\(9, 9\)"):
        op.apply(torch.ones(5, 5, dtype=DT), torch.ones(9, 9, dtype=DT))


# ---------------------------------------------------------------- item 13: Dirichlet node indices


@pytest.mark.parametrize("nodes, fragment", [
    ([0, 30, 99], r"dirichlet_nodes.*\[30, 99\].*25 nodes.*0\.\.24"),
    ([0, -1], r"dirichlet_nodes.*negative.*\[-1\].*0\.\.24"),
    ([0.5, 1.2], r"dirichlet_nodes must be integer node indices"),
    ([[0, 1]], r"dirichlet_nodes must be a 1D"),
    ([], r"at least one Dirichlet node"),
    (np.zeros(25, dtype=bool), r"at least one Dirichlet node"),
    (np.ones(7, dtype=bool), r"boolean mask .* 25 nodes"),
])
def test_bad_dirichlet_nodes_are_refused(nodes, fragment):
    with pytest.raises((InvalidParameterError, ShapeMismatchError), match=fragment):
        P1PoissonOperator(TriMesh.unit_square(4), dirichlet_nodes=nodes)


def test_dirichlet_nodes_duplicates_and_masks():
    mesh = TriMesh.unit_square(4)
    by_index = P1PoissonOperator(mesh, dirichlet_nodes=[3, 0, 3, 7])
    assert by_index.dirichlet_mask.nonzero().ravel().tolist() == [0, 3, 7]
    mask = np.zeros(mesh.num_nodes, dtype=bool)
    mask[[0, 3, 7]] = True
    by_mask = P1PoissonOperator(mesh, dirichlet_nodes=mask)
    assert torch.equal(by_mask.dirichlet_mask, by_index.dirichlet_mask)
    by_tensor = P1PoissonOperator(mesh, dirichlet_nodes=torch.tensor([0, 3, 7]))
    assert torch.equal(by_tensor.dirichlet_mask, by_index.dirichlet_mask)


# ---------------------------------------------------------------- item 13: singular factorization


def test_direct_solver_names_a_singular_matrix():
    class Singular:
        state_shape = (3,)

        def assemble(self, theta):
            return sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))

    with pytest.raises(SingularMatrixError, match=r"singular.*Dirichlet"):
        DirectSolver().prepare(Singular(), torch.ones(3, dtype=DT))


def test_direct_solver_refuses_a_non_finite_matrix():
    class NotFinite:
        state_shape = (2,)

        def assemble(self, theta):
            return sp.csr_matrix(np.array([[1.0, NAN], [NAN, 1.0]]))

    with pytest.raises(InvalidParameterError, match="NaN/Inf"):
        DirectSolver().prepare(NotFinite(), torch.ones(2, dtype=DT))


def test_p1_part_without_dirichlet_node_gives_a_singular_matrix_error():
    # two separate triangles, a Dirichlet node on the first only: the second is a pure Neumann problem
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0], [2.0, 1.0]])
    mesh = TriMesh(points, np.array([[0, 1, 2], [3, 4, 5]]))
    op = P1PoissonOperator(mesh, dirichlet_nodes=[0])
    with pytest.raises(SingularMatrixError, match=r"6x6 matrix is singular.*Dirichlet"):
        DirectSolver().prepare(op, torch.ones(mesh.num_cells, dtype=DT))
    sim = PoissonSimulator(op, torch.ones(1, mesh.num_nodes, dtype=DT))
    with pytest.raises(SingularMatrixError, match="singular"):
        sim(torch.ones(mesh.num_cells, dtype=DT))


# ---------------------------------------------------------------- item 13: float32 sources


@pytest.mark.parametrize("space", ["fd", "p1"])
def test_float32_sources_are_promoted_like_fd(space):
    if space == "fd":
        op = FDPoissonOperator(UniformGrid((6, 6)))
        kappa = torch.ones(op.state_shape, dtype=DT)
    else:
        op = P1PoissonOperator(TriMesh.unit_square(4))
        kappa = torch.ones(op.mesh.num_cells, dtype=DT)
    sources = torch.ones((2,) + op.state_shape, dtype=DT)
    want = PoissonSimulator(op, sources)(kappa)
    got = PoissonSimulator(op, sources.float())(kappa)
    assert got.dtype == DT
    torch.testing.assert_close(got, want)


# ---------------------------------------------------------------- item 13: a function where kappa values go


def _kappa_function(x, y):
    return 1.0 + x * y


@pytest.mark.parametrize("space", ["fd", "p1"])
@pytest.mark.parametrize("entry", ["simulator", "check_kappa", "apply", "assemble"])
def test_function_as_kappa_is_refused(space, entry):
    if space == "fd":
        op = FDPoissonOperator(UniformGrid((4, 4)))
        hint = r"grid\.coordinates"
    else:
        op = P1PoissonOperator(TriMesh.unit_square(4))
        hint = r"mesh\.points"
    u = torch.ones(op.state_shape, dtype=DT)
    call = {
        "simulator": lambda: PoissonSimulator(op, u[None])(_kappa_function),
        "check_kappa": lambda: op.check_kappa(_kappa_function),
        "apply": lambda: op.apply(_kappa_function, u),
        "assemble": lambda: op.assemble(_kappa_function),
    }[entry]
    with pytest.raises(InvalidParameterError, match=r"kappa must be a torch\.Tensor.*got a function.*" + hint):
        call()


def test_numpy_kappa_gets_a_conversion_hint():
    op = FDPoissonOperator(UniformGrid((4, 4)))
    with pytest.raises(InvalidParameterError, match=r"kappa must be a torch\.Tensor.*ndarray.*torch\.as_tensor"):
        op.check_kappa(np.ones((5, 5)))
