"""physinv.discretize.p1.P1PoissonOperator."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.linalg.solvers import DirectSolver

DT = torch.float64


def _perturbed_mesh(n=5, seed=0, scale=(1.0, 1.0)):
    """Unit square with interior nodes moved randomly (an unstructured-looking mesh)."""
    ref = TriMesh.unit_square(n)
    pts = ref.points.copy()
    interior = np.setdiff1d(np.arange(ref.num_nodes), ref.boundary_nodes())
    pts[interior] += np.random.default_rng(seed).uniform(-0.25, 0.25, (len(interior), 2)) / n
    return TriMesh(pts * np.array(scale), ref.cells)


MESHES = {
    "structured": lambda: TriMesh.unit_square(4),
    "left": lambda: TriMesh.unit_square(3, "left"),
    "perturbed": _perturbed_mesh,
    "scaled": lambda: _perturbed_mesh(4, 1, (2.0, 0.5)),
}


def _kappa(op, kind, seed=0):
    n = op.mesh.num_cells if kind == "cell" else op.mesh.num_nodes
    return 0.5 + torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _rand(n, seed):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=DT)


@pytest.mark.parametrize("mesh_name", list(MESHES))
@pytest.mark.parametrize("kind", ["cell", "nodal"])
def test_apply_equals_assemble(mesh_name, kind):
    op = P1PoissonOperator(MESHES[mesh_name]())
    kappa = _kappa(op, kind)
    a = op.assemble(kappa)
    u = torch.stack([_rand(op.mesh.num_nodes, s) for s in (1, 2)])
    got = op.apply(kappa, u).numpy()
    want = (a @ u.numpy().T).T
    assert np.abs(got - want).max() <= 1e-13 * np.abs(want).max()
    asym = abs(a - a.T).max()
    assert asym <= 1e-15 * abs(a).max()
    np.testing.assert_allclose(op.diagonal(kappa).numpy(), a.diagonal(), rtol=1e-14)
    eig = np.linalg.eigvalsh(a.toarray())
    assert eig.min() > 0


def test_apply_equals_assemble_with_subset_of_dirichlet_nodes():
    mesh = TriMesh.unit_square(4)
    left = np.flatnonzero(mesh.points[:, 0] == 0.0)
    op = P1PoissonOperator(mesh, dirichlet_nodes=left)
    kappa = _kappa(op, "cell")
    u = _rand(mesh.num_nodes, 3)
    want = op.assemble(kappa) @ u.numpy()
    assert np.abs(op.apply(kappa, u).numpy() - want).max() <= 1e-13 * np.abs(want).max()
    assert int(op.dirichlet_mask.sum()) == 5


@pytest.mark.parametrize("mesh_name", list(MESHES))
def test_mass_matrix_sums_to_area(mesh_name):
    mesh = MESHES[mesh_name]()
    op = P1PoissonOperator(mesh)
    area = mesh.areas().sum()
    m = op.assemble_mass()
    assert m.sum() == pytest.approx(area, rel=1e-14)
    assert area == pytest.approx(1.0, rel=1e-14)
    ones = torch.ones(mesh.num_nodes, dtype=DT)
    assert float(op.mass_apply(ones).sum()) == pytest.approx(area, rel=1e-14)
    # M integrates the P1 interpolant of x exactly: int_square x dA = L_x^2 L_y / 2
    x = torch.from_numpy(mesh.points[:, 0])
    lx, ly = mesh.points.max(axis=0)
    assert float(ones @ op.mass_apply(x)) == pytest.approx(lx**2 * ly / 2, rel=1e-13)
    u = _rand(mesh.num_nodes, 4)
    np.testing.assert_allclose(op.mass_apply(u).numpy(), m @ u.numpy(), rtol=1e-13, atol=1e-15)


def test_nodal_kappa_equals_cell_mean_of_vertices():
    op = P1PoissonOperator(_perturbed_mesh())
    nodal = _kappa(op, "nodal", seed=7)
    cell = nodal[op.cells].mean(dim=1)
    u = _rand(op.mesh.num_nodes, 5)
    torch.testing.assert_close(op.apply(nodal, u), op.apply(cell, u), rtol=1e-14, atol=1e-14)
    # constant kappa: nodal and cell values give the same operator
    c_nodal = torch.full((op.mesh.num_nodes,), 2.0, dtype=DT)
    c_cell = torch.full((op.mesh.num_cells,), 2.0, dtype=DT)
    assert abs(op.assemble(c_nodal) - op.assemble(c_cell)).max() <= 1e-14


def test_energy_of_linear_function_is_exact():
    # u = a + b.x: u^T K u = kappa |b|^2 area, and K annihilates constants
    mesh = _perturbed_mesh(4, 2, (2.0, 0.5))
    op = P1PoissonOperator(mesh)
    kappa = torch.full((mesh.num_cells,), 1.3, dtype=DT)
    pts = torch.from_numpy(mesh.points)
    u = 0.7 + 2.0 * pts[:, 0] - 3.0 * pts[:, 1]
    assert float(u @ op.apply_raw(kappa, u)) == pytest.approx(1.3 * 13.0 * 1.0, rel=1e-13)
    assert float(op.apply_raw(kappa, torch.ones_like(u)).abs().max()) <= 1e-13


@pytest.mark.parametrize("mesh_name", ["structured", "perturbed", "scaled"])
def test_linear_dirichlet_lifting_is_exact(mesh_name):
    mesh = MESHES[mesh_name]()
    op = P1PoissonOperator(mesh)
    pts = torch.from_numpy(mesh.points)
    u = 1.0 + 2.0 * pts[:, 0] - 3.0 * pts[:, 1]
    kappa = torch.full((mesh.num_nodes,), 2.5, dtype=DT)
    b = op.rhs(kappa, source=torch.zeros_like(u), dirichlet=u)
    uh = DirectSolver().prepare(op, kappa)(b)
    assert float((uh - u).abs().max()) <= 1e-12 * float(u.abs().max())
    torch.testing.assert_close(b[op.dirichlet_mask], u[op.dirichlet_mask], rtol=0, atol=0)


def test_wrong_shape_kappa_raises():
    op = P1PoissonOperator(TriMesh.unit_square(3))
    bad = torch.ones(op.mesh.num_nodes + 1, dtype=DT)
    with pytest.raises(ShapeMismatchError, match=r"kappa has shape \(17,\); expected \(n_nodes,\)=16"):
        op.check_kappa(bad)
    with pytest.raises(ShapeMismatchError, match="kappa"):
        op.apply(bad, torch.zeros(op.mesh.num_nodes, dtype=DT))
    with pytest.raises(ShapeMismatchError, match="kappa"):
        op.assemble(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -0.5])
@pytest.mark.parametrize("kind", ["cell", "nodal"])
def test_bad_kappa_values_raise(bad, kind):
    op = P1PoissonOperator(TriMesh.unit_square(3))
    kappa = _kappa(op, kind)
    kappa[4] = bad
    with pytest.raises(InvalidParameterError, match="kappa"):
        op.check_kappa(kappa)
    with pytest.raises(InvalidParameterError, match="kappa"):
        op.assemble(kappa)


def test_rhs_checks_data():
    op = P1PoissonOperator(TriMesh.unit_square(3))
    kappa = _kappa(op, "cell")
    with pytest.raises(ShapeMismatchError, match="source"):
        op.rhs(kappa, source=torch.zeros(5, dtype=DT))
    with pytest.raises(ShapeMismatchError, match="dirichlet"):
        op.rhs(kappa, dirichlet=torch.zeros(5, dtype=DT))
    f = torch.zeros(op.mesh.num_nodes, dtype=DT)
    f[3] = math.nan
    with pytest.raises(InvalidParameterError, match="source"):
        op.rhs(kappa, source=f)


def test_no_dirichlet_nodes_raises():
    with pytest.raises(ShapeMismatchError, match="Dirichlet"):
        P1PoissonOperator(TriMesh.unit_square(2), dirichlet_nodes=[])


@pytest.mark.parametrize("kind", ["cell", "nodal"])
def test_bound_matvec_equals_apply(kind):
    op = P1PoissonOperator(_perturbed_mesh())
    kappa = _kappa(op, kind)
    u = torch.stack([_rand(op.mesh.num_nodes, 7), _rand(op.mesh.num_nodes, 8)])
    want = op.apply(kappa, u)
    assert float((op.bind(kappa)(u) - want).abs().max()) <= 1e-13 * float(want.abs().max())
