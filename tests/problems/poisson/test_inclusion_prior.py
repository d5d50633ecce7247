"""The inclusion prior: its catalogue, its data set's draws, and the inclusion design space."""

import torch

from physinv.discretize import UniformGrid
from physinv.learn import data
from physinv.problems.poisson.inclusion_prior import (CATALOGUE_DEFAULTS, InclusionDesign, inclusion_catalogue,
                                                      inclusion_prior)


def test_catalogue_fields_are_disks_of_the_given_contrast():
    grid = UniformGrid((20, 20))
    fields = inclusion_catalogue(grid)
    assert fields.shape == (7 * 7 * 3 * 2, 21, 21)
    # the first field: centre (0.2, 0.2) = node (4, 4), radius 0.1, contrast -1; sigmoid(0.1 / 0.03) = 0.966 inside
    assert abs(float(fields[0, 4, 4]) + 0.966) < 0.01
    assert abs(float(fields[0, 16, 16])) < 1e-6  # far outside
    assert float(fields.abs().max()) <= 1.0


def test_data_set_draws_are_catalogue_fields_plus_the_stated_noise(tmp_path):
    params = {"cells": 15, "std": 0.05}
    path = data.generate("poisson-inclusions", 60, tmp_path / "inc.h5", seed=3, params=params, progress=False)
    fields = data.load(path)["log_kappa"].double()
    prior = inclusion_prior(15, std=0.05)
    nearest = prior.responsibilities(fields, 1e-3).argmax(1)
    residual = fields - prior.means[nearest]
    # 60 x 256 float32 residuals of std 0.05: the sample std within 2% (its standard error is 0.6%)
    assert abs(float(residual.std()) / 0.05 - 1) < 0.02
    assert float(residual.mean().abs()) < 0.002
    u = data.load(path)["u"]
    assert u.shape == (60, 16, 16) and float(u[:, 1:-1, 1:-1].min()) > 0  # -div(kappa grad u) = 1 > 0, u = 0 outside


def test_design_space_spans_the_catalogue_and_is_differentiable():
    grid = UniformGrid((15, 15))
    design = InclusionDesign(grid)
    theta = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    assert float(design(theta).detach().abs().max()) == 0.0  # tanh(0): no contrast
    theta = torch.tensor([[-20.0, -20.0, -20.0, 20.0]], dtype=torch.float64, requires_grad=True)
    # saturated: centre 0.2, smallest radius, contrast 1 -- the catalogue's first positive-contrast field
    catalogue = inclusion_catalogue(grid)
    torch.testing.assert_close(design(theta)[0], catalogue[1], atol=1e-6, rtol=0)
    grad, = torch.autograd.grad(design(theta * 0.1).sum(), theta)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    assert CATALOGUE_DEFAULTS["contrasts"] == [-1.0, 1.0]
