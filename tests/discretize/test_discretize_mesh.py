"""physinv.discretize.mesh.TriMesh."""

import numpy as np
import pytest

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.mesh import TriMesh


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("diagonal", ["right", "left"])
def test_unit_square(n, diagonal):
    mesh = TriMesh.unit_square(n, diagonal)
    assert mesh.num_nodes == (n + 1) ** 2
    assert mesh.num_cells == 2 * n * n
    areas = mesh.areas()
    assert np.all(areas > 0)
    np.testing.assert_allclose(areas, 0.5 / n**2, rtol=1e-13)
    assert areas.sum() == pytest.approx(1.0, rel=1e-14)
    assert len(mesh.boundary_nodes()) == 4 * n
    assert len(mesh.boundary_edges()) == 4 * n
    on_boundary = np.any((mesh.points == 0.0) | (mesh.points == 1.0), axis=1)
    np.testing.assert_array_equal(np.flatnonzero(on_boundary), mesh.boundary_nodes())
    assert mesh.max_edge_length() == pytest.approx(np.sqrt(2) / n, rel=1e-14)


def test_right_diagonal_runs_from_origin():
    mesh = TriMesh.unit_square(1, "right")
    edges = {tuple(sorted(map(tuple, mesh.points[[a, b]]))) for c in mesh.cells for a, b in ((c[0], c[1]), (c[1], c[2]), (c[2], c[0]))}
    assert ((0.0, 0.0), (1.0, 1.0)) in edges
    assert ((0.0, 1.0), (1.0, 0.0)) not in edges


def test_clockwise_cells_are_reoriented():
    ref = TriMesh.unit_square(3)
    flipped = TriMesh(ref.points, ref.cells[:, ::-1])
    np.testing.assert_allclose(flipped.areas(), ref.areas(), rtol=1e-14)
    mixed_cells = ref.cells.copy()
    mixed_cells[::2] = mixed_cells[::2, [1, 0, 2]]
    mixed = TriMesh(ref.points, mixed_cells)
    assert np.all(mixed.areas() > 0)
    # the same triangles, as vertex sets
    np.testing.assert_array_equal(np.sort(mixed.cells, axis=1), np.sort(ref.cells, axis=1))


def test_points_with_z_column_are_projected():
    ref = TriMesh.unit_square(2)
    pts3 = np.column_stack([ref.points, np.full(ref.num_nodes, 7.0)])
    mesh = TriMesh(pts3, ref.cells)
    assert mesh.points.shape == (ref.num_nodes, 2)
    np.testing.assert_array_equal(mesh.points, ref.points)


@pytest.mark.parametrize(
    "points, cells",
    [
        (np.zeros((4, 4)), [[0, 1, 2]]),
        (np.zeros(8), [[0, 1, 2]]),
        ([[0, 0], [1, 0], [0, 1]], [[0, 1]]),
        ([[0, 0], [1, 0], [0, 1]], [0, 1, 2]),
        ([[0, 0], [1, 0], [0, 1]], [[0, 1, 3]]),
        ([[0, 0], [1, 0], [0, 1]], [[-1, 1, 2]]),
    ],
)
def test_bad_shapes_raise(points, cells):
    with pytest.raises(ShapeMismatchError):
        TriMesh(np.asarray(points, dtype=float), np.asarray(cells))


def test_degenerate_triangle_raises():
    with pytest.raises(InvalidParameterError, match="degenerate"):
        TriMesh(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), np.array([[0, 1, 2]]))


@pytest.mark.parametrize("n, diagonal", [(0, "right"), (2, "crossed")])
def test_unit_square_invalid_arguments(n, diagonal):
    with pytest.raises(InvalidParameterError):
        TriMesh.unit_square(n, diagonal)


def test_from_file_drops_unused_points(tmp_path):
    meshio = pytest.importorskip("meshio")
    ref = TriMesh.unit_square(2)
    # a stray geometry point (as gmsh writes them) that no triangle uses, first in the list
    points = np.vstack([[[5.0, 5.0, 0.0]], np.column_stack([ref.points, np.zeros(ref.num_nodes)])])
    path = tmp_path / "square.vtu"
    meshio.write(str(path), meshio.Mesh(points, [("triangle", ref.cells + 1), ("vertex", np.array([[0]]))]))
    mesh = TriMesh.from_file(path)
    np.testing.assert_array_equal(mesh.points, ref.points)
    np.testing.assert_array_equal(mesh.cells, ref.cells)


def test_from_file_without_triangles_raises(tmp_path):
    meshio = pytest.importorskip("meshio")
    path = tmp_path / "lines.vtu"
    meshio.write(str(path), meshio.Mesh(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], [("line", np.array([[0, 1]]))]))
    with pytest.raises(InvalidParameterError, match="no triangle"):
        TriMesh.from_file(path)
