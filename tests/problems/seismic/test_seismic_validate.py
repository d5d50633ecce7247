"""``physinv validate seismic``: its analytic reference, the quick study's numbers and the command line."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("deepwave")

from physinv.cli import main as cli_main  # noqa: E402
from physinv.problems.seismic.survey import ricker  # noqa: E402
from physinv.problems.seismic.validate import (  # noqa: E402
    CROSSCHECK_TOL,
    DOT_TOL_FLOAT64,
    ORDER_TOL,
    PML_TOL,
    TAYLOR_BOUNDS,
    analytic_trace,
    format_report,
    validate_seismic,
)

REQUIRED = ("green_order_error", "crosscheck_rel_diff", "born_dot_rel")
KEYS = REQUIRED + ("gradient_rel_diff_eager", "gradient_rel_diff_compiled", "pml_reflection_max",
                   "born_dot_rel_compiled_float32", "born_dot_rel_compiled_float64", "taylor_slope",
                   "gradient_compiled_vs_exact_rel", "passed", "checks", "green", "seconds")
WAVE = dict(velocity=2000.0, peak_frequency=10.0, delay=0.2)


@pytest.fixture(scope="module")
def quick():
    return validate_seismic(quick=True)


def test_analytic_trace_matches_time_domain_quadrature():
    """FFT with H0^(2) vs direct quadrature of u = -(1/2 pi) int_0^inf w(t - (r/v) cosh s) ds."""
    r, dt, nt = 200.0, 2e-3, 200
    fft = analytic_trace(r, nt, dt, leapfrog=False, **WAVE)
    s = np.linspace(0.0, 7.0, 40001)  # (r/v) cosh 7 = 55 s: the wavelet is long over
    t = np.arange(nt)[:, None] * dt - (r / WAVE["velocity"]) * np.cosh(s)[None, :] - WAVE["delay"]
    a = (math.pi * WAVE["peak_frequency"] * t) ** 2
    quad = -np.trapezoid((1 - 2 * a) * np.exp(-a), s, axis=1) / (2 * math.pi)
    # smooth, rapidly decaying integrand: trapezoid error << 1e-8; FFT aliasing ~1e-12
    assert np.linalg.norm(fft - quad) / np.linalg.norm(quad) <= 1e-8


def test_leapfrog_trace_differs_from_continuous_by_dt_squared():
    """omega~ = 2 sin(omega dt / 2) / dt: the leapfrog trace approaches the continuous one as dt^2."""
    r, t_end = 200.0, 0.6
    diffs = []
    for dt in (2e-3, 1e-3):
        nt = int(round(t_end / dt)) + 1
        a, b = (analytic_trace(r, nt, dt, leapfrog=lf, **WAVE) for lf in (True, False))
        diffs.append(np.linalg.norm(a - b) / np.linalg.norm(b))
    assert diffs[0] / diffs[1] == pytest.approx(4.0, rel=0.02)


def test_analytic_trace_matches_leapfrog_ricker_sampling():
    """The trace is -(G * w) with the wavelet the survey uses: zero before the first arrival."""
    r, dt = 400.0, 1e-3
    u = analytic_trace(r, 700, dt, **WAVE)
    arrival = int(r / WAVE["velocity"] / dt)
    w = ricker(WAVE["peak_frequency"], 700, dt, WAVE["delay"]).numpy()
    # causal up to the FFT's aliasing (a constant ~1e-12 of the peak, the validation's stated 1e-10 bound)
    assert np.abs(u[: arrival - 10]).max() <= 1e-10 * np.abs(u).max()
    assert np.abs(u).max() > 0.01 * np.abs(w).max()


def test_quick_study_has_the_keys_and_passes(quick):
    for key in KEYS:
        assert key in quick
    assert quick["passed"] is True
    assert all(quick["checks"].values())
    assert quick["green_order_error"] <= ORDER_TOL
    assert quick["crosscheck_rel_diff"] <= CROSSCHECK_TOL
    assert quick["gradient_rel_diff_eager"] <= CROSSCHECK_TOL
    assert quick["born_dot_rel"] <= DOT_TOL_FLOAT64
    assert TAYLOR_BOUNDS[0] <= quick["taylor_slope"] <= TAYLOR_BOUNDS[1]
    assert quick["pml_reflection_max"] <= PML_TOL
    # the compiled Born adjoint in float32 on a 1000-step record: float32 round-off, not a wrong adjoint
    assert quick["born_dot_rel_compiled_float32"] <= 1e-4
    json.dumps(quick)  # serializable


def test_quick_study_fitted_orders(quick):
    """Each accuracy order's fitted spatial convergence order is within ORDER_TOL of the scheme's."""
    orders = quick["green"]["orders"]
    assert sorted(int(p) for p in orders) == [2, 4, 6, 8]
    for p, row in orders.items():
        assert abs(row["rate"] - int(p)) <= ORDER_TOL
        assert all(e2 < e1 for e1, e2 in zip(row["error"], row["error"][1:]))  # errors fall with dx
    # the analytic reference is far more accurate than the smallest measured error
    smallest = min(min(row["error"]) for row in orders.values())
    assert quick["green"]["analytic_uncertainty"] <= 1e-3 * smallest


def test_quick_study_pml(quick):
    """The echo through the layer is ~ the design R = 1e-3 whatever the width; the early part falls with width."""
    pml = quick["pml_reflection"]
    assert set(pml) == {"10", "20"}
    for row in pml.values():
        assert 1e-4 <= row["whole_record"] <= 3e-3  # measured 8e-4 and 1.0e-3
        assert row["before_wall_echo"] <= row["whole_record"]
    assert pml["20"]["before_wall_echo"] <= pml["10"]["before_wall_echo"] / 3  # measured factor 8


def test_format_report_has_verdicts(quick):
    text = format_report(quick)
    assert "green_order_error" in text and "born_dot_rel_compiled_float32" in text
    assert text.rstrip().endswith("PASSED")
    assert "FAIL" not in text


def test_cli_validate_seismic_json_quick(capsys):
    assert cli_main(["validate", "seismic", "--json", "--quick"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True
    for key in REQUIRED:
        assert isinstance(result[key], float)
    assert result["born_dot_rel"] <= DOT_TOL_FLOAT64
