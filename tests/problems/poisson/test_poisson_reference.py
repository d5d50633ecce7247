"""DOLFINx P1 reference vs the torch P1 operator, gmsh meshes, missing extras."""

import sys

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, MissingExtraError, ShapeMismatchError
from physinv.discretize import P1PoissonOperator, TriMesh
from physinv.fem import gmsh_meshes
from physinv.fem.dolfinx import import_dolfinx, mesh_boundary_nodes
from physinv.problems.poisson.reference import solve_p1_poisson
from physinv.linalg.solvers import DirectSolver

TOL = 1e-8  # same discrete problem: agreement to solver tolerance, not discretization error


@pytest.fixture(scope="module")
def shuffled_mesh():
    """Structured mesh with points and cells in random order (tests the index mapping)."""
    rng = np.random.default_rng(1)
    base = TriMesh.unit_square(12, diagonal="left")
    perm = rng.permutation(base.num_nodes)
    inverse = np.argsort(perm)
    cells = inverse[base.cells][rng.permutation(base.num_cells)]
    return TriMesh(base.points[perm], cells)


def torch_p1(mesh, kappa, f, g, dirichlet_nodes=None):
    op = P1PoissonOperator(mesh, dirichlet_nodes)
    k = torch.from_numpy(kappa)
    b = op.rhs(k, None if f is None else torch.from_numpy(f), torch.from_numpy(g))
    return DirectSolver().prepare(op, k)(b).numpy()


def data(mesh, kappa_on):
    x, y = mesh.points.T
    if kappa_on == "node":
        kappa = 1.0 + x**2 + y
    else:
        c = mesh.points[mesh.cells].mean(axis=1)
        kappa = 1.0 + 0.5 * np.sin(3 * c[:, 0]) + c[:, 1] ** 2
    return kappa, np.cos(2 * x) * np.sin(3 * y) + 1.0, x * y + x - 0.5


