"""EIT phantoms: exact geometry, cell averages, pixel grid, metrics."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.discretize.mesh import TriMesh
from physinv.sims.eit_phantoms import (
    Inclusion,
    Phantom,
    cells_to_pixels,
    dice,
    draw_phantom,
    inclusion_mask,
    pixel_grid,
    relative_l2,
)


def test_draws_respect_the_prior():
    rng = np.random.default_rng(3)
    counts = set()
    for _ in range(200):
        ph = draw_phantom(rng)
        counts.add(len(ph.inclusions))
        for inc in ph.inclusions:
            assert 0.12 <= inc.b <= inc.a <= 0.3
            assert math.hypot(inc.x, inc.y) + inc.a <= 0.9 + 1e-12
            contrast = max(inc.sigma, 1 / inc.sigma)
            assert 2.0 - 1e-12 <= contrast <= 5.0 + 1e-12
        for i, a in enumerate(ph.inclusions):
            for b in ph.inclusions[i + 1:]:
                assert math.hypot(a.x - b.x, a.y - b.y) > a.a + b.a + 0.05
    assert counts == {1, 2, 3, 4}
    with pytest.raises(InvalidParameterError):
        draw_phantom(rng, n_inclusions=5)
    with pytest.raises(InvalidParameterError):
        draw_phantom(rng, shapes="squares")


def test_cell_averages_integrate_the_phantom():
    """int sigma over a fine square mesh = area-weighted sum of the cell averages.  Plain cell-centre
    sampling would err by up to the band of cut cells, perimeter * h * |contrast - 1|; the 16-point
    sub-triangle rule must do ten times better (one inclusion of radius 0.25, h = 1/64)."""
    inc = Inclusion(0.5, 0.5, 0.25, 0.25, 0.0, 3.0)
    ph = Phantom(1.0, (inc,))
    mesh = TriMesh.unit_square(64)
    values = ph.on_cells(mesh)
    integral = float((values * mesh.areas()).sum())
    exact = 1.0 + (3.0 - 1.0) * math.pi * 0.25**2
    assert abs(integral - exact) < 0.1 * (2 * math.pi * 0.25) * (1 / 64) * (3.0 - 1.0)


def test_pixel_grid_maps_and_metrics():
    centres, mask = pixel_grid(8)
    assert centres.shape == (8, 8, 2) and mask.sum() == 8 * 8 - 4 * 3  # 3 corner pixels per quadrant
    np.testing.assert_allclose(centres[0, 0], [-0.875, -0.875])
    np.testing.assert_allclose(centres[0, 1], [-0.625, -0.875])  # [i, j]: row i is y, column j is x
    mesh = TriMesh.unit_square(4)
    mesh = TriMesh(2 * mesh.points - 1, mesh.cells)  # [-1, 1]^2
    to_pixels = cells_to_pixels(mesh, 8)
    values = torch.arange(mesh.num_cells, dtype=torch.float64)
    img = to_pixels(values)
    assert img.shape == (8, 8)
    centroids = mesh.points[mesh.cells].mean(axis=1)
    j = int(img[0, 0])  # the pixel at (-0.875, -0.875) lies in a cell of the lower-left square
    assert np.all(centroids[j] < -0.5)
    truth = torch.ones(8, 8)
    truth[2:4, 2:4] = 3.0
    assert dice(inclusion_mask(truth), inclusion_mask(truth), mask) == 1.0
    assert dice(inclusion_mask(torch.ones(8, 8)), inclusion_mask(truth), mask) == 0.0
    assert relative_l2(truth, truth, mask) == 0.0
    assert relative_l2(2 * truth, truth, mask) == pytest.approx(1.0)
    assert bool(inclusion_mask(torch.tensor([1.40, 1.42, 0.70, 0.71]))
                .eq(torch.tensor([False, True, True, False])).all())  # threshold sqrt(2) and 1/sqrt(2)
