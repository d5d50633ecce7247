"""Regularizers for nodal fields, on uniform grids and on triangle meshes.

* :class:`H1Seminorm` -- ``R(m) = 1/2 int |grad m|^2 dx``;
* :class:`TotalVariation` -- ``R(m) = int sqrt(|grad m|^2 + eps^2) dx``
  (smoothed so that it is differentiable; ``eps`` in units of ``|grad m|``).

On a :class:`~physinv.discretize.grid.UniformGrid` both use the same face
differences as the finite-difference operator, so the H1 seminorm is exactly
``1/2 m^T L m`` with ``L`` the unit-coefficient stiffness matrix of
:class:`~physinv.discretize.fd.FDPoissonOperator`.  On a
:class:`~physinv.discretize.mesh.TriMesh` ``m`` is a P1 field (one value per
node) whose gradient is constant per triangle, so the H1 seminorm is exactly
``1/2 m^T K m`` with ``K`` the unit-coefficient P1 stiffness matrix.  For
piecewise-constant (cell) fields see :mod:`physinv.invert.cell_regularizers`.
All are callables ``R(m) -> scalar``, the regularizer protocol of
:class:`~physinv.invert.problem.InverseProblem`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physinv.core.checks import check_shape
from physinv.core.errors import InvalidParameterError
from physinv.discretize.grid import UniformGrid
from physinv.discretize.mesh import TriMesh


class _P1Gradient:
    """``grad m`` per triangle of a P1 field ``m`` on a mesh (constant per cell), and the cell areas (m^2)."""

    def __init__(self, mesh: TriMesh):
        p = mesh.points[mesh.cells]  # (n_cells, 3, 2)
        e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # 2 |T|, > 0 (counter-clockwise)
        # gradients of the barycentric coordinates: rows of the inverse of [e1 e2]^T, and minus their sum
        g1 = torch.as_tensor(np.stack([e2[:, 1], -e2[:, 0]], 1) / det[:, None])
        g2 = torch.as_tensor(np.stack([-e1[:, 1], e1[:, 0]], 1) / det[:, None])
        self.basis = torch.stack([-(g1 + g2), g1, g2], 1)  # (n_cells, 3, 2), 1/m
        self.cells = torch.as_tensor(mesh.cells)
        self.areas = torch.as_tensor(0.5 * det)
        self.num_nodes = mesh.num_nodes

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        check_shape("m", m, (self.num_nodes,), "one value per mesh node (a P1 field)")
        basis = self.basis.to(m)
        return (m[self.cells][..., None] * basis).sum(1)  # (n_cells, 2)


def _mesh_or_grid(where):
    if isinstance(where, TriMesh):
        return _P1Gradient(where)
    if isinstance(where, UniformGrid):
        return None
    raise InvalidParameterError(
        f"a nodal regularizer needs a UniformGrid or a TriMesh; got {type(where).__name__} "
        "(for cell-wise fields use physinv.invert.cell_regularizer)")


class H1Seminorm:
    """``R(m) = 1/2 int |grad m|^2 dx``: on a grid ``1/2 sum_faces w_f (m_i - m_j)^2`` with FV face
    weights, on a triangle mesh ``1/2 sum_T |T| |grad m|_T^2`` of the P1 field (= ``1/2 m^T K m``)."""

    name = "h1"

    def __init__(self, grid: UniformGrid | TriMesh):
        self.grid = grid
        self._p1 = _mesh_or_grid(grid)

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        if self._p1 is not None:
            return 0.5 * (self._p1.areas.to(m) * (self._p1(m) ** 2).sum(1)).sum()
        check_shape("m", m, self.grid.node_shape, "one value per grid node")
        grid, d = self.grid, self.grid.ndim
        total = m.new_zeros(())
        for a in range(d):
            axis = m.ndim - d + a
            n = grid.cells[a]
            diff = m.narrow(axis, 1, n) - m.narrow(axis, 0, n)
            weight = torch.ones((), dtype=m.dtype, device=m.device)
            for b, h in enumerate(grid.spacing):
                if b != a:
                    shape = [1] * d
                    shape[b] = -1
                    weight = weight * (h * grid.half_weights(b, m.dtype, m.device)).reshape(shape)
            total = total + (weight * diff**2).sum() / grid.spacing[a]
        return 0.5 * total


class TotalVariation:
    """Smoothed total variation ``R(m) = sum_cells |cell| sqrt(|grad m|_c^2 + eps^2)``.

    On a grid (2D and 3D) ``|grad m|_c^2`` sums, over the axes, the mean squared
    difference quotient of the cell's parallel edges; on a triangle mesh it is the
    exact (constant) P1 gradient of the triangle.
    """

    name = "tv"

    def __init__(self, grid: UniformGrid | TriMesh, eps: float = 1e-2):
        if eps <= 0:
            raise InvalidParameterError(f"TV smoothing eps must be > 0; got {eps}")
        self.grid = grid
        self.eps = eps
        self._p1 = _mesh_or_grid(grid)

    def _cell_gradient_sq(self, m: torch.Tensor) -> torch.Tensor:
        """``|grad m|^2`` per cell: for each axis, the mean of the squared difference
        quotients over the cell's 2^(d-1) parallel edges.  (Averaging the differences
        before squaring would leave checkerboard modes unpenalized.)"""
        grid, d = self.grid, self.grid.ndim
        total = 0
        for a in range(d):
            axis = m.ndim - d + a
            sq = ((m.narrow(axis, 1, grid.cells[a]) - m.narrow(axis, 0, grid.cells[a])) / grid.spacing[a]) ** 2
            for b in range(d):
                if b != a:
                    ax = m.ndim - d + b
                    sq = 0.5 * (sq.narrow(ax, 0, grid.cells[b]) + sq.narrow(ax, 1, grid.cells[b]))
            total = total + sq
        return total

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        if self._p1 is not None:
            grad_sq = (self._p1(m) ** 2).sum(1)
            return (self._p1.areas.to(m) * torch.sqrt(grad_sq + self.eps**2)).sum()
        check_shape("m", m, self.grid.node_shape, "one value per grid node")
        cell_volume = math.prod(self.grid.spacing)
        return cell_volume * torch.sqrt(self._cell_gradient_sq(m) + self.eps**2).sum()



class NuisanceFree:
    """``R(m) = R_inner(m[:count])``: the trailing entries of ``m`` are nuisance parameters
    (e.g. a calibration factor estimated with the field) and carry no penalty.

    Offers ``gradient`` and ``hessian`` (zero-padded) where ``R_inner`` does, for the dense
    Gauss-Newton of :func:`~physinv.invert.optimize.minimize_gauss_newton`.
    """

    def __init__(self, inner, count: int):
        if count < 1:
            raise InvalidParameterError(f"the regularized part needs at least one entry; got count={count}")
        self.inner, self.count = inner, int(count)
        self.name = getattr(inner, "name", "")
        if hasattr(inner, "gradient"):
            self.gradient = self._gradient
        if hasattr(inner, "hessian"):
            self.hessian = self._hessian

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        return self.inner(m[: self.count])

    def _gradient(self, m: torch.Tensor) -> torch.Tensor:
        g = self.inner.gradient(m[: self.count])
        return torch.cat([g, g.new_zeros(m.shape[0] - self.count)])

    def _hessian(self, m: torch.Tensor) -> torch.Tensor:
        h = self.inner.hessian(m[: self.count])
        pad = m.shape[0] - self.count
        return torch.nn.functional.pad(h, (0, pad, 0, pad))
