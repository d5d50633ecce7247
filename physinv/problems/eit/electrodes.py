"""Triangle meshes with electrodes marked on their boundary (for EIT).

An electrode is a set of boundary edges.  Electrodes are numbered ``1..L`` in
the mesh file (gmsh physical curves ``electrode_1`` .. ``electrode_L``, as
``meshes/eit_disk.geo`` writes them) and ``0..L-1`` in arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physinv.core.errors import InvalidParameterError, MeshError, ShapeMismatchError
from physinv.discretize.mesh import TriMesh, read_mesh_file

_ELECTRODE_NAME = re.compile(r"^electrode_(\d+)$")


class MissingElectrodesError(InvalidParameterError):
    """A mesh has no (or inconsistent) electrode markers."""


@dataclass(frozen=True)
class ElectrodeMesh:
    """A :class:`TriMesh` and, per electrode, the boundary edges it covers.

    Attributes
    ----------
    mesh
        The triangle mesh.
    electrode_edges
        One ``(n_k, 2)`` int64 array of node-index pairs per electrode, in
        electrode order; every edge is a boundary edge and no edge belongs to
        two electrodes.
    """

    mesh: TriMesh
    electrode_edges: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        edges = tuple(np.asarray(e, dtype=np.int64).reshape(-1, 2) for e in self.electrode_edges)
        if not edges:
            raise MissingElectrodesError("the mesh has no electrodes; mark each electrode's boundary edges")
        empty = [k + 1 for k, e in enumerate(edges) if len(e) == 0]
        if empty:
            raise MissingElectrodesError(f"electrode(s) {empty} cover no boundary edge")
        boundary = {tuple(e) for e in self.mesh.boundary_edges()}
        seen: set[tuple[int, int]] = set()
        for k, e in enumerate(edges):
            if e.min() < 0 or e.max() >= self.mesh.num_nodes:
                raise ShapeMismatchError(f"electrode {k + 1} names nodes outside 0..{self.mesh.num_nodes - 1}")
            for edge in map(tuple, np.sort(e, axis=1)):
                if edge not in boundary:
                    raise MissingElectrodesError(f"electrode {k + 1} has edge {edge}, which is not a boundary edge")
                if edge in seen:
                    raise MissingElectrodesError(f"edge {edge} belongs to two electrodes")
                seen.add(edge)
        object.__setattr__(self, "electrode_edges", edges)

    @property
    def num_electrodes(self) -> int:
        return len(self.electrode_edges)

    def electrode_lengths(self) -> np.ndarray:
        """Length ``|e_l|`` of each electrode (m), ``(L,)``."""
        p = self.mesh.points
        return np.array([np.linalg.norm(p[e[:, 1]] - p[e[:, 0]], axis=1).sum() for e in self.electrode_edges])

    def electrode_centres(self) -> np.ndarray:
        """Length-weighted mean position of each electrode's edge midpoints, ``(L, 2)``."""
        p = self.mesh.points
        out = []
        for e in self.electrode_edges:
            length = np.linalg.norm(p[e[:, 1]] - p[e[:, 0]], axis=1)
            mid = 0.5 * (p[e[:, 0]] + p[e[:, 1]])
            out.append((length[:, None] * mid).sum(0) / length.sum())
        return np.array(out)

    @classmethod
    def eit_disk(cls, h: float = 0.1, n_electrodes: int = 16, coverage: float = 0.5) -> "ElectrodeMesh":
        """Unit disk with electrodes, meshed with gmsh (:func:`physinv.problems.eit.mesh.eit_disk_arrays`)."""
        from physinv.problems.eit.mesh import eit_disk_arrays

        points, cells, electrode_edges = eit_disk_arrays(h, n_electrodes, coverage)
        return cls(TriMesh(points, cells), tuple(electrode_edges))

    @classmethod
    def shipped(cls, name: str = "eit_disk_h0.1.msh") -> "ElectrodeMesh":
        """An electrode mesh shipped in the repository's ``meshes/`` folder."""
        from physinv.fem.gmsh_meshes import shipped_mesh_path

        return cls.from_file(shipped_mesh_path(name))

    @classmethod
    def from_file(cls, path: str | Path) -> "ElectrodeMesh":
        """Read triangles and electrode markers from a gmsh ``.msh`` file (meshio).

        Electrodes are the physical curves named ``electrode_1`` .. ``electrode_L``
        (consecutive numbers from 1); a file without them raises
        :class:`MissingElectrodesError`.  The triangles must pass the checks of
        :func:`~physinv.discretize.mesh.check_mesh` (points no triangle uses
        are dropped first); an unreadable, missing or triangle-less file raises
        :class:`~physinv.core.errors.MeshError`.
        """
        data = read_mesh_file(path, "gmsh", "a gmsh .msh file with triangles and electrode_k physical curves")
        numbers = {}
        for name, (tag, dim) in data.field_data.items():
            match = _ELECTRODE_NAME.match(name)
            if match and int(dim) == 1:
                numbers[int(tag)] = int(match.group(1))
        if not numbers:
            raise MissingElectrodesError(
                f"{path} has no electrode markers: expected physical curves named electrode_1 .. electrode_L "
                "(see meshes/eit_disk.geo)"
            )
        count = max(numbers.values())
        if sorted(numbers.values()) != list(range(1, count + 1)):
            raise MissingElectrodesError(
                f"{path}: electrode numbers {sorted(numbers.values())} are not 1..{count} without gaps"
            )
        physical = data.cell_data.get("gmsh:physical")
        if physical is None:
            raise MissingElectrodesError(f"{path} has no physical tags on its elements")
        triangles = [block.data for block in data.cells if block.type == "triangle"]
        if not triangles:
            raise MeshError(f"{path} holds no triangle cells; physinv P1 needs triangles")
        cells = np.concatenate(triangles)
        edges: list[list[np.ndarray]] = [[] for _ in range(count)]
        for block, tags in zip(data.cells, physical):
            if block.type != "line":
                continue
            for tag in np.unique(tags):
                if int(tag) in numbers:
                    edges[numbers[int(tag)] - 1].append(block.data[tags == tag])
        used = np.unique(cells)
        remap = -np.ones(len(data.points), dtype=np.int64)
        remap[used] = np.arange(len(used))
        electrode_edges = tuple(
            remap[np.concatenate(e)] if e else np.empty((0, 2), dtype=np.int64) for e in edges
        )
        return cls(TriMesh(data.points[used, :2], remap[cells]), electrode_edges)


def square_electrode_mesh(n: int = 4) -> ElectrodeMesh:
    """The unit square (``TriMesh.unit_square(n)``) with one electrode in the middle of each side
    (no gmsh needed: the tiny example of the simulator and operator registries and of tests)."""
    mesh = TriMesh.unit_square(n)
    points, edges = mesh.points, mesh.boundary_edges()
    mid = points[edges].mean(axis=1)
    electrodes = []
    for side in ((1, 0.0), (0, 1.0), (1, 1.0), (0, 0.0)):  # bottom, right, top, left: counter-clockwise
        axis, value = side
        on_side = np.isclose(mid[:, axis], value)
        along = mid[:, 1 - axis]
        centre = np.isclose(along, (np.floor(n / 2) + 0.5) / n)
        electrodes.append(edges[on_side & centre])
    return ElectrodeMesh(mesh, tuple(electrodes))
