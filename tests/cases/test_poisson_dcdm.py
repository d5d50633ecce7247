"""The quick DCDM case (about 7 minutes on 2 CPU cores): run with -m slow.

Issue 3's claims (DCDM at 64^3 within 40% of CG's iterations, ...) are NOT met
at this training budget: DCDM drops the residual to ~1e-2 in about ten
iterations, faster than CG, and then stalls (docs/cases/poisson_dcdm.md).  This test checks
what holds -- the classic solvers and the DCDM+CG fallback converge, the
outputs are written.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASE = Path(__file__).resolve().parents[2] / "cases" / "poisson_dcdm.py"


@pytest.mark.slow
def test_quick_dcdm_case(tmp_path):
    proc = subprocess.run([sys.executable, str(CASE), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("32", "64", "64_new_geometry"):
        assert m[f"converged_cg_{key}"] == m[f"converged_amg_{key}"] == m[f"converged_hybrid_{key}"] == 1
        assert m[f"iters_amg_{key}"] <= 20  # smoothed aggregation: mesh-independent
    assert m["iters_cg_64"] > 1.5 * m["iters_cg_32"]  # CG grows with the grid
    for name in ("residuals.png", "training.png", "report.md", "dcdm.pt", "train_data.pt"):
        assert (tmp_path / name).exists()
    assert m["train_loss_final"] < 0.5  # the unsupervised loss starts near 1
