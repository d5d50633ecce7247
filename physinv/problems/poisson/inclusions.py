"""The two-inclusion conductivity benchmark of the ``poisson_inverse`` case: truth, experiments, simulator."""

from __future__ import annotations

import math

import numpy as np
import torch

from physinv.discretize import FDPoissonOperator, UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator
from physinv.problems.poisson.simulator import PoissonSimulator

__all__ = ["experiments", "make_simulator", "rel_l2", "true_kappa"]


def true_kappa(x: torch.Tensor, y: torch.Tensor, width: float = 0.01) -> torch.Tensor:
    """Background 2 + 0.5 sin(2 pi x) sin(pi y) with inclusions 4.5 (at (0.35, 0.62), r=0.13)
    and 1.0 (at (0.68, 0.3), r=0.11), edges smoothed over ``width``."""
    k = 2.0 + 0.5 * torch.sin(2 * math.pi * x) * torch.sin(math.pi * y)
    for (cx, cy, r, value) in ((0.35, 0.62, 0.13, 4.5), (0.68, 0.30, 0.11, 1.0)):
        inside = torch.sigmoid((r - torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)) / width)
        k = k + (value - k) * inside
    return k


def experiments(grid: UniformGrid, count: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources f_s and Dirichlet data g_s: boundary-driven flows and Gaussian point-like sources."""
    x, y = grid.coordinates(dtype, device)
    bump = lambda cx, cy: 100.0 * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.08**2))  # noqa: E731
    zero = torch.zeros_like(x)
    catalogue = [
        (zero, x), (zero, y), (bump(0.3, 0.3), zero), (bump(0.7, 0.7), zero),
        (zero, x + y), (zero, x - y), (bump(0.3, 0.7), zero), (bump(0.7, 0.3), zero),
    ]
    chosen = catalogue[:count]
    return torch.stack([f for f, _ in chosen]), torch.stack([g for _, g in chosen])


def make_simulator(cells: int, sensors: np.ndarray, n_exp: int, solver, dtype, device) -> PoissonSimulator:
    """FD simulator on a ``cells``^2 grid with the first ``n_exp`` experiments, observed at ``sensors``."""
    grid = UniformGrid((cells, cells))
    sources, dirichlet = experiments(grid, n_exp, dtype, device)
    return PoissonSimulator(
        FDPoissonOperator(grid), sources, dirichlet=dirichlet,
        observe=GridPointInterpolator(grid, sensors), solver=solver,
    )


def rel_l2(a: torch.Tensor, b: torch.Tensor, grid: UniformGrid) -> float:
    """Relative L2 error int (a - b)^2 / int b^2 with the grid's control volumes."""
    vol = grid.control_volumes(a.dtype, a.device)
    return float(torch.sqrt((vol * (a - b) ** 2).sum() / (vol * b**2).sum()))
