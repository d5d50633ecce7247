"""Second-order convergence of the FD Poisson solve with Neumann sides (manufactured solutions).

``physinv.problems.poisson.validate`` covers the all-Dirichlet case; here part of the
boundary carries the flux condition ``kappa du/dn = g``.  ``f = -div(kappa grad u)``
and the fluxes are derived from the closed forms by autograd, so no hand algebra
can be wrong.
"""

import math

import numpy as np
import pytest
import torch

from physinv.core.verify import fit_slope
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.linalg.solvers import DirectSolver

RATE_BOUNDS = (1.9, 2.1)


def _closed_forms(coords):
    """u, kappa, f = -div(kappa grad u) and the flux vector kappa grad u at the nodes."""
    xs = [c.detach().clone().requires_grad_(True) for c in coords]
    x, y = xs[0], xs[1]
    if len(xs) == 2:
        u = torch.sin(math.pi * x) * torch.exp(y) + x * y**2
        kappa = 1.0 + x**2 + 0.5 * y
    else:
        z = xs[2]
        u = torch.sin(math.pi * x) * torch.exp(y) * torch.cos(z) + x * y * z
        kappa = 1.0 + x**2 + 0.5 * y + 0.3 * z
    grads = torch.autograd.grad(u.sum(), xs, create_graph=True)
    flux = [kappa * g for g in grads]
    f = -sum(torch.autograd.grad(q.sum(), xa, retain_graph=True)[0] for q, xa in zip(flux, xs))
    return u.detach(), kappa.detach(), f.detach(), [q.detach() for q in flux]


def _errors(n, ndim, neumann, lengths=None):
    grid = UniformGrid((n,) * ndim, lengths)
    op = FDPoissonOperator(grid, neumann_sides=neumann)
    u, kappa, f, flux = _closed_forms(grid.coordinates())
    g = {}
    for side in neumann:
        axis, sign = "xyz".index(side[0]), (1.0 if side[1] == "1" else -1.0)
        g[side] = sign * flux[axis]
    b = op.rhs(kappa, source=f, dirichlet=u, neumann=g)
    uh = DirectSolver().prepare(op, kappa)(b)
    err = uh - u
    return float(err.abs().max()), float((grid.control_volumes() * err**2).sum().sqrt())


@pytest.mark.parametrize(
    "ndim, levels, neumann, lengths",
    [
        (2, (8, 16, 32, 64), ("y1",), None),
        (2, (8, 16, 32, 64), ("y0", "y1"), (1.0, 0.8)),
        (2, (8, 16, 32, 64), ("x0",), (1.2, 1.0)),
        (3, (8, 16, 24), ("z1",), None),
    ],
    ids=["2d-y1", "2d-y0y1-rect", "2d-x0-rect", "3d-z1"],
)
def test_second_order_with_neumann(ndim, levels, neumann, lengths):
    h = 1.0 / np.array(levels, dtype=float)
    errs = np.array([_errors(n, ndim, neumann, lengths) for n in levels])
    rate_max, rate_l2 = fit_slope(h, errs[:, 0]), fit_slope(h, errs[:, 1])
    assert RATE_BOUNDS[0] <= rate_max <= RATE_BOUNDS[1], (errs, rate_max)
    assert RATE_BOUNDS[0] <= rate_l2 <= RATE_BOUNDS[1], (errs, rate_l2)
    assert errs[-1, 0] < 1e-2  # and the error is small, not merely decreasing


def test_second_order_with_adjacent_neumann_sides():
    levels = (8, 16, 32, 64)
    h = 1.0 / np.array(levels, dtype=float)
    errs = np.array([_errors(n, 2, ("x1", "y1")) for n in levels])
    assert RATE_BOUNDS[0] <= fit_slope(h, errs[:, 0]) <= RATE_BOUNDS[1], errs


def test_one_flux_field_for_adjacent_neumann_sides_is_refused():
    from physinv.core.errors import InvalidParameterError

    grid = UniformGrid((4, 4))
    op = FDPoissonOperator(grid, neumann_sides=("x1", "y1"))
    with pytest.raises(InvalidParameterError, match="mapping side"):
        op.rhs(torch.ones(grid.node_shape, dtype=torch.float64), neumann=torch.ones(grid.node_shape, dtype=torch.float64))
