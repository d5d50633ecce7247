"""The quick SOR-bandit case, run the way a user runs it (a script in cases/)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("iters_bandit", "iters_contextual", "iters_best_fixed", "iters_optimal", "bandit_over_best_fixed",
        "iters_fixed_1.0", "iters_fixed_1.2", "iters_fixed_1.4", "iters_fixed_1.6", "iters_fixed_1.8")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sor_bandit")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cases" / "sor_bandit.py"), "--quick", "--out", str(out), "--seed", "0",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "metrics.json").read_text()), proc.stdout


def test_quick_case_writes_its_outputs(quick_run):
    out, metrics, stdout = quick_run
    for key in KEYS:
        assert key in metrics and key in stdout
    for name in ("iterations_vs_omega.png", "regret.png", "report.md"):
        assert (out / name).stat().st_size > 500
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    assert "Tsallis-INF" in (out / "report.md").read_text()
    assert str(out) in stdout


def test_quick_case_fixed_omegas_and_omega_star(quick_run):
    """Deterministic parts (seed 0): documented 654.0, 433.8, 275.3, 161.4, 106.1; omega* 58.2."""
    _, m, _ = quick_run
    fixed = [m[f"iters_fixed_{w}"] for w in ("1.0", "1.2", "1.4", "1.6", "1.8")]
    assert fixed == pytest.approx([654.0, 433.8, 275.3, 161.4, 106.1], abs=0.5)
    assert m["iters_best_fixed"] == pytest.approx(106.1, abs=0.5) and m["best_fixed_omega"] == pytest.approx(1.8)
    assert m["iters_optimal"] == pytest.approx(58.2, abs=0.5)
    assert m["iters_optimal"] < m["iters_best_fixed_per_bin"] < m["iters_best_fixed"]
    assert m["bandit_over_best_fixed"] == pytest.approx(m["iters_bandit"] / m["iters_best_fixed"], rel=1e-12)


def test_quick_case_bandit_against_the_best_fixed_omega(quick_run):
    """The 1.3x target is NOT met with losses = iterations / 10,000 over 1000 instances.

    Documented (seed 0): bandit 255.0 iterations (ratio 2.40), contextual 263.3 (2.48),
    uniformly random grid omega 297.8 (2.81).  The bandit does learn (it beats uniform
    play) but is far from the best fixed omega after 1000 instances.
    """
    _, m, _ = quick_run
    assert m["bandit_over_best_fixed"] == pytest.approx(2.40, abs=0.25)
    assert m["contextual_over_best_fixed"] == pytest.approx(2.48, abs=0.25)
    assert m["bandit_over_best_fixed"] > 1.3  # the target fails; if this changes, update docs/cases/sor_bandit.md
    assert m["iters_bandit"] < m["iters_uniform_random"]


@pytest.mark.slow
def test_full_case_documented_numbers(tmp_path):
    """The default 5000-instance run (about 2 min): documented bandit 217.8 (ratio 2.10),
    contextual 214.0, best fixed (omega 1.8) 103.9, omega* 55.9."""
    proc = subprocess.run([sys.executable, str(ROOT / "cases" / "sor_bandit.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["instances"] == 5000
    assert m["iters_best_fixed"] == pytest.approx(103.9, abs=0.5) and m["best_fixed_omega"] == pytest.approx(1.8)
    assert m["iters_optimal"] == pytest.approx(55.9, abs=0.5)
    assert m["bandit_over_best_fixed"] == pytest.approx(2.10, abs=0.25)
    assert m["contextual_over_best_fixed"] == pytest.approx(2.06, abs=0.25)
    assert m["iters_bandit"] < m["iters_uniform_random"]
