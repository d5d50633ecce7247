"""Triangle meshes in 2D: structured unit squares, gmsh/meshio files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from physinv.core.errors import InvalidParameterError, MeshError, ShapeMismatchError
from physinv.core.extras import require

MESH_FILES = "a mesh file meshio reads (gmsh .msh, XDMF, VTK/VTU...) holding triangle cells"
DUPLICATE_TOL = 1e-10  # nodes closer than this times the bounding-box diameter are one point
_SHOWN = 5  # offenders listed in an error message


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _edge_counts(cells: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct edges ``(n_edges, 2)`` (node pairs, smaller index first, lexicographic order) and
    the number of triangles sharing each."""
    edges = np.sort(cells[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    keys, counts = np.unique(edges[:, 0] * n_nodes + edges[:, 1], return_counts=True)
    return np.column_stack(np.divmod(keys, n_nodes)), counts


def _xy(p: np.ndarray) -> str:
    return f"({p[0]:.6g}, {p[1]:.6g})"


def _refuse(count: int, what: str, where: list[str], allowed: str) -> MeshError:
    more = ", ..." if count > len(where) else ""
    return MeshError(f"invalid mesh: {count} {what}: {', '.join(where)}{more}; {allowed}")


def check_mesh(points: np.ndarray, cells: np.ndarray) -> None:
    """Refuse a triangle mesh that is not conforming.

    Checked, in this order: at least one triangle; finite node coordinates;
    every node used by a triangle; no two nodes closer than
    ``DUPLICATE_TOL`` times the diameter of the bounding box (duplicated
    nodes, e.g. a crack meshed by doubling the nodes along it, would turn
    interior nodes into boundary nodes); no triangle listed twice (same
    vertex set); no edge shared by more than two triangles (non-manifold
    edge).  Zero-area triangles are refused by :class:`TriMesh` itself.

    Parameters
    ----------
    points
        ``(n_nodes, 2)`` float64 node coordinates (m).
    cells
        ``(n_cells, 3)`` int64 vertex indices into ``points``.

    Raises
    ------
    MeshError
        Naming the check that failed, the number of offending nodes, pairs,
        cells or edges, and the first few of them with their coordinates.
    """
    if len(cells) == 0:
        raise MeshError("invalid mesh: it has no triangles; a TriMesh needs at least one")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad.size:
        where = [f"{i} at {_xy(points[i])}" for i in bad[:_SHOWN]]
        raise _refuse(bad.size, "node(s) with non-finite coordinates", where, "coordinates must be finite")
    bad = np.flatnonzero(np.bincount(cells.ravel(), minlength=len(points)) == 0)
    if bad.size:
        where = [f"{i} at {_xy(points[i])}" for i in bad[:_SHOWN]]
        raise _refuse(bad.size, "node(s) used by no triangle", where, "every node must belong to a triangle")
    tol = DUPLICATE_TOL * float(np.hypot(*np.ptp(points, axis=0)))
    pairs = cKDTree(points).query_pairs(tol, output_type="ndarray")
    if len(pairs):
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        where = [f"nodes {i} and {j} at {_xy(points[i])}" for i, j in pairs[:_SHOWN]]
        raise _refuse(
            len(pairs), f"pair(s) of duplicate nodes (closer than {tol:.3g} m)", where,
            "merge them: a TriMesh must be conforming (a crack or interface meshed by duplicated nodes is not)",
        )
    _, first, inverse = np.unique(np.sort(cells, axis=1), axis=0, return_index=True, return_inverse=True)
    origin = first[inverse]  # the first cell with the same vertex set
    bad = np.flatnonzero(origin != np.arange(len(cells)))
    if bad.size:
        where = [
            f"cell {c} repeats cell {origin[c]} (nodes {', '.join(map(str, cells[c]))} "
            f"around {_xy(points[cells[c]].mean(axis=0))})"
            for c in bad[:_SHOWN]
        ]
        raise _refuse(bad.size, "triangle(s) listed more than once", where, "list each triangle once")
    edges, counts = _edge_counts(cells, len(points))
    bad = np.flatnonzero(counts > 2)
    if bad.size:
        where = [
            f"edge ({a}, {b}) from {_xy(points[a])} to {_xy(points[b])} ({counts[e]} triangles)"
            for e, (a, b) in zip(bad[:_SHOWN], edges[bad[:_SHOWN]])
        ]
        raise _refuse(
            bad.size, "edge(s) shared by more than two triangles", where, "an edge may belong to two triangles at most"
        )


def read_mesh_file(path: str | Path, file_format: str | None = None, expected: str = MESH_FILES):
    """Read a mesh file with meshio, turning every failure to read it into a :class:`MeshError`.

    meshio ends the process (``sys.exit(1)``) on a file it cannot parse and
    raises assorted errors on damaged ones (empty, truncated); both become a
    :class:`MeshError` naming the file and ``expected``.  ``KeyboardInterrupt``
    passes through.

    Parameters
    ----------
    path
        The mesh file; it must exist.
    file_format
        meshio's format name (``"gmsh"``...); ``None`` guesses it from the suffix.
    expected
        What the caller accepts, for the error message.

    Returns
    -------
    meshio.Mesh
    """
    meshio = require("meshio", "fem", "reading mesh files")
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"no mesh file at {path}; expected {expected}")
    try:
        return meshio.read(str(path), file_format=file_format)
    except (SystemExit, Exception) as exc:  # meshio calls sys.exit(1) on unreadable files
        reason = " (meshio could not parse it)" if isinstance(exc, SystemExit) else f" ({type(exc).__name__}: {exc})"
        raise MeshError(f"cannot read {path}{reason}; expected {expected}") from exc


@dataclass(frozen=True)
class TriMesh:
    """A conforming triangle mesh.

    Construction refuses meshes that are not conforming (see
    :func:`check_mesh`: non-finite coordinates, unused or duplicate nodes,
    triangles listed twice, non-manifold edges) and zero-area triangles,
    with a :class:`~physinv.core.errors.MeshError`; clockwise triangles are
    reoriented.

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
        check_mesh(points, cells)
        # orient counter-clockwise so that element areas are positive
        p = points[cells]
        signed = _cross2(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        bad = np.flatnonzero(signed == 0)
        if bad.size:
            where = [f"cell {c} around {_xy(p[c].mean(axis=0))}" for c in bad[:_SHOWN]]
            raise _refuse(bad.size, "degenerate triangle(s) of zero area", where, "triangles must have positive area")
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
        edges, counts = _edge_counts(self.cells, self.num_nodes)
        return edges[counts == 1]

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
        """Read the triangles of a mesh file (gmsh ``.msh``, XDMF, VTK...) with meshio.

        Points that no triangle uses (gmsh geometry points) are dropped; the
        rest must pass the checks of :func:`check_mesh`.  An unreadable,
        missing or triangle-less file raises :class:`~physinv.core.errors.MeshError`.
        """
        mesh = read_mesh_file(path)
        tri = [block.data for block in mesh.cells if block.type == "triangle"]
        if not tri:
            raise MeshError(f"{path} holds no triangle cells; physinv P1 needs triangles")
        points = mesh.points[:, :2]
        cells = np.concatenate(tri)
        used = np.unique(cells)  # drop points that no triangle uses (gmsh geometry points)
        remap = -np.ones(len(points), dtype=np.int64)
        remap[used] = np.arange(len(used))
        return cls(points[used], remap[cells])
