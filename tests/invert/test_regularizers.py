import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize import FDPoissonOperator, UniformGrid
from physinv.invert import H1Seminorm, TotalVariation


@pytest.mark.parametrize("cells", [(6, 5), (4, 3, 5)])
def test_h1_seminorm_is_half_the_unit_stiffness_quadratic_form(cells):
    grid = UniformGrid(cells)
    m = torch.randn(grid.node_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # the raw FD stiffness with kappa = 1 (all sides Neumann-like: use apply_raw)
    op = FDPoissonOperator(grid)
    quad = 0.5 * (m * op.apply_raw(torch.ones_like(m), m)).sum()
    assert float(H1Seminorm(grid)(m)) == pytest.approx(float(quad), rel=1e-12)


def test_h1_seminorm_converges_to_the_integral_at_second_order():
    # m = sin(pi x) y: 1/2 int |grad m|^2 = 1/2 (pi^2/2 * 1/3 + 1/2)
    exact = 0.5 * (math.pi**2 / 6 + 0.5)
    errors = []
    for n in (8, 16, 32):
        grid = UniformGrid((n, n))
        x, y = grid.coordinates()
        errors.append(abs(float(H1Seminorm(grid)(torch.sin(math.pi * x) * y)) - exact))
    rates = [math.log2(errors[k] / errors[k + 1]) for k in range(2)]
    assert all(1.9 <= r <= 2.1 for r in rates), rates


def test_tv_of_a_linear_function_is_its_slope_times_area():
    grid = UniformGrid((10, 7))
    x, y = grid.coordinates()
    eps = 1e-3
    tv = TotalVariation(grid, eps=eps)(3 * x - 4 * y)
    assert float(tv) == pytest.approx(math.sqrt(25 + eps**2), rel=1e-12)


def test_tv_penalizes_checkerboards():
    grid = UniformGrid((8, 8))
    i, j = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    checker = ((-1.0) ** (i + j)).to(torch.float64)
    # each difference quotient is 2/h = 16, on both axes: |grad|^2 = 2 * 256
    assert float(TotalVariation(grid, eps=1e-6)(checker)) == pytest.approx(math.sqrt(512), rel=1e-9)


def test_regularizer_input_errors():
    grid = UniformGrid((4, 4))
    with pytest.raises(ShapeMismatchError, match="node"):
        TotalVariation(grid)(torch.zeros(4, 4))
    with pytest.raises(InvalidParameterError, match="eps"):
        TotalVariation(grid, eps=0.0)


def test_h1_on_a_mesh_is_half_the_p1_stiffness_quadratic_form():
    """On P1 nodes, 1/2 int |grad m|^2 = 1/2 m^T K m exactly (K: unit-coefficient P1 stiffness)."""
    from physinv.discretize.mesh import TriMesh
    from physinv.discretize.p1 import P1Elements

    mesh = TriMesh.shipped("eit_disk_h0.1.msh")
    m = torch.randn(mesh.num_nodes, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stiffness = P1Elements(mesh).assemble_raw(torch.ones(mesh.num_cells, dtype=torch.float64))
    expected = 0.5 * float(m.numpy() @ (stiffness @ m.numpy()))
    assert float(H1Seminorm(mesh)(m)) == pytest.approx(expected, rel=1e-12)
    # linear fields: |grad m| = |a| everywhere, so R = 1/2 |a|^2 |Omega| and TV = |Omega| sqrt(|a|^2 + eps^2)
    x, y = (torch.as_tensor(mesh.points[:, k]) for k in (0, 1))
    area = float(mesh.areas().sum())
    assert float(H1Seminorm(mesh)(3 * x - 4 * y)) == pytest.approx(0.5 * 25 * area, rel=1e-12)
    assert float(TotalVariation(mesh, eps=0.1)(3 * x - 4 * y)) == pytest.approx(area * math.sqrt(25.01), rel=1e-12)
    with pytest.raises(ShapeMismatchError, match="mesh node"):
        H1Seminorm(mesh)(m[:-1])
    with pytest.raises(InvalidParameterError, match="UniformGrid or a TriMesh"):
        TotalVariation("grid")
