"""physinv.linalg.precond: Jacobi and AMG (pyamg smoothed aggregation)."""

import pytest
import torch

from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.linalg.cg import cg
from physinv.linalg.precond import AMGPreconditioner, JacobiPreconditioner

DT = torch.float64


def test_jacobi_divides_by_diagonal():
    d = torch.tensor([2.0, 4.0, 0.5], dtype=DT)
    r = torch.tensor([[1.0, 1.0, 1.0], [2.0, -4.0, 3.0]], dtype=DT)
    torch.testing.assert_close(JacobiPreconditioner(d)(r), r / d, rtol=0, atol=0)


def _laplacian(n):
    grid = UniformGrid((n, n))
    op = FDPoissonOperator(grid)
    kappa = torch.ones(grid.node_shape, dtype=DT)
    b = op.rhs(kappa, source=torch.ones(grid.node_shape, dtype=DT))
    return grid, op, kappa, b


def test_amg_pcg_needs_far_fewer_iterations_than_cg():
    grid, op, kappa, b = _laplacian(64)
    amg = AMGPreconditioner(op.assemble(kappa), grid.node_shape)
    plain = cg(lambda x: op.apply(kappa, x), b, rtol=1e-8)
    pre = cg(lambda x: op.apply(kappa, x), b, precond=amg, rtol=1e-8)
    assert plain.converged and pre.converged
    assert pre.iterations < plain.iterations / 5, (pre.iterations, plain.iterations)
    torch.testing.assert_close(pre.x, plain.x, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_amg_keeps_shape_and_dtype(dtype):
    grid, op, kappa, _ = _laplacian(8)
    amg = AMGPreconditioner(op.assemble(kappa), grid.node_shape)
    r = torch.randn((3,) + grid.node_shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    z = amg(r)
    assert z.shape == r.shape and z.dtype == dtype
    # batch rows are preconditioned independently, and the V-cycle is linear
    torch.testing.assert_close(z[1], amg(r[1]), rtol=0, atol=0)
    torch.testing.assert_close(amg(2.0 * r), 2.0 * z, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)
