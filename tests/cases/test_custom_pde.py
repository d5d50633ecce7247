"""The custom_pde case (a user's nonlinear PDE on an L-shaped gmsh mesh vs dolfinx-adjoint), smoke-sized.

The case runs in a subprocess (``physinv run custom_pde``, as a user runs it): importing dolfinx-adjoint
starts a pyadjoint tape for the whole process, which the test process should not inherit.
"""

import importlib.util
import json
import subprocess
import sys

import pytest
from casefiles import check_outputs

from physinv.cli import list_cases

pytest.importorskip("gmsh")

KEYS = ("grad_rel_diff_vs_dolfinx_adjoint", "taylor_slope", "kappa_rel_l2", "misfit_over_noise",
        "time_per_gradient_ratio_vs_dolfinx_adjoint")
PEER_KEYS = ("grad_rel_diff_vs_dolfinx_adjoint", "time_per_gradient_ratio_vs_dolfinx_adjoint",
             "objective_rel_diff_vs_dolfinx_adjoint", "physinv_time_per_gradient_s",
             "dolfinx_adjoint_time_per_gradient_s", "time_per_gradient_ratio_vs_dolfinx_adjoint_cold")
FILES = ("metrics.json", "report.md", "kappa.png", "convergence.png", "discrepancy.png", "run.json")
HAVE_PEER = importlib.util.find_spec("dolfinx_adjoint") is not None
#: The peer hidden from the case: ``find_spec`` answers None and ``import`` fails, as when it is not installed.
HIDE_PEER = "import sys; sys.modules['dolfinx_adjoint'] = None; "


def run_smoke(out, hide_peer: bool = False) -> subprocess.CompletedProcess:
    args = ["run", "custom_pde", "--smoke", "--out", str(out), "--device", "cpu", "--seed", "0"]
    code = f"{HIDE_PEER if hide_peer else 'import sys; '}from physinv.cli import main; sys.exit(main({args!r}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, dolfinx):  # dolfinx: the conftest fixture, a skip without the fem extra
    out = tmp_path_factory.mktemp("custom_pde")
    proc = run_smoke(out)
    return out, json.loads((out / "metrics.json").read_text()), proc.stdout


def test_case_is_discovered():
    assert "custom_pde" in list_cases()


def test_smoke_run_recovers_kappa(smoke_run):
    _, m, _ = smoke_run
    assert 1.9 <= m["taylor_slope"] <= 2.1
    assert m["discrepancy_converged"] == 1.0
    assert abs(m["misfit_over_noise"] - 1.0) <= m["discrepancy_band"]  # the band the search targets
    assert m["kappa_rel_l2"] < m["kappa_rel_l2_initial"]
    # Gauss-Newton-CG minimizes the same objective from the same start
    assert m["gauss_newton_objective"] == pytest.approx(m["lbfgs_objective"], rel=1e-2)


def test_smoke_run_matches_dolfinx_adjoint(smoke_run):
    if not HAVE_PEER:
        pytest.skip("dolfinx-adjoint is not installed (./dev.sh setup installs it: pip install --no-deps "
                    "dolfinx-adjoint==0.4.0 fenicsx-compat==0.4.0)")
    out, m, stdout = smoke_run
    assert m["grad_rel_diff_vs_dolfinx_adjoint"] <= 1e-10
    assert m["objective_rel_diff_vs_dolfinx_adjoint"] <= 1e-10
    assert m["time_per_gradient_ratio_vs_dolfinx_adjoint"] > 0
    assert (out / "gradient.png").stat().st_size > 200
    assert "dolfinx-adjoint" in (out / "report.md").read_text()


def test_smoke_run_writes_everything(smoke_run):
    out, m, stdout = smoke_run
    required = KEYS if HAVE_PEER else tuple(k for k in KEYS if k not in PEER_KEYS)
    check_outputs(out, m, required, FILES)
    listed = json.loads((out / "run.json").read_text())["outputs"]
    assert sorted(listed) == sorted(set(FILES) | ({"gradient.png"} if HAVE_PEER else set()))
    for key in KEYS:
        assert key in stdout


def test_missing_peer_is_reported_not_fatal(tmp_path, dolfinx):
    """Without dolfinx-adjoint the case still runs; the comparison is reported as skipped."""
    proc = run_smoke(tmp_path, hide_peer=True)
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in PEER_KEYS:
        assert m[key] is None
    assert "n/a" in proc.stdout
    check_outputs(tmp_path, m, ("taylor_slope", "kappa_rel_l2", "misfit_over_noise"), FILES)
    assert not (tmp_path / "gradient.png").exists()
    report = (tmp_path / "report.md").read_text()
    assert "Skipped" in report and "pip install --no-deps dolfinx-adjoint==0.4.0 fenicsx-compat==0.4.0" in report
