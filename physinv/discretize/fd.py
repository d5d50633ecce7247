"""Finite differences (vertex-centred finite volumes) for -div(kappa grad u) = f.

On a :class:`~physinv.discretize.grid.UniformGrid` each node owns a dual cell;
the flux through the dual face between neighbours ``i`` and ``j`` along axis
``a`` is ``kappa_f (u_i - u_j) |face| / h_a`` with the arithmetic mean
``kappa_f = (kappa_i + kappa_j) / 2``.  Summing fluxes gives the symmetric
stiffness form

    (A u)_i = sum_j w_ij (u_i - u_j),   w_ij = kappa_f prod_{b != a} h_b c_b / h_a,

(``c_b = 1/2`` for faces along a boundary line, else 1), which on interior
nodes is ``h^d`` times the classic 5-/7-point stencil.  The right-hand side
is ``|V_i| f_i + |S_i| g_i`` with ``g = kappa du/dn`` on Neumann sides.
Dirichlet sides are eliminated symmetrically (:mod:`physinv.discretize.dirichlet`).
The scheme is second order in the mesh width for smooth kappa and u.

:meth:`FDPoissonOperator.apply` is matrix-free with shifted slices (the fast
path on CPU, see benchmarks/poisson_operator.py); :meth:`FDPoissonOperator.assemble` gives the
same matrix as scipy CSR.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import scipy.sparse as sp
import torch

from physinv.core.checks import check_finite, check_positive, check_shape, check_tensor
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.operator import OperatorExample, random_coefficient, register_operator
from physinv.discretize.dirichlet import masked_apply, masked_csr
from physinv.discretize.grid import UniformGrid


class FDPoissonOperator:
    """Matrix-free operator ``u -> A(kappa) u`` of -div(kappa grad u) on a grid.

    Parameters
    ----------
    grid
        The grid; fields have shape ``(..., *grid.node_shape)``.
    neumann_sides
        Sides carrying the flux condition ``kappa du/dn = g``; all other
        sides are Dirichlet.  At least one side must be Dirichlet.

    Notes
    -----
    ``kappa`` is a tensor of shape ``grid.node_shape`` (a function of the
    coordinates must be evaluated first: ``kappa = f(*grid.coordinates())``).
    :meth:`check_kappa`, :meth:`assemble` and the simulators take exactly one
    field; :meth:`apply` also broadcasts leading batch axes of ``kappa`` and ``u``.
    """

    symmetric = True

    def __init__(self, grid: UniformGrid, neumann_sides: Iterable[str] = ()):
        self.grid = grid
        self.neumann_sides = tuple(neumann_sides)
        for side in self.neumann_sides:
            if side not in grid.sides:
                raise InvalidParameterError(
                    f"unknown Neumann side {side!r}; allowed: {', '.join(grid.sides)}"
                )
        self.dirichlet_sides = tuple(s for s in grid.sides if s not in self.neumann_sides)
        if not self.dirichlet_sides:
            raise InvalidParameterError(
                "pure Neumann problems are singular; keep at least one Dirichlet side"
            )
        mask = torch.zeros(grid.node_shape, dtype=torch.bool)
        for side in self.dirichlet_sides:
            mask |= grid.side_mask(side)
        self.dirichlet_mask = mask

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.grid.node_shape

    def _free(self, like: torch.Tensor) -> torch.Tensor:
        return (~self.dirichlet_mask).to(device=like.device, dtype=like.dtype)

    def _check_kappa_shape(self, kappa: torch.Tensor, batch: bool) -> None:
        """Tensor of node shape (``batch``: leading axes allowed); cheap, no look at the values."""
        shape = self.grid.node_shape
        check_tensor("kappa", kappa, f"of shape {shape}, one value per grid node",
                     "kappa = f(*grid.coordinates()) for the node coordinates of the grid")
        trailing = tuple(kappa.shape[kappa.ndim - len(shape):]) if kappa.ndim >= len(shape) else None
        if trailing == shape and (batch or kappa.ndim == len(shape)):
            return
        if trailing == shape:
            raise ShapeMismatchError(
                f"kappa has shape {tuple(kappa.shape)}; expected {shape}, one coefficient field (one value "
                "per grid node): each kappa of a batch needs its own matrix and solve, so loop over the batch")
        raise ShapeMismatchError(
            f"kappa has shape {tuple(kappa.shape)}; expected {shape}, one value per node of the "
            f"{'x'.join(map(str, self.grid.cells))}-cell grid")

    def check_kappa(self, kappa: torch.Tensor) -> None:
        """Raise unless ``kappa`` is one finite, positive field of shape ``grid.node_shape`` (no batch axes)."""
        self._check_kappa_shape(kappa, batch=False)
        check_positive("kappa", kappa)

    def face_weights(self, kappa: torch.Tensor) -> list[torch.Tensor]:
        """Per-axis face weights ``w`` (shape of ``kappa`` with one fewer node along the axis)."""
        self._check_kappa_shape(kappa, batch=True)
        d = self.grid.ndim
        weights = []
        for a in range(d):
            axis = kappa.ndim - d + a
            n = self.grid.cells[a]
            k_face = 0.5 * (kappa.narrow(axis, 0, n) + kappa.narrow(axis, 1, n))
            geom = torch.ones((), dtype=kappa.dtype, device=kappa.device)
            for b, h in enumerate(self.grid.spacing):
                if b == a:
                    continue
                shape = [1] * d
                shape[b] = -1
                geom = geom * (h * self.grid.half_weights(b, kappa.dtype, kappa.device)).reshape(shape)
            weights.append(k_face * geom / self.grid.spacing[a])
        return weights

    def apply_raw(self, kappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Stiffness form without boundary elimination: ``(A u)_i = sum_j w_ij (u_i - u_j)``."""
        d = self.grid.ndim
        weights = self.face_weights(kappa)  # checks kappa's shape first
        out = torch.zeros(torch.broadcast_shapes(u.shape, kappa.shape), dtype=u.dtype, device=u.device)
        for a, w in enumerate(weights):
            axis = u.ndim - d + a
            n = self.grid.cells[a]
            flux = w * (u.narrow(axis, 1, n) - u.narrow(axis, 0, n))
            out.narrow(out.ndim - d + a, 0, n).sub_(flux)
            out.narrow(out.ndim - d + a, 1, n).add_(flux)
        return out

    def apply(self, kappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """SPD operator with Dirichlet nodes eliminated: ``(P A P + I - P) u``."""
        return masked_apply(lambda v: self.apply_raw(kappa, v), u, self._free(u))

    def apply_tangent(self, kappa: torch.Tensor, dkappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Directional derivative ``(dA/dkappa)[dkappa] u`` of :meth:`apply`.

        ``A`` is linear in ``kappa`` (face/cell values are linear in it), so this
        is the eliminated stiffness built from ``dkappa``, without the identity
        rows of the Dirichlet nodes.  Used by forward-mode differentiation of solves.
        """
        free = self._free(u)
        return free * self.apply_raw(dkappa, free * u)

    def bind(self, kappa: torch.Tensor):
        """Fast ``u -> A(kappa) u`` for a fixed ``kappa`` (what iterative solvers call).

        The face weights are computed once; faces touching a Dirichlet node
        are dropped from the off-diagonal part (the diagonal keeps them), so
        ``A u = D u - sum_faces w'_f (shifted u)`` needs no masking and each
        face term is one fused in-place multiply-add.  Not differentiable in
        ``kappa`` (use :meth:`apply` for that); equal to :meth:`apply` to round-off.
        """
        kappa = kappa.detach()
        d = self.grid.ndim
        free = self._free(kappa)
        diag = self.diagonal(kappa)
        offdiag = []
        for a, w in enumerate(self.face_weights(kappa)):
            n = self.grid.cells[a]
            axis = kappa.ndim - d + a
            offdiag.append((w * free.narrow(axis, 0, n) * free.narrow(axis, 1, n)).contiguous())

        def matvec(u: torch.Tensor) -> torch.Tensor:
            out = diag * u
            for a, w in enumerate(offdiag):
                axis = u.ndim - d + a
                n = self.grid.cells[a]
                out.narrow(axis, 0, n).addcmul_(w, u.narrow(axis, 1, n), value=-1.0)
                out.narrow(axis, 1, n).addcmul_(w, u.narrow(axis, 0, n), value=-1.0)
            return out

        return matvec

    def diagonal(self, kappa: torch.Tensor) -> torch.Tensor:
        """Diagonal of :meth:`apply` (for Jacobi preconditioning)."""
        d = self.grid.ndim
        diag = torch.zeros_like(kappa)
        for a, w in enumerate(self.face_weights(kappa)):
            axis = kappa.ndim - d + a
            n = self.grid.cells[a]
            diag.narrow(axis, 0, n).add_(w)
            diag.narrow(axis, 1, n).add_(w)
        free = self._free(kappa)
        return free * diag + (1 - free)

    def assemble(self, kappa: torch.Tensor) -> sp.csr_matrix:
        """The matrix of :meth:`apply` as scipy CSR (float64), for one ``kappa``."""
        self.check_kappa(kappa)
        shape = self.grid.node_shape
        index = np.arange(int(np.prod(shape))).reshape(shape)
        rows, cols, vals = [], [], []
        for a, w in enumerate(self.face_weights(kappa.detach().to(torch.float64).cpu())):
            n = self.grid.cells[a]
            lo = np.take(index, np.arange(n), axis=a).ravel()
            hi = np.take(index, np.arange(1, n + 1), axis=a).ravel()
            wv = w.numpy().ravel()
            rows += [lo, hi, lo, hi]
            cols += [lo, hi, hi, lo]
            vals += [wv, wv, -wv, -wv]
        size = index.size
        raw = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
        ).tocsr()
        return masked_csr(raw, ~self.dirichlet_mask.cpu().numpy().ravel())

    def rhs(
        self,
        kappa: torch.Tensor,
        source: torch.Tensor | None = None,
        dirichlet: torch.Tensor | None = None,
        neumann: Mapping[str, torch.Tensor] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Right-hand side for :meth:`apply`, differentiable in ``kappa`` and the data.

        Parameters
        ----------
        source
            ``f`` at the nodes, shape ``(..., *node_shape)`` (units of u / m^2 times kappa).
        dirichlet
            Values ``g_D`` of u, read on Dirichlet nodes only; defaults to 0.
        neumann
            Outward flux ``g_N = kappa du/dn``: a mapping ``side -> field`` (each
            field of node shape, read on that side only), or one field used for
            every Neumann side -- refused when two Neumann sides meet, since the
            two fluxes at their common nodes differ in general.
        """
        grid = self.grid
        dtype, device = kappa.dtype, kappa.device
        free = self._free(kappa)
        b = torch.zeros(grid.node_shape, dtype=dtype, device=device)
        if source is not None:
            check_shape("source", source, grid.node_shape, "one value per grid node")
            check_finite("source", source)
            b = b + grid.control_volumes(dtype, device) * source
        if neumann is not None and self.neumann_sides:
            for side, flux in self._neumann_by_side(neumann).items():
                check_shape(f"neumann[{side!r}]", flux, grid.node_shape, "one value per grid node")
                check_finite(f"neumann[{side!r}]", flux)
                b = b + self._side_areas(side, dtype, device) * flux
        if dirichlet is not None:
            check_shape("dirichlet", dirichlet, grid.node_shape, "one value per grid node")
            check_finite("dirichlet", dirichlet)
            g = dirichlet * (1 - free)
            b = b - self.apply_raw(kappa, g)
            return free * b + g
        return free * b

    def _neumann_by_side(self, neumann) -> dict[str, torch.Tensor]:
        if isinstance(neumann, Mapping):
            unknown = set(neumann) - set(self.neumann_sides)
            if unknown:
                raise InvalidParameterError(
                    f"Neumann data for side(s) {sorted(unknown)} that are not Neumann sides; "
                    f"Neumann sides: {', '.join(self.neumann_sides)}"
                )
            return dict(neumann)
        axes = {side[0] for side in self.neumann_sides}
        if len(axes) > 1:
            raise InvalidParameterError(
                f"Neumann sides {self.neumann_sides} meet at corners where their fluxes differ; "
                "pass neumann as a mapping side -> flux field"
            )
        return {side: neumann for side in self.neumann_sides}

    def _side_areas(self, side: str, dtype, device) -> torch.Tensor:
        """Boundary face area owned by each node of ``side`` (zero elsewhere)."""
        grid = self.grid
        axis = "xyz".index(side[0])
        area = torch.ones((), dtype=dtype, device=device)
        for b, h in enumerate(grid.spacing):
            if b == axis:
                continue
            shape = [1] * grid.ndim
            shape[b] = -1
            area = area * (h * grid.half_weights(b, dtype, device)).reshape(shape)
        return grid.side_mask(side, device).to(dtype) * area


# --------------------------------------------------------------------------
# registration: tiny examples for the operator contract test


@register_operator("fd-poisson-2d", "FD stiffness on a 2D grid (unequal spacings), Dirichlet and two Neumann sides")
def _example_2d(dtype, device) -> OperatorExample:
    grid = UniformGrid((5, 4), lengths=(2.0, 0.5))
    return OperatorExample(FDPoissonOperator(grid, neumann_sides=("x1", "y0")),
                           random_coefficient(grid.node_shape, 0, dtype, device))


@register_operator("fd-poisson-3d", "FD stiffness on a 3D grid, Dirichlet except one Neumann side")
def _example_3d(dtype, device) -> OperatorExample:
    grid = UniformGrid((3, 4, 2))
    return OperatorExample(FDPoissonOperator(grid, neumann_sides=("z1",)),
                           random_coefficient(grid.node_shape, 1, dtype, device))
