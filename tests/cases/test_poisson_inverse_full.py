"""The paper-sized Poisson case (96^2 grid, 8192 data): about 7 minutes on 2 CPU cores.  Run with -m slow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASE = Path(__file__).resolve().parents[2] / "cases" / "poisson_inverse.py"


@pytest.mark.slow
def test_full_case(tmp_path):
    proc = subprocess.run([sys.executable, str(CASE), "--out", str(tmp_path), "--seed", "0"],
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["kappa_rel_l2"] <= 0.1
    assert 0.8 <= metrics["misfit_over_noise"] <= 1.3
    assert 1.9 <= metrics["taylor_slope"] <= 2.1
    assert metrics["lbfgs_objective"] == pytest.approx(metrics["gauss_newton_objective"], rel=1e-5)
