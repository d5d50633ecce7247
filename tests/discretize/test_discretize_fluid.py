"""physinv.discretize.fluid: flagged cell-centred pressure Poisson operator."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.fluid import EMPTY, FLUID, SOLID, FluidPoissonOperator, box_with_obstacles
from physinv.discretize.grid import UniformGrid

DT = torch.float64
ALL_SIDES_3D = ("x0", "x1", "y0", "y1", "z0", "z1")


def _rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _csr_apply(op, u):
    a = op.assemble()
    flat = u.reshape(-1, a.shape[0]).numpy()
    return torch.from_numpy(np.ascontiguousarray((a @ flat.T).T)).reshape(u.shape)


@pytest.mark.parametrize(
    "flags",
    [
        box_with_obstacles(10, "spheres", seed=1),
        box_with_obstacles((9, 7, 8), "boxes", seed=2),
        box_with_obstacles((12, 9), "spheres", seed=3, ndim=2),
    ],
    ids=["spheres3d", "boxes3d", "spheres2d"],
)
def test_matvec_and_apply_equal_assembled_csr(flags):
    op = FluidPoissonOperator(flags)
    u = _rand((3,) + op.state_shape)  # batched
    want = _csr_apply(op, u)
    scale = float(want.abs().max())
    assert float((op.bind()(u) - want).abs().max()) <= 1e-13 * scale
    assert float((op.apply(None, u) - want).abs().max()) <= 1e-13 * scale
    a = op.assemble()
    assert abs(a - a.T).max() == 0.0  # exactly symmetric
    torch.testing.assert_close(op.diagonal(), torch.from_numpy(a.diagonal()).reshape(op.state_shape),
                               rtol=0, atol=0)


def test_float32_matvec_and_dtype_options():
    op = FluidPoissonOperator(box_with_obstacles(8, seed=0))
    u = _rand(op.state_shape)
    want = op.bind()(u)
    for mv in (op.bind(), op.bind(None, dtype=torch.float32)):
        got = mv(u.float())
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5 * float(want.abs().max()))
    diag32 = op.diagonal(None, dtype=torch.float32)
    assert diag32.dtype == torch.float32 and torch.equal(diag32.double(), op.diagonal())
    mask = op.fluid_mask(torch.float64)
    assert mask.dtype == torch.float64 and float(mask.sum()) == op.num_fluid
    assert torch.equal(op.fluid_mask(), op.flags == FLUID)


def test_spd_smallest_eigenvalue_positive_and_identity_rows():
    flags = box_with_obstacles(6, "spheres", seed=4)
    assert int((flags == SOLID).sum()) > 0
    op = FluidPoissonOperator(flags)
    a = op.assemble().toarray()
    eig = np.linalg.eigvalsh(a)
    # obstacle-free 6^3 box, top open: lambda_min = 2 (1 - cos(pi/13)) = 0.0581; the
    # obstacles change it a little (0.0571 measured); a singular A would give ~1e-16
    assert eig.min() > 0.03
    assert eig.max() <= 2 * 3 * 2 + 1e-12  # Gershgorin: 2 * (2 d)
    solid = (flags == SOLID).numpy().ravel()
    rows = a[solid]
    assert np.array_equal(rows, np.eye(a.shape[0])[solid])  # identity rows on solid cells


def test_diagonal_counts_non_solid_neighbours():
    # 2D 3x3: centre cell solid, top side open; flags indexed (x, y), top = y1
    flags = np.full((3, 3), FLUID, dtype=np.int8)
    flags[1, 1] = SOLID
    flags[0, 0] = EMPTY  # an air cell at p = 0
    op = FluidPoissonOperator(flags)
    diag = op.diagonal().numpy()
    want = np.array([
        # x = 0: (0,0) empty -> identity row 1; (0,1): neighbours (0,0)E,(0,2)F,(1,1)S -> 2;
        # (0,2): (0,1)F,(1,2)F, open top -> 3
        [1, 2, 3],
        # x = 1: (1,0): (0,0)E,(2,0)F,(1,1)S -> 2; (1,1) solid -> 1; (1,2): (0,2),(2,2),(1,1)S, top -> 3
        [2, 1, 3],
        # x = 2: (2,0): (1,0)F,(2,1)F -> 2; (2,1): (2,0),(2,2),(1,1)S -> 2; (2,2): (2,1),(1,2), top -> 3
        [2, 2, 3],
    ], dtype=float)
    np.testing.assert_array_equal(diag, want)
    # the off-diagonal couples fluid neighbours only: (0,1)-(0,0) is fluid-empty, no entry
    a = op.assemble()
    idx = lambda i, j: i * 3 + j  # noqa: E731
    assert a[idx(0, 1), idx(0, 0)] == 0 and a[idx(0, 1), idx(0, 2)] == -1.0
    assert op.num_fluid == 7


def test_all_fluid_all_open_is_the_fd_dirichlet_laplacian():
    # cell-centred n^3 with p = 0 on every side == interior block of the vertex-centred
    # FD operator on n + 1 cells, whose 3D face weights are h^2 / h = h
    n = 5
    fluid = FluidPoissonOperator(np.ones((n, n, n), dtype=bool), open_sides=ALL_SIDES_3D)
    grid = UniformGrid((n + 1,) * 3)
    fd = FDPoissonOperator(grid)
    a_fd = fd.assemble(torch.ones(grid.node_shape, dtype=DT)).toarray()
    interior = np.zeros(grid.node_shape, dtype=bool)
    interior[1:-1, 1:-1, 1:-1] = True
    block = a_fd[np.ix_(interior.ravel(), interior.ravel())] / grid.spacing[0]
    np.testing.assert_allclose(fluid.assemble().toarray(), block, rtol=0, atol=1e-12)


def test_box_with_obstacles_is_deterministic_and_kinds_differ():
    a, b = box_with_obstacles(16, "spheres", seed=7), box_with_obstacles(16, "spheres", seed=7)
    assert torch.equal(a, b) and a.dtype == torch.int8
    c = box_with_obstacles(16, "boxes", seed=7)
    solid_a, solid_c = (a == SOLID).numpy(), (c == SOLID).numpy()
    assert 0.01 < solid_a.mean() < 0.5 and 0.01 < solid_c.mean() < 0.5
    assert (solid_a != solid_c).mean() > 0.01  # a different geometry
    assert not (a[..., -1] == SOLID).any()  # the open top layer stays fluid
    # the same seed gives the same obstacles at another resolution (coarse view of the fine one)
    fine = (box_with_obstacles(32, "spheres", seed=7) == SOLID).numpy().reshape(16, 2, 16, 2, 16, 2)
    agree = (fine.mean(axis=(1, 3, 5)) >= 0.5) == solid_a
    assert agree.mean() > 0.97


def test_rhs_checks_and_restrict():
    op = FluidPoissonOperator(box_with_obstacles(8, seed=0))
    b = op.random_rhs(batch=2, seed=3)
    op.check_rhs(b)  # fine
    assert float(b[:, ~op.fluid_mask()].abs().max()) == 0.0
    bad = b.clone()
    bad[0][~op.fluid_mask()] = 1.0
    with pytest.raises(InvalidParameterError, match="non-fluid"):
        op.check_rhs(bad)
    torch.testing.assert_close(op.restrict(bad), b, rtol=0, atol=0)
    nan = b.clone()
    nan[1, 4, 4, 7] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        op.check_rhs(nan)
    with pytest.raises(ShapeMismatchError, match=r"expected \(\.\.\., 8, 8, 8\)"):
        op.check_rhs(torch.zeros(8, 8, 7, dtype=DT))
    with pytest.raises(ShapeMismatchError):
        op.bind()(torch.zeros(2, 8, 7, 8, dtype=DT))
    with pytest.raises(ShapeMismatchError):
        op.apply(None, torch.zeros(8, 8, dtype=DT))


def test_bad_flags_raise():
    with pytest.raises(InvalidParameterError, match="no FLUID"):
        FluidPoissonOperator(np.zeros((4, 4, 4), dtype=np.int8))
    with pytest.raises(InvalidParameterError, match="outside SOLID"):
        FluidPoissonOperator(np.full((4, 4), 5, dtype=np.int8))
    with pytest.raises(InvalidParameterError, match="integer or bool"):
        FluidPoissonOperator(np.ones((4, 4)))
    with pytest.raises(ShapeMismatchError, match="2D"):
        FluidPoissonOperator(np.ones(4, dtype=bool))
    with pytest.raises(InvalidParameterError, match="unknown open side"):
        FluidPoissonOperator(np.ones((4, 4), dtype=bool), open_sides=("z1",))
    with pytest.raises(InvalidParameterError, match="no Dirichlet"):
        FluidPoissonOperator(np.ones((4, 4, 4), dtype=bool), open_sides=())  # closed box: singular


def test_isolated_fluid_pocket_raises_or_is_solidified():
    flags = np.full((6, 6, 6), FLUID, dtype=np.int8)
    flags[1:4, 1:4, 1:4] = SOLID
    flags[2, 2, 2] = FLUID  # a pocket sealed by solid on all six faces
    with pytest.raises(InvalidParameterError, match="1 connected fluid region"):
        FluidPoissonOperator(flags)
    with pytest.warns(RuntimeWarning, match="turning them SOLID"):
        op = FluidPoissonOperator(flags, isolated="solidify")
    assert int(op.flags[2, 2, 2]) == SOLID and op.num_fluid == int((flags == FLUID).sum()) - 1
    assert np.linalg.eigvalsh(op.assemble().toarray()).min() > 1e-3


def test_works_with_the_classic_solvers():
    from physinv.linalg.solvers import CGSolver, DirectSolver

    op = FluidPoissonOperator(box_with_obstacles(10, "boxes", seed=5))
    b = op.random_rhs(batch=2, seed=1)
    theta = torch.empty(0, dtype=DT)  # the operator has no parameter; solvers want a tensor
    want = DirectSolver().prepare(op, theta)(b)
    got = CGSolver("jacobi", rtol=1e-12).prepare(op, theta)(b)
    assert float((got - want).norm()) <= 1e-9 * float(want.norm())
    assert float(want[:, ~op.fluid_mask()].abs().max()) == 0.0  # identity rows keep p = 0 off the fluid