def rel_diff(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("kappa_on", ["node", "cell"])
@pytest.mark.parametrize("ksp", ["lu", "cg-gamg"])
def test_agrees_with_torch_p1(dolfinx, shuffled_mesh, kappa_on, ksp):
    mesh = shuffled_mesh
    kappa, f, g = data(mesh, kappa_on)
    cells = mesh.cells.copy()
    cells[::2] = cells[::2, [0, 2, 1]]  # clockwise triangles are fine too
    u_ref, info = solve_p1_poisson(mesh.points, cells, kappa, f, g, ksp=ksp, return_info=True)
    assert info["kappa_on"] == kappa_on and info["num_dofs"] == mesh.num_nodes
    assert rel_diff(torch_p1(mesh, kappa, f, g), u_ref) <= TOL
    boundary = mesh.boundary_nodes()  # exact with LU; to the CG tolerance with cg-gamg
    atol = 1e-14 if ksp == "lu" else 1e-10
    np.testing.assert_allclose(u_ref[boundary], g[boundary], rtol=0, atol=atol)


def test_custom_dirichlet_nodes_and_zero_source(dolfinx):
    mesh = TriMesh.unit_square(10)
    kappa, _, g = data(mesh, "node")
    left = np.flatnonzero(mesh.points[:, 0] == 0.0)  # natural (zero-flux) condition elsewhere
    f = np.ones(mesh.num_nodes)
    u_ref = solve_p1_poisson(mesh.points, mesh.cells, kappa, f, g, dirichlet_nodes=left)
    assert rel_diff(torch_p1(mesh, kappa, f, g, left), u_ref) <= TOL
    u0 = solve_p1_poisson(mesh.points, mesh.cells, kappa, None, g)  # f = 0: harmonic-like
    assert rel_diff(torch_p1(mesh, kappa, None, g), u0) <= TOL


def test_gmsh_mesh_agrees(dolfinx):
    pytest.importorskip("gmsh")
    mesh = TriMesh.gmsh_unit_square(0.15)
    kappa, f, g = data(mesh, "cell")
    u_ref = solve_p1_poisson(mesh.points, mesh.cells, kappa, f, g)
    assert rel_diff(torch_p1(mesh, kappa, f, g), u_ref) <= TOL


def test_bad_inputs_raise_before_dolfinx():
    mesh = TriMesh.unit_square(3)
    kappa = np.ones(mesh.num_nodes)
    with pytest.raises(InvalidParameterError, match="strictly positive"):
        solve_p1_poisson(mesh.points, mesh.cells, -kappa)
    with pytest.raises(ShapeMismatchError, match="n_cells"):
        solve_p1_poisson(mesh.points, mesh.cells, np.ones(5))
    with pytest.raises(InvalidParameterError, match="NaN"):
        solve_p1_poisson(mesh.points, mesh.cells, kappa, np.full(mesh.num_nodes, np.nan))
    with pytest.raises(InvalidParameterError, match="unknown ksp"):
        solve_p1_poisson(mesh.points, mesh.cells, kappa, ksp="gmres")
    with pytest.raises(ShapeMismatchError, match="belong to no triangle"):
        solve_p1_poisson(np.vstack([mesh.points, [[2.0, 2.0]]]), mesh.cells, np.ones(mesh.num_cells))


def test_boundary_nodes_match_trimesh():
    mesh = TriMesh.unit_square(5)
    np.testing.assert_array_equal(mesh_boundary_nodes(mesh.cells), mesh.boundary_nodes())


def test_missing_dolfinx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dolfinx", None)
    monkeypatch.setitem(sys.modules, "dolfinx_solver", None)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        import_dolfinx()
    mesh = TriMesh.unit_square(2)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        solve_p1_poisson(mesh.points, mesh.cells, np.ones(mesh.num_nodes))


def test_missing_gmsh_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gmsh", None)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        TriMesh.gmsh_unit_square(0.2)


def test_gmsh_unit_square_mesh():
    pytest.importorskip("gmsh")
    h = 0.1
    mesh = TriMesh.gmsh_unit_square(h)
    assert mesh.areas().min() > 0 and mesh.areas().sum() == pytest.approx(1.0, abs=1e-12)
    assert mesh.points.min() >= 0.0 and mesh.points.max() <= 1.0
    b = mesh.points[mesh.boundary_nodes()]
    on_side = np.isclose(b, 0.0, atol=1e-12) | np.isclose(b, 1.0, atol=1e-12)
    assert on_side.any(axis=1).all()
    assert h / 2 < mesh.max_edge_length() < 1.5 * h
    again = TriMesh.gmsh_unit_square(h)  # deterministic (single-threaded Frontal-Delaunay)
    np.testing.assert_array_equal(again.points, mesh.points)
    np.testing.assert_array_equal(again.cells, mesh.cells)
    with pytest.raises(InvalidParameterError):
        TriMesh.gmsh_unit_square(0.0)


def test_shipped_mesh_is_the_geo_mesh(tmp_path):
    """meshes/unit_square_h0.1.msh (gmsh CLI on unit_square.geo) equals the Python API mesh."""
    pytest.importorskip("gmsh")
    pytest.importorskip("meshio")
    if not (gmsh_meshes.MESH_DIR / "unit_square_h0.1.msh").is_file():
        pytest.skip("shipped meshes/ folder not present (installed from a wheel)")
    shipped = TriMesh.shipped("unit_square_h0.1.msh")
    made = TriMesh.gmsh_unit_square(0.1, msh_path=tmp_path / "u.msh")
    assert (tmp_path / "u.msh").stat().st_size > 0
    assert shipped.num_nodes == made.num_nodes and shipped.num_cells == made.num_cells
    np.testing.assert_allclose(shipped.points, made.points, atol=1e-12)
    key = lambda cells: np.sort(np.sort(cells, axis=1), axis=0)  # noqa: E731
    np.testing.assert_array_equal(key(shipped.cells), key(made.cells))
