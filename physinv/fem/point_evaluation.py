r"""Point values of DOLFINx functions as a sparse matrix: the sensors of a form simulator.

:func:`point_evaluation_matrix` builds ``P`` with ``(P u)_i = u_h(x_i)`` once; an
observation ``P u`` is then linear in the dof vector, and its adjoint is ``P^T``.
DOLFINx (``dolfinx.geometry``) is imported when the matrix is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physinv.core.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["point_evaluation_matrix"]

_SHOWN = 5  # offenders listed in an error message


def point_evaluation_matrix(V, points) -> "Any":
    r"""Sparse matrix ``P`` with ``(P u)_i = u_h(x_i)``: point values of a DOLFINx function.

    Each point is located in a cell (bounding-box tree, then
    ``compute_colliding_cells``), pulled back to the reference cell, and the
    cell's basis functions are tabulated there with basix:
    ``P[i, dof_j] = phi_j(x_i)``.  On a cell boundary the first colliding cell
    is used (the same value for continuous spaces).

    Parameters
    ----------
    V
        A DOLFINx function space on a serial mesh; scalar or blocked (vector)
        Lagrange-type elements (no dof transformations, e.g. no Nédélec).
    points
        ``(n_points, gdim)`` coordinates (m) inside the mesh.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n_points * bs, n_dofs)``, rows point-major: row ``i * bs + c`` is
        component ``c`` at point ``i``.

    Raises
    ------
    InvalidParameterError
        A point lies outside the mesh (the first few are listed), or the
        element needs dof transformations.
    ShapeMismatchError
        ``points`` is not ``(n_points, gdim)``.
    """
    import scipy.sparse as sp
    from dolfinx import geometry

    msh = V.mesh
    gdim, tdim = msh.geometry.dim, msh.topology.dim
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and gdim == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[1] != gdim or pts.shape[0] == 0:
        raise ShapeMismatchError(
            f"sensor points must have shape (n_points, {gdim}) for this {gdim}D mesh, n_points > 0; got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InvalidParameterError("sensor points contain NaN/Inf coordinates")
    if V.element.needs_dof_transformations:
        raise InvalidParameterError(
            "point observation supports elements without dof transformations (Lagrange, DG...); "
            "observe a functional or the state vector instead")
    pts3 = np.zeros((len(pts), 3))
    pts3[:, :gdim] = pts
    tree = geometry.bb_tree(msh, tdim)
    colliding = geometry.compute_colliding_cells(msh, geometry.compute_collisions_points(tree, pts3), pts3)
    cells = np.array([colliding.links(i)[0] if len(colliding.links(i)) else -1 for i in range(len(pts))])
    outside = np.flatnonzero(cells < 0)
    if outside.size:
        def xy(p):
            return "(" + ", ".join(f"{c:.6g}" for c in p) + ")"

        lo, hi = msh.geometry.x[:, :gdim].min(axis=0), msh.geometry.x[:, :gdim].max(axis=0)
        where = ", ".join(f"{i} at {xy(pts[i])}" for i in outside[:_SHOWN])
        more = ", ..." if outside.size > _SHOWN else ""
        raise InvalidParameterError(
            f"{outside.size} sensor point(s) lie outside the mesh: {where}{more}; every sensor must lie in the "
            f"domain (mesh bounding box {xy(lo)} .. {xy(hi)})")
    cmap = msh.geometry.cmaps[0]
    geom_dofs = msh.geometry.dofmaps[0]
    basix_element = V.element.basix_element
    bs = V.dofmap.bs
    n_dofs = V.dofmap.index_map.size_local * bs
    rows, cols, vals = [], [], []
    for i, (x, c) in enumerate(zip(pts, cells)):
        X = cmap.pull_back(x[None, :], msh.geometry.x[geom_dofs[c], :gdim])
        phi = basix_element.tabulate(0, X)[0, 0, :, 0]
        dofs = V.dofmap.cell_dofs(c)
        for comp in range(bs):
            rows.append(np.full(len(dofs), i * bs + comp))
            cols.append(dofs * bs + comp)
            vals.append(phi)
    matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(len(pts) * bs, n_dofs)).tocsr()
    matrix.eliminate_zeros()
    return matrix
