"""The EIT disk: the unit disk with electrodes on its boundary, meshed with gmsh (``meshes/eit_disk.geo``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physinv.core.errors import InvalidParameterError
from physinv.fem.gmsh_meshes import gmsh_model, gmsh_triangles

__all__ = ["DOMAIN_TAG", "GAPS_TAG", "eit_disk_arrays"]

#: Physical tags of the EIT disk (electrode ``k`` is physical curve ``k``, named ``electrode_k``).
GAPS_TAG, DOMAIN_TAG = 100, 200


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
    with gmsh_model("physinv_eit_disk") as gmsh:
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
        points, cells, index = gmsh_triangles(gmsh)
        electrode_edges = []
        for k in range(L):
            _, _, line_nodes = gmsh.model.mesh.getElements(1, 1 + 2 * k)
            electrode_edges.append(index[np.asarray(line_nodes[0], dtype=np.int64).reshape(-1, 2)])
    return points, cells, electrode_edges
