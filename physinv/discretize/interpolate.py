"""Point observations at sensor locations: multilinear on grids, barycentric (P1) on triangle meshes.

:func:`point_observation` picks the one that fits the discretization; both
are linear maps with an :meth:`adjoint` for the dot-product test, and are
differentiable through torch indexing.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.grid import UniformGrid
from physinv.discretize.mesh import TriMesh


def _check_finite_points(pts: np.ndarray) -> None:
    """Refuse sensor points with NaN/Inf coordinates (they would give NaN observations)."""
    bad = ~np.all(np.isfinite(pts), axis=1)
    if np.any(bad):
        rows = np.flatnonzero(bad)
        raise InvalidParameterError(
            f"{rows.size} sensor point(s) have NaN/Inf coordinates (rows {rows[:5].tolist()}"
            f"{', ...' if rows.size > 5 else ''}); every coordinate must be finite and inside the domain")


def _gather(flat: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``y_k = sum_j w_kj flat[..., i_kj]``: the weighted point values of a flattened nodal field."""
    w = weight.to(device=flat.device, dtype=flat.dtype)
    return (flat[..., index.to(flat.device)] * w).sum(-1)


def _scatter(y: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The adjoint of :func:`_gather`: ``(..., k)`` values spread onto ``(..., num_nodes)`` nodes."""
    w = weight.to(device=y.device, dtype=y.dtype)
    contrib = (y[..., None] * w).reshape(y.shape[:-1] + (-1,))
    out = y.new_zeros(y.shape[:-1] + (num_nodes,))
    return out.index_add(-1, index.to(y.device).reshape(-1), contrib)


class GridPointInterpolator:
    """Linear map ``u -> (u(p_1), ..., u(p_k))`` by (bi/tri)linear interpolation.

    ``points`` has shape ``(k, d)`` inside the grid's box (finite coordinates; a
    point outside or with NaN/Inf coordinates gets a clear error).  Applies to fields of
    shape ``(..., *grid.node_shape)`` and returns ``(..., k)``; :meth:`adjoint`
    spreads ``(..., k)`` values back onto the nodes.
    """

    def __init__(self, grid: UniformGrid, points: np.ndarray | torch.Tensor):
        pts = np.asarray(torch.as_tensor(points, dtype=torch.float64).cpu())
        if pts.ndim != 2 or pts.shape[1] != grid.ndim:
            raise ShapeMismatchError(f"points must have shape (k, {grid.ndim}); got {pts.shape}")
        _check_finite_points(pts)
        lo, hi = np.zeros(grid.ndim), np.array(grid.lengths)
        outside = np.any((pts < lo - 1e-12) | (pts > hi + 1e-12), axis=1)
        if np.any(outside):
            bad = pts[np.flatnonzero(outside)[0]]
            raise InvalidParameterError(
                f"{int(outside.sum())} sensor point(s) lie outside the grid's box, e.g. "
                f"({', '.join(f'{v:.6g}' for v in bad)}); every point must lie in [0, L] with L={grid.lengths}")
        self.grid = grid
        self.points = pts
        h = np.array(grid.spacing)
        cells = np.array(grid.cells)
        base = np.clip(np.floor(pts / h).astype(np.int64), 0, cells - 1)
        frac = pts / h - base
        strides = np.cumprod((np.array(grid.node_shape)[::-1]))[::-1]
        strides = np.append(strides[1:], 1)
        index, weight = [], []
        for corner in itertools.product((0, 1), repeat=grid.ndim):
            c = np.array(corner)
            index.append(((base + c) * strides).sum(axis=1))
            weight.append(np.prod(np.where(c == 1, frac, 1.0 - frac), axis=1))
        self.index = torch.from_numpy(np.stack(index, axis=1))  # (k, 2^d)
        self.weight = torch.from_numpy(np.stack(weight, axis=1))

    @property
    def num_points(self) -> int:
        return len(self.points)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        flat = u.reshape(u.shape[: u.ndim - self.grid.ndim] + (-1,))
        return _gather(flat, self.index, self.weight)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        out = _scatter(y, self.index, self.weight, self.grid.num_nodes)
        return out.reshape(y.shape[:-1] + self.grid.node_shape)


class MeshPointInterpolator:
    """Linear map ``u -> (u_h(p_1), ..., u_h(p_k))`` of a nodal P1 field on a triangle mesh.

    ``u_h(p) = sum_j lambda_j(p) u[c_j]`` over the vertices ``c_j`` of the
    triangle holding ``p``, with ``lambda_j`` its barycentric coordinates.
    ``points`` ``(k, 2)`` (m) must lie in the mesh (up to a relative 1e-10 of
    the mesh size); a point outside or with NaN/Inf coordinates gets a clear error.  Applies to
    fields ``(..., n_nodes)`` and returns ``(..., k)``; :meth:`adjoint` spreads
    ``(..., k)`` back onto the nodes.
    """

    def __init__(self, mesh: TriMesh, points: np.ndarray | torch.Tensor, chunk: int = 256):
        pts = np.asarray(torch.as_tensor(points, dtype=torch.float64).cpu())
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ShapeMismatchError(f"points must have shape (k, 2); got {pts.shape}")
        _check_finite_points(pts)
        self.mesh = mesh
        self.points = pts
        corners = mesh.points[mesh.cells]  # (n_cells, 3, 2)
        a, e1, e2 = corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        tol = 1e-10
        cell = np.empty(len(pts), dtype=np.int64)
        lam = np.empty((len(pts), 3))
        for start in range(0, len(pts), chunk):
            d = pts[start:start + chunk, None, :] - a[None]  # (c, n_cells, 2)
            l1 = (d[..., 0] * e2[:, 1] - d[..., 1] * e2[:, 0]) / det
            l2 = (e1[:, 0] * d[..., 1] - e1[:, 1] * d[..., 0]) / det
            bary = np.stack([1.0 - l1 - l2, l1, l2], axis=-1)  # (c, n_cells, 3)
            worst = bary.min(axis=-1)
            best = worst.argmax(axis=1)
            outside = worst[np.arange(len(best)), best] < -tol
            if np.any(outside):
                bad = pts[start + np.flatnonzero(outside)[0]]
                raise InvalidParameterError(
                    f"{int(outside.sum())} sensor point(s) lie outside the mesh, e.g. ({bad[0]:.6g}, {bad[1]:.6g}); "
                    "every point must lie in a triangle")
            cell[start:start + len(best)] = best
            lam[start:start + len(best)] = np.clip(bary[np.arange(len(best)), best], 0.0, 1.0)
        lam /= lam.sum(axis=1, keepdims=True)
        self.cell = cell
        self.index = torch.from_numpy(mesh.cells[cell])  # (k, 3)
        self.weight = torch.from_numpy(lam)

    @property
    def num_points(self) -> int:
        return len(self.points)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape[-1] != self.mesh.num_nodes:
            raise ShapeMismatchError(f"field has {u.shape[-1]} values in its last axis; expected one per node "
                                     f"({self.mesh.num_nodes})")
        return _gather(u, self.index, self.weight)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return _scatter(y, self.index, self.weight, self.mesh.num_nodes)


def point_observation(space: UniformGrid | TriMesh, points) -> GridPointInterpolator | MeshPointInterpolator:
    """The point-observation operator of a grid (multilinear) or a triangle mesh (barycentric P1)."""
    if isinstance(space, UniformGrid):
        return GridPointInterpolator(space, points)
    if isinstance(space, TriMesh):
        return MeshPointInterpolator(space, points)
    raise InvalidParameterError(f"point observation needs a UniformGrid or a TriMesh; got {type(space).__name__}")
