import math

import numpy as np
import pytest
import torch

from physinv.discretize import FDPoissonOperator, UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator
from physinv.invert import InverseProblem, TotalVariation
from physinv.problems.poisson import PoissonSimulator


@pytest.fixture
def small_problem():
    """A 12x12 conductivity problem with 2 experiments, 49 sensors and 1% noise."""
    torch.manual_seed(0)
    grid = UniformGrid((12, 12))
    x, y = grid.coordinates()
    sources = torch.stack([torch.zeros_like(x), 20 * torch.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.02)])
    dirichlet = torch.stack([x, torch.zeros_like(x)])
    s = np.linspace(0.1, 0.9, 7)
    sensors = np.stack(np.meshgrid(s, s, indexing="ij"), -1).reshape(-1, 2)
    sim = PoissonSimulator(FDPoissonOperator(grid), sources, dirichlet=dirichlet,
                           observe=GridPointInterpolator(grid, sensors))
    kappa_true = 2 + torch.sin(math.pi * x) * torch.sin(math.pi * y)
    with torch.no_grad():
        clean = sim(kappa_true)
    sigma = 0.01 * clean.abs().amax(-1, keepdim=True)
    data = clean + sigma * torch.randn(clean.shape, dtype=torch.float64)
    problem = InverseProblem(sim, data, sigma, TotalVariation(grid, eps=0.3))
    m0 = torch.full(grid.node_shape, math.log(2.0), dtype=torch.float64)
    return problem, m0, kappa_true
