"""The quick flame PINN case, run the way a user runs it (through the CLI); ~3-4 minutes, hence slow."""

import json
import subprocess
import sys

import pytest

from physinv.cli import list_cases

KEYS = ("sL_reference", "sL_pinn_rel_err", "T_pinn_rel_l2", "inv_pinn_lambda_rel_err", "inv_pinn_Ea_rel_err",
        "inv_pinn_sL_rel_err", "inv_classic_lambda_rel_err", "inv_classic_Ea_rel_err", "inv_classic_sL_rel_err",
        "inv_classic_lambda_sigma", "inv_classic_Ea_sigma", "time_pinn_s", "time_classic_s")


def test_case_is_discovered():
    assert "flame_pinn" in list_cases()


def test_bad_flag_is_rejected():
    proc = subprocess.run([sys.executable, "cases/flame_pinn.py", "--no-such-flag"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "--sweep" in proc.stderr


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flame_pinn")
    proc = subprocess.run(
        [sys.executable, "-m", "physinv.cli", "run", "flame_pinn", "--quick", "--out", str(out),
         "--device", "cpu", "--seed", "0"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "metrics.json").read_text()), proc.stdout


@pytest.mark.slow
def test_quick_case_meets_the_issue_targets(quick_run):
    _, m, _ = quick_run
    assert m["sL_reference"] == pytest.approx(0.34354, rel=3e-3)  # FlamePINN-1D's shooting value
    assert abs(m["sL_pinn_rel_err"]) <= 0.02
    assert m["T_pinn_rel_l2"] <= 0.02
    assert abs(m["inv_pinn_lambda_rel_err"]) <= 0.10 and abs(m["inv_pinn_Ea_rel_err"]) <= 0.10
    assert abs(m["inv_classic_lambda_rel_err"]) <= 0.03 and abs(m["inv_classic_Ea_rel_err"]) <= 0.03
    lam_true, ea_true = 0.026, 1.214172e5
    assert abs(m["inv_classic_lambda_rel_err"]) * lam_true <= 3 * m["inv_classic_lambda_sigma"]
    assert abs(m["inv_classic_Ea_rel_err"]) * ea_true <= 3 * m["inv_classic_Ea_sigma"]


@pytest.mark.slow
def test_quick_case_writes_its_outputs(quick_run):
    out, m, stdout = quick_run
    for key in KEYS:
        assert key in m and key in stdout
    for name in ("fields_forward.png", "fields_inverse.png", "loss.png", "params.png", "report.md"):
        assert (out / name).stat().st_size > 500
    assert not list(out.glob(".*.tmp"))
    report = (out / "report.md").read_text()
    assert "PINN" in report and "classic" in report and "1-sigma" in report
