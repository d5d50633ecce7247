"""Fault injection on meshes: non-conforming or damaged meshes and unreadable mesh files are refused.

Each fault must end in a :class:`~physinv.core.errors.MeshError` that says what is wrong and where,
never in a silently wrong mesh nor in ``SystemExit`` from meshio.
"""

from pathlib import Path

import numpy as np
import pytest

from physinv.core.errors import MeshError
from physinv.discretize.mesh import TriMesh
from physinv.fem.gmsh_meshes import shipped_mesh_path
from physinv.problems.eit.electrodes import ElectrodeMesh

meshio = pytest.importorskip("meshio")

SHIPPED = sorted(p.name for p in shipped_mesh_path().parent.glob("*.msh"))
READERS = {"TriMesh.from_file": TriMesh.from_file, "ElectrodeMesh.from_file": ElectrodeMesh.from_file}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_meshes_pass_the_checks(name):
    mesh = TriMesh.shipped(name)
    assert mesh.areas().min() > 0
    if name.startswith("eit_disk"):
        assert ElectrodeMesh.shipped(name).num_electrodes == 16


def test_nan_coordinate_is_refused():
    ref = TriMesh.unit_square(4)
    points = ref.points.copy()
    points[7] = [np.nan, 0.5]
    with pytest.raises(MeshError, match=r"1 node\(s\) with non-finite coordinates: 7 at \(nan, 0.5\)"):
        TriMesh(points, ref.cells)


def test_crack_of_duplicated_nodes_is_refused():
    """Nodes on x = 0.5 duplicated for the triangles right of it: a crack that would make them boundary nodes."""
    ref = TriMesh.unit_square(8)
    crack = np.flatnonzero(ref.points[:, 0] == 0.5)
    copies = ref.num_nodes + np.arange(len(crack))
    remap = np.arange(ref.num_nodes)
    remap[crack] = copies
    right = ref.points[ref.cells].mean(axis=1)[:, 0] > 0.5
    cells = np.where(right[:, None], remap[ref.cells], ref.cells)
    points = np.vstack([ref.points, ref.points[crack]])
    with pytest.raises(MeshError, match=r"9 pair\(s\) of duplicate nodes") as info:
        TriMesh(points, cells)
    assert f"nodes {crack[0]} and {copies[0]} at (0.5, 0)" in str(info.value)


def test_triangle_listed_twice_is_refused():
    ref = TriMesh.unit_square(4)
    cells = np.vstack([ref.cells, ref.cells[5]])
    with pytest.raises(MeshError, match=r"1 triangle\(s\) listed more than once: cell 32 repeats cell 5"):
        TriMesh(ref.points, cells)


def test_non_manifold_edge_is_refused():
    """A third triangle on the diagonal (0, 0)-(1, 1) of the unit square."""
    ref = TriMesh.unit_square(1)
    points = np.vstack([ref.points, [2.0, 0.5]])
    cells = np.vstack([ref.cells, [0, 3, 4]])
    match = r"1 edge\(s\) shared by more than two triangles: edge \(0, 3\) from \(0, 0\) to \(1, 1\) \(3 triangles\)"
    with pytest.raises(MeshError, match=match):
        TriMesh(points, cells)


def test_unused_node_is_refused():
    ref = TriMesh.unit_square(2)
    points = np.vstack([ref.points, [2.0, 2.0]])
    with pytest.raises(MeshError, match=r"1 node\(s\) used by no triangle: 9 at \(2, 2\)"):
        TriMesh(points, ref.cells)


def test_eit_reader_applies_the_mesh_checks(tmp_path):
    """A triangle listed twice in a gmsh file with electrode markers."""
    data = meshio.read(str(shipped_mesh_path("eit_disk_h0.2.msh")))
    k = next(i for i, block in enumerate(data.cells) if block.type == "triangle")
    cells = [(block.type, block.data) for block in data.cells]
    cells[k] = ("triangle", np.vstack([cells[k][1], cells[k][1][:1]]))
    cell_data = {key: [np.append(v, v[:1]) if i == k else v for i, v in enumerate(values)]
                 for key, values in data.cell_data.items()}
    path = tmp_path / "twice.msh"
    meshio.write(str(path), meshio.Mesh(data.points, cells, cell_data=cell_data, field_data=data.field_data),
                 file_format="gmsh22", binary=False)
    with pytest.raises(MeshError, match="listed more than once"):
        ElectrodeMesh.from_file(path)


def _text(path: Path) -> None:
    path.write_text("These are my notes, not a mesh.\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    path.write_bytes(shipped_mesh_path("eit_disk_h0.1.msh").read_bytes()[:3000])


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("make", [_text, _empty, _truncated], ids=["text", "empty", "truncated"])
def test_unreadable_file_raises_a_physinv_error(tmp_path, reader, make):
    path = tmp_path / "broken.msh"
    make(path)
    with pytest.raises(MeshError, match=r"cannot read .*broken\.msh.*gmsh \.msh"):
        READERS[reader](path)


@pytest.mark.parametrize("reader", READERS)
def test_keyboard_interrupt_while_reading_is_not_swallowed(monkeypatch, reader):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(meshio, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        READERS[reader](shipped_mesh_path("eit_disk_h0.2.msh"))


@pytest.mark.parametrize("reader", READERS)
def test_missing_file_is_named(tmp_path, reader):
    path = tmp_path / "nowhere" / "disk.msh"
    with pytest.raises(MeshError, match=r"no mesh file at .*nowhere.disk\.msh"):
        READERS[reader](path)
