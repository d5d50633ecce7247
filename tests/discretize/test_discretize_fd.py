"""physinv.discretize.fd.FDPoissonOperator: matrix-free vs assembled, symmetry, input checks."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.linalg.solvers import DirectSolver

DT = torch.float64

CASES = [
    ((5, 4), (1.0, 1.0), ()),
    ((5, 4), (2.0, 0.7), ("y1",)),
    ((6, 5), (1.0, 1.0), ("x0", "y1")),
    ((6, 5), (1.0, 1.0), ("x0", "x1", "y0")),
    ((3, 4, 2), (1.0, 1.0, 1.0), ()),
    ((3, 4, 2), (1.0, 0.5, 2.0), ("z1",)),
    ((4, 3, 3), (1.0, 1.0, 1.0), ("x0", "y1", "z0")),
]
IDS = [f"{len(c)}d-{'+'.join(n) or 'dirichlet'}-{i}" for i, (c, _, n) in enumerate(CASES)]


def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _setup(cells, lengths, neumann, seed=0):
    grid = UniformGrid(cells, lengths)
    op = FDPoissonOperator(grid, neumann_sides=neumann)
    kappa = 0.5 + torch.rand(grid.node_shape, generator=torch.Generator().manual_seed(seed), dtype=DT)
    return grid, op, kappa


@pytest.mark.parametrize("cells, lengths, neumann", CASES, ids=IDS)
def test_apply_equals_assembled_matvec(cells, lengths, neumann):
    grid, op, kappa = _setup(cells, lengths, neumann)
    a = op.assemble(kappa)
    assert a.shape == (grid.num_nodes, grid.num_nodes)
    u = _rand((3,) + grid.node_shape, seed=1)  # a batch of three states
    got = op.apply(kappa, u).reshape(3, -1).numpy()
    want = (a @ u.reshape(3, -1).numpy().T).T
    assert np.abs(got - want).max() <= 1e-13 * np.abs(want).max()


@pytest.mark.parametrize("cells, lengths, neumann", CASES, ids=IDS)
def test_assembled_matrix_is_spd(cells, lengths, neumann):
    _, op, kappa = _setup(cells, lengths, neumann)
    a = op.assemble(kappa)
    asym = abs(a - a.T).max()
    assert asym <= 1e-15 * abs(a).max()
    eig = np.linalg.eigvalsh(a.toarray())
    assert eig.min() > 1e-8 * eig.max()


@pytest.mark.parametrize("cells, lengths, neumann", CASES, ids=IDS)
def test_matrix_free_apply_is_symmetric(cells, lengths, neumann):
    grid, op, kappa = _setup(cells, lengths, neumann)
    x, y = _rand(grid.node_shape, 2), _rand(grid.node_shape, 3)
    lhs = float((op.apply(kappa, x) * y).sum())
    rhs = float((x * op.apply(kappa, y)).sum())
    assert abs(lhs - rhs) <= 1e-13 * abs(lhs)


@pytest.mark.parametrize("cells, lengths, neumann", CASES, ids=IDS)
def test_diagonal_equals_assembled_diagonal(cells, lengths, neumann):
    grid, op, kappa = _setup(cells, lengths, neumann)
    want = op.assemble(kappa).diagonal()
    got = op.diagonal(kappa).reshape(-1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    # Dirichlet rows are identity rows
    assert np.all(got[op.dirichlet_mask.reshape(-1).numpy()] == 1.0)


@pytest.mark.parametrize("cells, lengths, neumann", CASES, ids=IDS)
def test_raw_operator_annihilates_constants(cells, lengths, neumann):
    grid, op, kappa = _setup(cells, lengths, neumann)
    out = op.apply_raw(kappa, torch.full(grid.node_shape, 3.0, dtype=DT))
    assert float(out.abs().max()) <= 1e-13 * float(kappa.max())


@pytest.mark.parametrize("cells, lengths", [((5, 4), (1.0, 2.0)), ((3, 4, 5), (1.0, 0.5, 2.0))])
def test_interior_rows_are_volume_times_minus_laplacian(cells, lengths):
    # constant kappa, quadratic u: the central stencil is exact, (A u)_i = |V_i| * (-kappa lap u)
    grid = UniformGrid(cells, lengths)
    op = FDPoissonOperator(grid)
    coords = grid.coordinates()
    u = sum((a + 1) * c**2 for a, c in enumerate(coords))
    lap = sum(2.0 * (a + 1) for a in range(grid.ndim))
    kappa = torch.full(grid.node_shape, 1.7, dtype=DT)
    inner = (slice(1, -1),) * grid.ndim
    got = op.apply_raw(kappa, u)[inner]
    want = -1.7 * lap * math.prod(grid.spacing)
    assert float((got - want).abs().max()) <= 1e-12 * abs(want)


@pytest.mark.parametrize("neumann", [(), ("y1",), ("y0", "y1"), ("x0",)])
def test_linear_solution_reproduced_exactly(neumann):
    # u = 1 + 2x - 3y with constant kappa and f = 0: the scheme is exact for linear u
    grid = UniformGrid((7, 6), (1.0, 1.5))
    op = FDPoissonOperator(grid, neumann_sides=neumann)
    x, y = grid.coordinates()
    u = 1 + 2 * x - 3 * y
    kappa = torch.full(grid.node_shape, 2.5, dtype=DT)
    outward_flux = {"x0": -2.5 * 2.0, "x1": 2.5 * 2.0, "y0": 2.5 * 3.0, "y1": -2.5 * 3.0}
    g = torch.zeros_like(u)
    for side in neumann:
        g[grid.side_mask(side)] = outward_flux[side]
    b = op.rhs(kappa, source=torch.zeros_like(u), dirichlet=u, neumann=g)
    uh = DirectSolver().prepare(op, kappa)(b)
    assert float((uh - u).abs().max()) <= 1e-12 * float(u.abs().max())


def test_rhs_dirichlet_rows_hold_the_data():
    grid, op, kappa = _setup((5, 4), (1.0, 1.0), ("y1",))
    g = _rand(grid.node_shape, 5)
    b = op.rhs(kappa, source=_rand(grid.node_shape, 6), dirichlet=g)
    torch.testing.assert_close(b[op.dirichlet_mask], g[op.dirichlet_mask], rtol=0, atol=0)
    # no data at all: zero rhs
    assert float(op.rhs(kappa).abs().max()) == 0.0


def test_rhs_neumann_ignored_without_neumann_sides():
    grid, op, kappa = _setup((5, 4), (1.0, 1.0), ())
    f = _rand(grid.node_shape, 5)
    torch.testing.assert_close(op.rhs(kappa, source=f, neumann=_rand(grid.node_shape, 6)), op.rhs(kappa, source=f))


def test_rhs_neumann_weights_are_face_areas():
    grid = UniformGrid((4, 5), (2.0, 1.0))
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    kappa = torch.ones(grid.node_shape, dtype=DT)
    b = op.rhs(kappa, neumann=torch.ones(grid.node_shape, dtype=DT))
    # total Neumann face area on y1 is L_x = 2, split over the free nodes (corners are Dirichlet)
    hx = grid.spacing[0]
    assert float(b.sum()) == pytest.approx(2.0 - hx, rel=1e-14)
    assert float(b[1, -1]) == pytest.approx(hx, rel=1e-14)


def test_pure_neumann_raises():
    with pytest.raises(InvalidParameterError, match="Dirichlet"):
        FDPoissonOperator(UniformGrid((3, 3)), neumann_sides=("x0", "x1", "y0", "y1"))


def test_unknown_side_raises():
    with pytest.raises(InvalidParameterError, match="allowed: x0, x1, y0, y1"):
        FDPoissonOperator(UniformGrid((3, 3)), neumann_sides=("z1",))


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -1.0])
@pytest.mark.parametrize("dims", [2, 3])
def test_bad_kappa_raises_naming_kappa(bad, dims):
    grid = UniformGrid((3,) * dims)
    op = FDPoissonOperator(grid)
    kappa = torch.ones(grid.node_shape, dtype=DT)
    kappa[(1,) * dims] = bad
    with pytest.raises(InvalidParameterError, match="kappa"):
        op.check_kappa(kappa)
    with pytest.raises(InvalidParameterError, match="kappa"):
        op.assemble(kappa)


def test_wrong_shape_kappa_and_data_raise():
    grid = UniformGrid((4, 3))
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    good = torch.ones(grid.node_shape, dtype=DT)
    bad = torch.ones(4, 5, dtype=DT)
    with pytest.raises(ShapeMismatchError, match="kappa"):
        op.check_kappa(bad)
    with pytest.raises(ShapeMismatchError, match="kappa"):
        op.assemble(bad)
    for name in ("source", "dirichlet", "neumann"):
        with pytest.raises(ShapeMismatchError, match=name):
            op.rhs(good, **{name: bad})


def test_rhs_nan_source_raises():
    grid = UniformGrid((4, 3))
    op = FDPoissonOperator(grid)
    f = torch.ones(grid.node_shape, dtype=DT)
    f[2, 1] = math.nan
    with pytest.raises(InvalidParameterError, match="source"):
        op.rhs(torch.ones(grid.node_shape, dtype=DT), source=f)


@pytest.mark.parametrize("cells, lengths, neumann", CASES, ids=IDS)
def test_bound_fast_matvec_equals_apply(cells, lengths, neumann):
    """``bind`` (what the CG solvers call) is the same operator as the differentiable ``apply``."""
    grid, op, kappa = _setup(cells, lengths, neumann)
    u = _rand((2,) + grid.node_shape, seed=4)
    want = op.apply(kappa, u)
    assert float((op.bind(kappa)(u) - want).abs().max()) <= 1e-13 * float(want.abs().max())
