"""physinv.discretize.grid.UniformGrid."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.discretize.grid import UniformGrid


def test_basic_2d():
    g = UniformGrid((4, 5), (2.0, 0.5))
    assert g.ndim == 2
    assert g.node_shape == (5, 6)
    assert g.num_nodes == 30
    assert g.spacing == (0.5, 0.1)
    assert g.sides == ("x0", "x1", "y0", "y1")
    x, y = g.coordinates()
    assert x.shape == y.shape == (5, 6)
    assert float(x[-1, 0]) == 2.0 and float(y[0, -1]) == 0.5
    torch.testing.assert_close(x[:, 0], torch.arange(5, dtype=torch.float64) * 0.5, rtol=0, atol=1e-15)


def test_defaults_and_normalization_3d():
    g = UniformGrid([2, 3, 4])
    assert g.cells == (2, 3, 4) and g.lengths == (1.0, 1.0, 1.0)
    assert g.sides == ("x0", "x1", "y0", "y1", "z0", "z1")
    assert g.num_nodes == 3 * 4 * 5


@pytest.mark.parametrize(
    "cells, lengths",
    [((4,), None), ((2, 2, 2, 2), None), ((1, 4), None), ((4, 4), (1.0,)), ((4, 4), (1.0, 0.0)), ((4, 4), (1.0, -2.0))],
)
def test_invalid(cells, lengths):
    with pytest.raises(InvalidParameterError):
        UniformGrid(cells, lengths)


def test_side_masks():
    g = UniformGrid((3, 4, 5))
    total = 0
    for side in g.sides:
        m = g.side_mask(side)
        axis, end = "xyz".index(side[0]), int(side[1])
        coord = g.coordinates()[axis]
        assert bool((coord[m] == (g.lengths[axis] if end else 0.0)).all())
        total += int(m.sum())
    # faces of a 4 x 5 x 6 node box
    assert total == 2 * (5 * 6 + 4 * 6 + 4 * 5)
    interior = (3 - 1) * (4 - 1) * (5 - 1)
    assert int(g.boundary_mask().sum()) == g.num_nodes - interior
    with pytest.raises(InvalidParameterError, match="allowed: x0, x1"):
        g.side_mask("w0")


@pytest.mark.parametrize("cells, lengths", [((4, 6), (1.0, 2.0)), ((3, 2, 5), (0.3, 1.0, 2.5))])
def test_control_volumes_tile_the_box(cells, lengths):
    g = UniformGrid(cells, lengths)
    vol = g.control_volumes()
    assert vol.shape == g.node_shape
    assert float(vol.sum()) == pytest.approx(math.prod(lengths), rel=1e-14)
    interior = vol[(slice(1, -1),) * g.ndim]
    assert float(interior.min()) == pytest.approx(math.prod(g.spacing), rel=1e-14)
    corner = float(vol[(0,) * g.ndim])
    assert corner == pytest.approx(math.prod(g.spacing) / 2**g.ndim, rel=1e-14)


def test_half_weights():
    w = UniformGrid((4, 2)).half_weights(0)
    assert w.tolist() == [0.5, 1.0, 1.0, 1.0, 0.5]
