"""The quick Poisson inverse case, run the way a user runs it (through the CLI)."""

import json
import subprocess
import sys

import pytest

METRICS = ("kappa_rel_l2", "taylor_slope", "misfit_over_noise", "grad_over_forward_time", "lbfgs_iterations")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("poisson_inverse")
    proc = subprocess.run(
        [sys.executable, "-m", "physinv.cli", "run", "poisson_inverse", "--quick", "--out", str(out),
         "--device", "cpu", "--seed", "0"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "metrics.json").read_text()), proc.stdout


def test_quick_case_recovers_kappa(quick_run):
    _, metrics, _ = quick_run
    assert metrics["kappa_rel_l2"] <= 0.15
    assert metrics["kappa_rel_l2"] < 0.5 * metrics["kappa_rel_l2_initial"]
    # discrepancy principle: the band is 5% around 1
    assert 0.8 <= metrics["misfit_over_noise"] <= 1.3
    assert 1.9 <= metrics["taylor_slope"] <= 2.1


def test_quick_case_optimizers_agree(quick_run):
    """L-BFGS and Gauss-Newton-CG minimize the same objective from the same start."""
    _, metrics, _ = quick_run
    assert metrics["lbfgs_objective"] == pytest.approx(metrics["gauss_newton_objective"], rel=1e-5)
    assert metrics["lbfgs_kappa_rel_l2"] == pytest.approx(metrics["gauss_newton_kappa_rel_l2"], abs=2e-3)
    assert metrics["gauss_newton_iterations"] < metrics["lbfgs_iterations"]


def test_quick_case_writes_its_outputs(quick_run):
    out, metrics, stdout = quick_run
    for key in METRICS:
        assert key in metrics and key in stdout
    for name in ("kappa.png", "convergence.png", "discrepancy.png", "report.md"):
        assert (out / name).stat().st_size > 500
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    assert "Gauss-Newton-CG" in (out / "report.md").read_text()


def test_unknown_case_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "physinv.cli", "run", "no_such_case"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown case 'no_such_case'" in proc.stderr and "poisson_inverse" in proc.stderr
