"""L-BFGS-B with a box: the bound is active where the unconstrained minimum lies outside."""

import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.invert import IdentityParametrization, InverseProblem, minimize_lbfgs


def _problem():
    # F(m) = m, d = (-1, 0.5, 3): the unconstrained minimum is m = d
    data = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64)
    return InverseProblem(lambda m: m, data, 1.0, lambda m: m.new_zeros(()), IdentityParametrization())


def test_box_bounds_clip_the_minimizer_to_the_box():
    result = minimize_lbfgs(_problem(), torch.zeros(3, dtype=torch.float64), 0.0, bounds=(0.0, 2.0))
    torch.testing.assert_close(result.m, torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64), atol=1e-8, rtol=0)
    free = minimize_lbfgs(_problem(), torch.zeros(3, dtype=torch.float64), 0.0)
    torch.testing.assert_close(free.m, torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64), atol=1e-6, rtol=0)


def test_bad_bounds_and_a_start_outside_them_are_refused():
    with pytest.raises(InvalidParameterError, match="lower < upper"):
        minimize_lbfgs(_problem(), torch.zeros(3, dtype=torch.float64), 0.0, bounds=(1.0, 1.0))
    with pytest.raises(InvalidParameterError, match="outside the bounds"):
        minimize_lbfgs(_problem(), torch.full((3,), 5.0, dtype=torch.float64), 0.0, bounds=(0.0, 2.0))
