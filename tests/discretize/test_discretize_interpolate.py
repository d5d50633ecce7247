"""physinv.discretize.interpolate.GridPointInterpolator."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize.grid import UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator

DT = torch.float64


def _multilinear(coeffs, coords):
    """sum over subsets S of the axes of c_S prod_{a in S} x_a (exact under multilinear interpolation)."""
    d = len(coords)
    out = torch.zeros_like(coords[0])
    for k, c in enumerate(coeffs):
        term = torch.full_like(coords[0], float(c))
        for a in range(d):
            if k >> a & 1:
                term = term * coords[a]
        out = out + term
    return out


def _points(grid, k, seed):
    rng = np.random.default_rng(seed)
    pts = rng.random((k, grid.ndim)) * np.array(grid.lengths)
    # add a node, the far corner, and points on faces, where the cell index is clipped
    extra = [np.zeros(grid.ndim), np.array(grid.lengths), np.array(grid.spacing), np.array(grid.lengths) * 0.5]
    face = pts[0].copy()
    face[0] = grid.lengths[0]
    return np.vstack([pts] + extra + [face])


@pytest.mark.parametrize("cells, lengths", [((5, 4), (2.0, 0.7)), ((3, 4, 2), (1.0, 0.5, 2.0))])
def test_exact_for_multilinear_functions(cells, lengths):
    grid = UniformGrid(cells, lengths)
    interp = GridPointInterpolator(grid, _points(grid, 20, 0))
    coeffs = np.random.default_rng(1).standard_normal(2**grid.ndim)
    field = _multilinear(coeffs, grid.coordinates())
    pts = torch.from_numpy(interp.points)
    want = _multilinear(coeffs, [pts[:, a] for a in range(grid.ndim)])
    got = interp(field)
    assert got.shape == (interp.num_points,)
    assert float((got - want).abs().max()) <= 1e-13 * float(want.abs().max())


def test_batch_dimensions_and_weights_partition_unity():
    grid = UniformGrid((4, 3))
    interp = GridPointInterpolator(grid, torch.tensor([[0.3, 0.2], [1.0, 1.0], [0.0, 0.5]]))
    torch.testing.assert_close(interp.weight.sum(1), torch.ones(3, dtype=DT), rtol=0, atol=1e-15)
    u = torch.randn((2, 3) + grid.node_shape, dtype=DT, generator=torch.Generator().manual_seed(0))
    out = interp(u)
    assert out.shape == (2, 3, 3)
    torch.testing.assert_close(out[1, 2], interp(u[1, 2]), rtol=0, atol=0)
    # the corner point reads the corner node exactly
    torch.testing.assert_close(out[..., 1], u[..., -1, -1], rtol=0, atol=0)


@pytest.mark.parametrize("cells", [(5, 4), (3, 4, 2)])
def test_adjoint_dot_product(cells):
    grid = UniformGrid(cells)
    interp = GridPointInterpolator(grid, _points(grid, 9, 2))
    gen = torch.Generator().manual_seed(3)
    u = torch.randn((2,) + grid.node_shape, dtype=DT, generator=gen)
    y = torch.randn(2, interp.num_points, dtype=DT, generator=gen)
    back = interp.adjoint(y)
    assert back.shape == (2,) + grid.node_shape
    lhs, rhs = float((interp(u) * y).sum()), float((u * back).sum())
    assert abs(lhs - rhs) <= 1e-13 * abs(lhs)


@pytest.mark.parametrize("bad", [[[-0.01, 0.5]], [[0.5, 1.01]], [[1.0 + 1e-9, 0.0]]])
def test_points_outside_raise(bad):
    with pytest.raises(InvalidParameterError, match="box"):
        GridPointInterpolator(UniformGrid((4, 4)), bad)


def test_points_on_boundary_within_roundoff_accepted():
    interp = GridPointInterpolator(UniformGrid((4, 4)), [[1.0 + 1e-14, -1e-14]])
    u = torch.ones(5, 5, dtype=DT)
    assert float(interp(u)[0]) == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.zeros(2), np.zeros((2, 2, 1))])
def test_wrong_point_shape_raises(bad):
    with pytest.raises(ShapeMismatchError, match=r"\(k, 2\)"):
        GridPointInterpolator(UniformGrid((4, 4)), bad)
