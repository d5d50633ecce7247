"""Triangle meshes in 2D: structured unit squares, gmsh/meshio files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.extras import require


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


@dataclass(frozen=True)
class TriMesh:
    """A conforming triangle mesh.

    Attributes
    ----------
    points
        ``(n_nodes, 2)`` float64 coordinates (m).
    cells
        ``(n_cells, 3)`` int64 vertex indices, counter-clockwise.
    """

    points: np.ndarray
    cells: np.ndarray

    def __post_init__(self) -> None:
        points = np.ascontiguousarray(self.points, dtype=np.float64)
        cells = np.ascontiguousarray(self.cells, dtype=np.int64)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ShapeMismatchError(f"points must have shape (n_nodes, 2); got {points.shape}")
        points = points[:, :2].copy()
        if cells.ndim != 2 or cells.shape[1] != 3:
            raise ShapeMismatchError(
                f"cells must have shape (n_cells, 3) (triangles); got {cells.shape}"
            )
        if cells.size and (cells.min() < 0 or cells.max() >= len(points)):
            raise ShapeMismatchError(
                f"cells index nodes 0..{cells.max()} but the mesh has {len(points)} points"
            )
        # orient counter-clockwise so that element areas are positive
        p = points[cells]
        signed = _cross2(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        if np.any(signed == 0):
            raise InvalidParameterError(f"{int(np.sum(signed == 0))} degenerate triangle(s) of zero area")
        cells = np.where((signed < 0)[:, None], cells[:, [0, 2, 1]], cells)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "cells", cells)

    @property
    def num_nodes(self) -> int:
        return len(self.points)

    @property
    def num_cells(self) -> int:
        return len(self.cells)

    def areas(self) -> np.ndarray:
        p = self.points[self.cells]
        return 0.5 * _cross2(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])

    def max_edge_length(self) -> float:
        p = self.points[self.cells]
        edges = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 1], p[:, 0] - p[:, 2]], axis=1)
        return float(np.linalg.norm(edges, axis=-1).max())

    def boundary_edges(self) -> np.ndarray:
        """``(n_edges, 2)`` node pairs of the edges that belong to one triangle only."""
        edges = np.sort(self.cells[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        uniq, counts = np.unique(edges, axis=0, return_counts=True)
        return uniq[counts == 1]

    def boundary_nodes(self) -> np.ndarray:
        """Sorted indices of the nodes on the boundary."""
        return np.unique(self.boundary_edges())

    @classmethod
    def unit_square(cls, n: int, diagonal: str = "right") -> "TriMesh":
        """Structured ``n x n`` mesh of ``[0, 1]^2`` with each square split in two.

        ``diagonal="right"`` splits along (0, 0)-(1, 1), as DOLFINx's
        ``create_unit_square(..., diagonal=DiagonalType.right)``.
        """
        if n < 1:
            raise InvalidParameterError(f"unit_square needs n >= 1 cells per side; got {n}")
        if diagonal not in ("right", "left"):
            raise InvalidParameterError(f"diagonal must be 'right' or 'left'; got {diagonal!r}")
        x = np.linspace(0.0, 1.0, n + 1)
        xx, yy = np.meshgrid(x, x, indexing="xy")
        points = np.column_stack([xx.ravel(), yy.ravel()])
        j, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        v0 = (j * (n + 1) + i).ravel()
        v1, v2, v3 = v0 + 1, v0 + n + 2, v0 + n + 1
        if diagonal == "right":
            cells = np.concatenate([np.column_stack([v0, v1, v2]), np.column_stack([v0, v2, v3])])
        else:
            cells = np.concatenate([np.column_stack([v0, v1, v3]), np.column_stack([v1, v2, v3])])
        return cls(points, cells)

    @classmethod
    def gmsh_unit_square(cls, h: float = 0.1, msh_path: str | Path | None = None) -> "TriMesh":
        """Unstructured gmsh mesh of ``[0, 1]^2`` with characteristic length ``h``
        (see :func:`physinv.fem.gmsh_meshes.unit_square_arrays`; needs ``physinv[fem]``)."""
        from physinv.fem.gmsh_meshes import unit_square_arrays

        return cls(*unit_square_arrays(h, msh_path))

    @classmethod
    def shipped(cls, name: str = "unit_square_h0.1.msh") -> "TriMesh":
        """A mesh shipped in the repository's ``meshes/`` folder (needs meshio)."""
        from physinv.fem.gmsh_meshes import shipped_mesh_path

        return cls.from_file(shipped_mesh_path(name))

    @classmethod
    def from_file(cls, path: str | Path) -> "TriMesh":
        """Read the triangles of a mesh file (gmsh ``.msh``, XDMF, VTK...) with meshio."""
        meshio = require("meshio", "fem", "reading mesh files")
        mesh = meshio.read(str(path))
        tri = [block.data for block in mesh.cells if block.type == "triangle"]
        if not tri:
            raise InvalidParameterError(f"{path} holds no triangle cells; physinv P1 needs triangles")
        points = mesh.points[:, :2]
        cells = np.concatenate(tri)
        used = np.unique(cells)  # drop points that no triangle uses (gmsh geometry points)
        remap = -np.ones(len(points), dtype=np.int64)
        remap[used] = np.arange(len(used))
        return cls(points[used], remap[cells])
