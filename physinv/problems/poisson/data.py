"""The Poisson data set ``poisson-2d-kappa``: random smooth log-conductivities and their potentials."""

from __future__ import annotations

import numpy as np
import torch

from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.learn.data import register_dataset
from physinv.problems.poisson.simulator import PoissonSimulator



def smooth_log_field(rng: np.random.Generator, cells: int, modes: int, amplitude: float,
                     decay: float = 2.0) -> np.ndarray:
    """A random smooth field on the ``(cells+1)^2`` grid of the unit square.

    ``s(x, y) = amplitude * sum_{j,k < modes} xi_jk (1 + j^2 + k^2)^(-decay/2)
    cos(pi j x) cos(pi k y) / Z`` with ``xi_jk ~ N(0, 1)`` and ``Z`` normalizing
    the expected variance to ``amplitude^2``.
    """
    j = np.arange(modes)
    weight = (1.0 + j[:, None] ** 2 + j[None, :] ** 2) ** (-decay / 2)
    xi = rng.standard_normal((modes, modes)) * weight / np.sqrt((weight**2).sum())
    x = np.linspace(0.0, 1.0, cells + 1)
    basis = np.cos(np.pi * j[:, None] * x[None, :])  # (modes, cells+1)
    return amplitude * basis.T @ xi @ basis


def _poisson_draw(rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    s = smooth_log_field(rng, params["cells"], params["modes"], params["amplitude"])
    return {"log_kappa": s.astype(params["dtype"])}


def _poisson_simulate(batch: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    cells = params["cells"]
    grid = UniformGrid((cells, cells))
    sim = PoissonSimulator(FDPoissonOperator(grid), torch.ones(1, *grid.node_shape, dtype=torch.float64))
    out = []
    with torch.no_grad():
        for log_kappa in batch["log_kappa"]:
            kappa = torch.exp(torch.from_numpy(np.asarray(log_kappa, dtype=np.float64)))
            out.append(sim(kappa)[0].numpy())
    return {"u": np.stack(out).astype(params["dtype"])}


register_dataset(
    "poisson-2d-kappa",
    draw=_poisson_draw,
    simulate=_poisson_simulate,
    params={"cells": 16, "modes": 4, "amplitude": 1.0, "dtype": "float32"},
    choices={"dtype": ("float32", "float64")},
    limits={"cells": (2, None), "modes": (1, None), "amplitude": (0.0, None)},
    inputs=("u",),
    targets=("log_kappa",),
    description="-div(kappa grad u) = 1 on the unit square, u = 0 on the boundary; "
                "log kappa a random smooth cosine series; input u, target log kappa",
)
