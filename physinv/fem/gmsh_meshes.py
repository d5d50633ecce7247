"""Unstructured triangle meshes made with gmsh's Python API (headless).

:func:`unit_square` meshes ``[0, 1]^2`` with the same geometry, size field and
algorithm as the gmsh script ``meshes/unit_square.geo`` shipped in the
repository, so command-line users get the same mesh with

.. code-block:: console

    gmsh -2 -setnumber lc 0.1 meshes/unit_square.geo -o unit_square_h0.1.msh

(``meshes/unit_square_h0.1.msh`` is that file, small enough to ship).  gmsh is
an optional dependency (``pip install 'physinv[fem]'``), imported on first use.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from physinv.core.errors import InvalidParameterError
from physinv.core.extras import require

__all__ = ["MESH_DIR", "gmsh_model", "gmsh_triangles", "shipped_mesh_path", "unit_square_arrays"]

#: Repository folder of shipped meshes and their gmsh scripts (absent in a wheel install).
MESH_DIR = Path(__file__).resolve().parents[2] / "meshes"

_MESH_ALGORITHM = 6  # Frontal-Delaunay, as in unit_square.geo and eit_disk.geo


@contextlib.contextmanager
def gmsh_model(name: str):
    """A temporary gmsh model with deterministic, single-threaded meshing options.

    An already initialized gmsh session is left initialized (the temporary
    model is removed and the previous one made current again).
    """
    gmsh = require("gmsh", "fem", "meshing with gmsh")
    owns_session = not gmsh.isInitialized()
    if owns_session:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    previous_model = gmsh.model.getCurrent() if not owns_session else None
    options = {
        "General.Terminal": 0,
        "General.NumThreads": 1,
        "Mesh.Algorithm": _MESH_ALGORITHM,
        "Mesh.MeshSizeFromPoints": 1,
        "Mesh.MeshSizeExtendFromBoundary": 1,
    }
    saved = {key: gmsh.option.getNumber(key) for key in options}
    try:
        for key, value in options.items():
            gmsh.option.setNumber(key, value)
        gmsh.model.add(name)
        yield gmsh
    finally:
        gmsh.model.remove()
        for key, value in saved.items():
            gmsh.option.setNumber(key, value)
        if owns_session:
            gmsh.finalize()
        elif previous_model:
            gmsh.model.setCurrent(previous_model)


def gmsh_triangles(gmsh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, triangles and the gmsh-node-tag -> point-index map of the current mesh
    (nodes that no triangle uses are dropped; their map entry is -1)."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    _, tri_nodes = gmsh.model.mesh.getElementsByType(2)  # 2: 3-node triangle
    node_tags = np.asarray(node_tags, dtype=np.int64)
    order = np.argsort(node_tags)
    points = np.asarray(coords, dtype=np.float64).reshape(-1, 3)[order, :2]
    index = np.full(node_tags.max() + 1, -1, dtype=np.int64)
    index[node_tags[order]] = np.arange(len(order))
    cells = index[np.asarray(tri_nodes, dtype=np.int64).reshape(-1, 3)]
    used = np.unique(cells)
    if used.size != len(points):  # drop nodes no triangle uses
        remap = np.full(len(points), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        points, cells = points[used], remap[cells]
        index = np.where(index >= 0, remap[np.maximum(index, 0)], -1)
    return points, cells, index


def unit_square_arrays(h: float = 0.1, msh_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(n_nodes, 2)`` and triangles ``(n_cells, 3)`` of a gmsh mesh of ``[0, 1]^2``.

    Parameters
    ----------
    h
        Characteristic length (target edge length, m) at the four corners,
        ``lc`` of ``meshes/unit_square.geo``; ``0 < h <= 1``.
    msh_path
        If given, the mesh is also written there (gmsh ``.msh`` 4.1, with
        physical groups ``boundary`` (1) and ``domain`` (2)).

    Notes
    -----
    gmsh runs single-threaded with ``Mesh.Algorithm = 6`` so the mesh is the
    same on every call and every MPI rank.  An already initialized gmsh session
    is left initialized (a temporary model is added and removed).
    """
    h = float(h)
    if not np.isfinite(h) or not 0.0 < h <= 1.0:
        raise InvalidParameterError(f"characteristic length h must be in (0, 1] for the unit square; got {h}")
    if h < 2e-3:
        raise InvalidParameterError(
            f"h={h} would make about {int(2.3 / h**2):,} triangles; use h >= 2e-3 "
            "(or mesh with the gmsh CLI and read the file with TriMesh.from_file)"
        )
    with gmsh_model("physinv_unit_square") as gmsh:
        geo = gmsh.model.geo
        corners = [geo.addPoint(x, y, 0.0, h) for x, y in ((0, 0), (1, 0), (1, 1), (0, 1))]
        lines = [geo.addLine(corners[i], corners[(i + 1) % 4]) for i in range(4)]
        loop = geo.addCurveLoop(lines)
        surface = geo.addPlaneSurface([loop])
        geo.synchronize()
        gmsh.model.addPhysicalGroup(1, lines, 1, name="boundary")
        gmsh.model.addPhysicalGroup(2, [surface], 2, name="domain")
        gmsh.model.mesh.generate(2)
        if msh_path is not None:
            gmsh.write(str(msh_path))
        points, cells, _ = gmsh_triangles(gmsh)
    return points, cells


def shipped_mesh_path(name: str = "unit_square_h0.1.msh") -> Path:
    """Path of a mesh file shipped in :data:`MESH_DIR`; a clear error lists the available ones."""
    path = MESH_DIR / name
    if not path.is_file():
        available = sorted(p.name for p in MESH_DIR.glob("*.msh")) if MESH_DIR.is_dir() else []
        raise InvalidParameterError(
            f"no shipped mesh {name!r} in {MESH_DIR}; available: {', '.join(available) or 'none'}"
        )
    return path
