"""Differentiable Poisson simulator: kappa -> u solving -div(kappa grad u) = f.

Works on any discretization with the operator interface of
:class:`physinv.core.operator.Operator` (finite differences on grids, P1
elements on triangle meshes).  Several sources are solved at once as a batch
with one factorization; the solve is differentiated implicitly
(:class:`physinv.linalg.linear_pde.LinearPDESimulator`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from physinv.core.checks import check_finite
from physinv.core.simulator import LinearOperatorPair, SimulatorExample, register_simulator
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.linalg.linear_pde import LinearPDESimulator


class PoissonSimulator(LinearPDESimulator):
    """``kappa -> B u(kappa)`` for ``-div(kappa grad u) = f_s``, ``s = 1..S``.

    Parameters
    ----------
    operator
        :class:`~physinv.discretize.fd.FDPoissonOperator` or
        :class:`~physinv.discretize.p1.P1PoissonOperator`.
    sources
        ``f_s`` at the nodes, shape ``(S, *operator.state_shape)`` (units of
        kappa * u / m^2).
    dirichlet
        Values of u on Dirichlet nodes, ``(*state_shape)`` or per source; default 0.
    observe
        Optional linear observation operator ``B`` (e.g. a
        :class:`~physinv.discretize.interpolate.GridPointInterpolator`);
        without it the full states ``(S, *state_shape)`` are returned.
    solver
        Linear solver (default: sparse direct).

    Notes
    -----
    ``kappa`` (W/(m K) or S/m: any diffusivity) is one tensor of the operator's
    parameter shape (no batch axis: each kappa needs its own factorization) and
    must be finite and positive; a function of the coordinates must be evaluated
    first.  Sources and Dirichlet values of another floating dtype than ``kappa``
    are promoted by torch's rules on both discretizations (float32 sources with
    a float64 ``kappa`` give float64 states).
    """

    def __init__(
        self,
        operator,
        sources: torch.Tensor,
        dirichlet: torch.Tensor | None = None,
        observe: Callable[[torch.Tensor], torch.Tensor] | None = None,
        solver=None,
    ):
        super().__init__(operator, solver)
        check_finite("sources", sources)
        self.register_buffer("sources", sources)
        self.register_buffer("dirichlet", dirichlet)
        self.observe = observe

    def check_parameters(self, kappa: torch.Tensor) -> None:
        self.operator.check_kappa(kappa)

    def right_hand_side(self, kappa: torch.Tensor) -> torch.Tensor:
        """The loads of the sources ``f_s`` with the Dirichlet lifting, ``(S, *state_shape)``."""
        return self.operator.rhs(kappa, source=self.sources, dirichlet=self.dirichlet)

    def observation(self, kappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``B u`` with the observation operator, or the states ``u`` without one."""
        return self.observe(u) if self.observe is not None else u


# --------------------------------------------------------------------------
# registration: tiny examples for the generic checks


def _smooth_kappa(coords: list[torch.Tensor]) -> torch.Tensor:
    x = coords[0]
    y = coords[1]
    k = 1.5 + 0.5 * torch.sin(2 * np.pi * x) * torch.cos(np.pi * y)
    if len(coords) == 3:
        k = k + 0.3 * coords[2]
    return k


def _grid_example(cells: tuple[int, ...], neumann: tuple[str, ...], dtype, device) -> SimulatorExample:
    grid = UniformGrid(cells)
    op = FDPoissonOperator(grid, neumann_sides=neumann)
    coords = list(grid.coordinates(dtype, device))
    sources = torch.stack([torch.ones_like(coords[0]), 10 * coords[0] * coords[1]])
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(7, grid.ndim, generator=gen, dtype=torch.float64)
    observe = GridPointInterpolator(grid, points)
    sim = PoissonSimulator(op, sources.to(dtype), dirichlet=coords[0].to(dtype), observe=observe).to(device)
    kappa = _smooth_kappa(coords)
    pairs = [
        LinearOperatorPair("stiffness", lambda u: op.apply(kappa, u), lambda u: op.apply(kappa, u),
                           grid.node_shape, grid.node_shape),
        LinearOperatorPair("observation", observe, observe.adjoint, grid.node_shape, (observe.num_points,)),
    ]
    return SimulatorExample(sim, kappa, pairs)


@register_simulator("poisson-fd-2d", "finite-difference Poisson on a 2D grid, mixed Dirichlet/Neumann, point sensors")
def _example_fd2d(dtype, device) -> SimulatorExample:
    return _grid_example((6, 5), ("y1",), dtype, device)


@register_simulator("poisson-fd-3d", "finite-difference Poisson on a 3D grid, Dirichlet, point sensors")
def _example_fd3d(dtype, device) -> SimulatorExample:
    return _grid_example((4, 3, 3), (), dtype, device)


@register_simulator("poisson-p1", "P1 finite-element Poisson on a triangle mesh, kappa per cell")
def _example_p1(dtype, device) -> SimulatorExample:
    mesh = TriMesh.unit_square(4)
    op = P1PoissonOperator(mesh, dtype=dtype, device=device)
    pts = torch.from_numpy(mesh.points).to(dtype=dtype, device=device)
    sources = torch.stack([torch.ones(mesh.num_nodes, dtype=dtype, device=device), pts[:, 0] * pts[:, 1]])
    sim = PoissonSimulator(op, sources, dirichlet=pts[:, 1].clone())
    centers = pts[op.cells].mean(dim=1)
    kappa = _smooth_kappa([centers[:, 0], centers[:, 1]])
    n = (mesh.num_nodes,)
    pairs = [
        LinearOperatorPair("stiffness", lambda u: op.apply(kappa, u), lambda u: op.apply(kappa, u), n, n),
        LinearOperatorPair("mass", op.mass_apply, op.mass_apply, n, n),
    ]
    return SimulatorExample(sim, kappa, pairs)
