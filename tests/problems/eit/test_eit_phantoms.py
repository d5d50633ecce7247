"""EIT phantoms: exact geometry, cell averages, pixel grid, metrics."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.discretize.mesh import TriMesh
from physinv.problems.eit.phantoms import (
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


def test_cell_averages_are_area_fractions_on_cut_cells():
    """On the cells the inclusion boundary cuts, a cell value is background + (contrast - 1) x (area fraction).
    Centroid sampling (samples=1) gets it wrong by up to the whole contrast; the 16-point sub-triangle rule
    must stay within 1/8 of the contrast of a 64^2-point reference (its error is O(1/4) of a cell's
    fraction at worst: one of 16 equal sub-triangles misclassified, halved by the 1/3-offset centroids)."""
    inc = Inclusion(0.5, 0.5, 0.3, 0.2, 0.4, 3.0)
    ph = Phantom(1.0, (inc,))
    mesh = TriMesh.unit_square(16)
    reference = ph.on_cells(mesh, samples=64)
    cut = (reference > 1.0 + 1e-9) & (reference < 3.0 - 1e-9)
    assert cut.sum() > 20
    err16 = np.abs(ph.on_cells(mesh, samples=4) - reference)[cut].max()
    err1 = np.abs(ph.on_cells(mesh, samples=1) - reference)[cut].max()
    assert err16 < 0.125 * (3.0 - 1.0) and err1 > 0.5 * (3.0 - 1.0)
    # and the total matches the exact integral 1 + (3 - 1) pi a b (reference error O(h / 64))
    integral = float((ph.on_cells(mesh, samples=64) * mesh.areas()).sum())
    assert abs(integral - (1.0 + 2.0 * math.pi * 0.3 * 0.2)) < 1e-3


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
