"""The `validate flame` study: references within 0.3 %, observed order 2, reference scheme reproduced."""

import json
import subprocess
import sys

import pytest

from physinv.cli import VALIDATIONS
from physinv.problems.flame import validate as vf


@pytest.fixture(scope="module")
def result():
    return vf.validate_flame(levels=4)


def test_study_passes_with_its_documented_numbers(result):
    assert result["passed"], result["checks"]
    assert all(result["checks"].values())
    # every reference value within 0.3 %; in fact ~0.05 %, the reference's own first-order error
    assert result["max_abs_rel_diff"] <= vf.REL_TOL
    assert len(result["references"]) == 6 and result["max_abs_rel_diff"] < 1e-3
    assert vf.ORDER_BOUNDS[0] <= result["observed_order"] <= vf.ORDER_BOUNDS[1]
    conv = result["grid_convergence"]
    assert conv["nodes"] == [151, 301, 601, 1201]
    assert all(1.95 <= p <= 2.05 for p in conv["pairwise_orders"])
    assert conv["s_L_extrapolated"] == pytest.approx(0.3433395, rel=1e-6)
    assert abs(result["shooting_check"]["rel_diff_vs_extrapolated"]) <= vf.SHOOTING_TOL


def test_reference_scheme_reproduces_the_listed_coarse_values(result):
    rows = {r["points"]: r for r in result["reference_scheme"]["rows"]}
    assert rows[1000]["s_L"] == pytest.approx(0.345345, abs=6e-7)
    assert rows[2000]["s_L"] == pytest.approx(0.344341, abs=6e-7)
    # the reference converges to the same limit as the second-order solver
    assert abs(result["reference_scheme"]["limit_rel_diff_vs_extrapolated"]) < 2e-5


def test_report_and_json(result, capsys):
    text = vf.format_report(result)
    for needle in ("observed order", "Richardson-extrapolated", "0.46", "0.34354", "PASSED", "rel diff"):
        assert needle in text
    json.dumps(result)  # serializable


def test_main_json(capsys):
    assert vf.main(["--json", "--levels", "3", "--reference-points", "1000"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] and len(out["grid_convergence"]["nodes"]) == 3


def test_cli_knows_the_flame_validation():
    assert VALIDATIONS.get("flame").module == "physinv.problems.flame.validate"
    proc = subprocess.run([sys.executable, "-m", "physinv.cli", "validate", "flame", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--json" in proc.stdout


def test_bad_levels():
    with pytest.raises(ValueError, match="levels must be >= 3"):
        vf.grid_convergence(levels=2)
    with pytest.raises(SystemExit):
        vf.main(["--levels", "1"])
