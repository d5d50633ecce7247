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

__all__ = ["GAPS_TAG", "DOMAIN_TAG", "MESH_DIR", "eit_disk_arrays", "shipped_mesh_path", "unit_square_arrays"]

#: Repository folder of shipped meshes and their gmsh scripts (absent in a wheel install).
MESH_DIR = Path(__file__).resolve().parents[2] / "meshes"

_MESH_ALGORITHM = 6  # Frontal-Delaunay, as in unit_square.geo and eit_disk.geo
#: Physical tags of the EIT disk (electrode ``k`` is physical curve ``k``, named ``electrode_k``).
GAPS_TAG, DOMAIN_TAG = 100, 200


@contextlib.contextmanager
def _gmsh_model(name: str):
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


def _triangles(gmsh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    with _gmsh_model("physinv_unit_square") as gmsh:
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
        points, cells, _ = _triangles(gmsh)
    return points, cells


def eit_disk_arrays(
    h: float = 0.1,
    n_electrodes: int = 16,
    coverage: float = 0.5,
    msh_path: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Unit disk with ``n_electrodes`` electrodes marked on its boundary.

    Electrode ``k = 1..L`` is centred at the angle ``theta_k = 2 pi (k - 1) / L``
    (electrode 1 at ``(1, 0)``, numbering counter-clockwise) and spans
    ``theta_k +- pi coverage / L``: ``coverage`` is the fraction of the
    circumference the electrodes cover together.  Each electrode and each gap
    is one circular arc, so electrode ends are mesh nodes.  The same geometry,
    tags and meshing options as ``meshes/eit_disk.geo``.

    Parameters
    ----------
    h
        Characteristic length (target edge length, m), ``0.004 <= h <= 0.5``.
    n_electrodes
        ``L``, between 2 and 64.
    coverage
        In ``(0, 1)``.
    msh_path
        If given, the mesh is also written there (gmsh ``.msh`` 4.1; physical
        curves ``electrode_k`` (tag ``k``) and ``gaps`` (100), surface ``domain`` (200)).

    Returns
    -------
    points, cells, electrode_edges
        ``(n_nodes, 2)``, ``(n_cells, 3)`` and, per electrode, its boundary edges
        as ``(n_k, 2)`` node-index pairs.
    """
    h, coverage, L = float(h), float(coverage), int(n_electrodes)
    if not np.isfinite(h) or not 0.004 <= h <= 0.5:
        raise InvalidParameterError(f"characteristic length h must be in [0.004, 0.5] for the unit disk; got {h}")
    if not 2 <= L <= 64:
        raise InvalidParameterError(f"n_electrodes must be between 2 and 64; got {n_electrodes}")
    if not 0.0 < coverage < 1.0:
        raise InvalidParameterError(f"coverage (fraction of the circumference under electrodes) must be in (0, 1); "
                                    f"got {coverage}")
    half_width = np.pi * coverage / L
    with _gmsh_model("physinv_eit_disk") as gmsh:
        geo = gmsh.model.geo
        centre = geo.addPoint(0.0, 0.0, 0.0, h, 1)
        for k in range(L):
            theta = 2.0 * np.pi * k / L
            for j, angle in enumerate((theta - half_width, theta + half_width)):
                geo.addPoint(np.cos(angle), np.sin(angle), 0.0, h, 2 + 2 * k + j)
        arcs = []
        for k in range(L):
            start, end, next_start = 2 + 2 * k, 3 + 2 * k, 2 + 2 * ((k + 1) % L)
            arcs.append(geo.addCircleArc(start, centre, end, 1 + 2 * k))  # electrode k + 1
            arcs.append(geo.addCircleArc(end, centre, next_start, 2 + 2 * k))  # gap after it
        loop = geo.addCurveLoop(arcs, 1)
        surface = geo.addPlaneSurface([loop], 1)
        geo.synchronize()
        for k in range(L):
            gmsh.model.addPhysicalGroup(1, [1 + 2 * k], k + 1, name=f"electrode_{k + 1}")
        gmsh.model.addPhysicalGroup(1, [2 + 2 * k for k in range(L)], GAPS_TAG, name="gaps")
        gmsh.model.addPhysicalGroup(2, [surface], DOMAIN_TAG, name="domain")
        gmsh.model.mesh.generate(2)
        if msh_path is not None:
            gmsh.write(str(msh_path))
        points, cells, index = _triangles(gmsh)
        electrode_edges = []
        for k in range(L):
            _, _, line_nodes = gmsh.model.mesh.getElements(1, 1 + 2 * k)
            electrode_edges.append(index[np.asarray(line_nodes[0], dtype=np.int64).reshape(-1, 2)])
    return points, cells, electrode_edges


def shipped_mesh_path(name: str = "unit_square_h0.1.msh") -> Path:
    """Path of a mesh file shipped in :data:`MESH_DIR`; a clear error lists the available ones."""
    path = MESH_DIR / name
    if not path.is_file():
        available = sorted(p.name for p in MESH_DIR.glob("*.msh")) if MESH_DIR.is_dir() else []
        raise InvalidParameterError(
            f"no shipped mesh {name!r} in {MESH_DIR}; available: {', '.join(available) or 'none'}"
        )
    return path
