"""Regularizers for nodal fields on uniform grids.

* :class:`H1Seminorm` -- ``R(m) = 1/2 int |grad m|^2 dx``;
* :class:`TotalVariation` -- ``R(m) = int sqrt(|grad m|^2 + eps^2) dx``
  (smoothed so that it is differentiable; ``eps`` in units of ``|grad m|``).

Both use the same face differences as the finite-difference operator, so the
H1 seminorm is exactly ``1/2 m^T L m`` with ``L`` the unit-coefficient
stiffness matrix of :class:`~physinv.discretize.fd.FDPoissonOperator`.
"""

from __future__ import annotations

import math

import torch

from physinv.core.checks import check_shape
from physinv.core.errors import InvalidParameterError
from physinv.discretize.grid import UniformGrid


class H1Seminorm:
    """``R(m) = 1/2 sum_faces w_f (m_i - m_j)^2`` with FV face weights (= 1/2 int |grad m|^2)."""

    name = "h1"

    def __init__(self, grid: UniformGrid):
        self.grid = grid

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
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
    """Smoothed total variation on the grid's cells (2D and 3D).

    ``R(m) = sum_cells |cell| sqrt(|grad m|_c^2 + eps^2)`` where ``|grad m|_c^2``
    sums, over the axes, the mean squared difference quotient of the cell's
    parallel edges.
    """

    name = "tv"

    def __init__(self, grid: UniformGrid, eps: float = 1e-2):
        if eps <= 0:
            raise InvalidParameterError(f"TV smoothing eps must be > 0; got {eps}")
        self.grid = grid
        self.eps = eps

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
