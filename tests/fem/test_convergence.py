"""Log-log rate fits of physinv.fem.convergence."""

import json

import numpy as np
import pytest

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.fem.convergence import ConvergenceStudy, fit_rate


@pytest.mark.parametrize("rate", [1.0, 2.0, 1.5, 4.0])
def test_recovers_known_slope_and_constant(rate):
    h = np.array([0.2, 0.1, 0.05, 0.025, 0.0125])
    errors = 3.7 * h**rate
    study = fit_rate(h, errors)
    assert isinstance(study, ConvergenceStudy)
    assert study.rate == pytest.approx(rate, abs=1e-12)
    assert study.constant == pytest.approx(3.7, rel=1e-12)
    np.testing.assert_allclose(study.pairwise_rates, rate, atol=1e-12)
    np.testing.assert_allclose(study.predicted(h), errors, rtol=1e-12)


def test_unevenly_spaced_widths_and_any_order():
    h = np.array([0.3, 0.017, 0.11, 0.05])
    study = fit_rate(h, 0.5 * h**2.5)
    assert study.rate == pytest.approx(2.5, abs=1e-12)
    assert study.h == tuple(h)  # order kept


def test_matches_polyfit_on_noisy_data():
    rng = np.random.default_rng(0)
    h = 0.5 ** np.arange(2, 8)
    errors = 2.0 * h**2 * np.exp(0.1 * rng.standard_normal(h.size))
    slope, intercept = np.polyfit(np.log(h), np.log(errors), 1)
    study = fit_rate(h, errors)
    assert study.rate == pytest.approx(slope, abs=1e-12)
    assert study.constant == pytest.approx(np.exp(intercept), rel=1e-12)


def test_table_and_dict():
    study = fit_rate([0.1, 0.05], [1e-2, 2.5e-3])
    text = study.table("L2 error")
    assert "L2 error" in text and "least-squares rate: 2.0000" in text
    d = json.loads(json.dumps(study.as_dict()))
    assert d["rate"] == pytest.approx(2.0) and d["h"] == [0.1, 0.05] and len(d["pairwise_rates"]) == 1


@pytest.mark.parametrize(
    "h, errors, exc",
    [
        ([0.1, 0.05], [1e-2], ShapeMismatchError),
        ([0.1], [1e-2], InvalidParameterError),
        ([0.1, 0.05], [1e-2, 0.0], InvalidParameterError),
        ([0.1, -0.05], [1e-2, 1e-3], InvalidParameterError),
        ([0.1, 0.05], [1e-2, float("nan")], InvalidParameterError),
        ([0.1, 0.1], [1e-2, 1e-3], InvalidParameterError),
    ],
)
def test_bad_input_raises(h, errors, exc):
    with pytest.raises(exc):
        fit_rate(h, errors)
