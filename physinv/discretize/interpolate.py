"""Point observations: multilinear interpolation of grid fields at sensor locations."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.grid import UniformGrid


class GridPointInterpolator:
    """Linear map ``u -> (u(p_1), ..., u(p_k))`` by (bi/tri)linear interpolation.

    ``points`` has shape ``(k, d)`` inside the grid's box.  Applies to fields of
    shape ``(..., *grid.node_shape)`` and returns ``(..., k)``; :meth:`adjoint`
    spreads ``(..., k)`` values back onto the nodes.
    """

    def __init__(self, grid: UniformGrid, points: np.ndarray | torch.Tensor):
        pts = np.asarray(torch.as_tensor(points, dtype=torch.float64).cpu())
        if pts.ndim != 2 or pts.shape[1] != grid.ndim:
            raise ShapeMismatchError(f"points must have shape (k, {grid.ndim}); got {pts.shape}")
        lo, hi = np.zeros(grid.ndim), np.array(grid.lengths)
        if np.any(pts < lo - 1e-12) or np.any(pts > hi + 1e-12):
            raise InvalidParameterError(f"sensor points must lie in the box [0, L] with L={grid.lengths}")
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
        d = self.grid.ndim
        flat = u.reshape(u.shape[: u.ndim - d] + (-1,))
        w = self.weight.to(device=u.device, dtype=u.dtype)
        return (flat[..., self.index.to(u.device)] * w).sum(-1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(device=y.device, dtype=y.dtype)
        contrib = (y[..., None] * w).reshape(y.shape[:-1] + (-1,))
        out = y.new_zeros(y.shape[:-1] + (self.grid.num_nodes,))
        out = out.index_add(-1, self.index.to(y.device).reshape(-1), contrib)
        return out.reshape(y.shape[:-1] + self.grid.node_shape)
