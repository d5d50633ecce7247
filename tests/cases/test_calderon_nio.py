"""The Calderon NIO case: a fast smoke run of all its pieces, and the quick run (slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from casefiles import check_outputs as check_case_outputs
from casefiles import load_case

from physinv.core.errors import ShapeMismatchError
from physinv.learn.data import read_metadata
from physinv.learn.workflow import load_saved_model

REQUIRED = (
    "nio_median_rel_l1_noise0", "nio_median_rel_l1_noise1", "nio_median_rel_l1_noise5",
    "deeponet_median_rel_l1_noise0", "deeponet_median_rel_l1_noise1", "deeponet_median_rel_l1_noise5",
    "fno_median_rel_l1_noise0", "fno_median_rel_l1_noise1", "fno_median_rel_l1_noise5",
    "pdeco_median_rel_l1", "pdeco_time_per_sample_s", "nio_time_per_sample_s", "speedup_nio_vs_pdeco",
    "nio_train_seconds", "deeponet_train_seconds", "fno_train_seconds",
    "nio_epochs", "deeponet_epochs", "fno_epochs", "nio_params", "deeponet_params", "fno_params",
)
FILES = ("metrics.json", "report.md", "error_vs_noise.png", "training.png", "reconstructions_0.png",
         "models/nio.pt", "models/deeponet.pt", "models/fno.pt")


def check_outputs(out: Path, metrics: dict) -> None:
    check_case_outputs(out, metrics, REQUIRED, FILES)


def test_smoke_run_writes_everything_and_pdeco_improves(tmp_path):
    case = load_case("calderon_nio")
    out = tmp_path / "smoke"
    assert case.main(["--smoke", "--out", str(out), "--device", "cpu", "--no-progress", "--seed", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_outputs(out, metrics)
    # the adjoint L-BFGS inversion reduces the error of its starting guess a = 2
    assert metrics["pdeco_median_rel_l1"] < metrics["pdeco_median_rel_l1_start"]
    for name in ("nio", "deeponet", "fno"):
        assert metrics[f"{name}_checkpoint_reload_ok"] == 1.0
        assert metrics[f"{name}_checkpoint_refuses_other_L"] == 1.0
    # a reloaded model refuses another number of boundary inputs with a clear error
    model = load_saved_model(out / "models" / "nio.pt", case.guarded)
    spec = model.spec
    with pytest.raises(ShapeMismatchError, match="L="):
        model(torch.zeros(1, spec.L + 2, spec.n_boundary, spec.channels))
    # rerunning reuses the stored data set (same seed and parameters)
    data_files = list((out / "data").glob("*.h5"))
    assert len(data_files) == 1
    before = read_metadata(data_files[0])
    data, path, command, _ = case.make_data(out, case.SETTINGS["smoke"], 3, progress=False)
    assert path == data_files[0] and read_metadata(path)["created"] == before["created"]
    assert "physinv data generate calderon" in command and "--seed 3" in command


@pytest.mark.slow
def test_quick_run(tmp_path):
    out = tmp_path / "quick"
    proc = subprocess.run(
        [sys.executable, "-m", "physinv.cli", "run", "calderon_nio", "--quick", "--out", str(out),
         "--device", "cpu", "--seed", "0", "--no-progress"],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    check_outputs(out, metrics)
    for name in ("nio", "deeponet", "fno"):
        for noise in (0, 1, 5):
            assert 0 < metrics[f"{name}_median_rel_l1_noise{noise}"] < 50
    assert 0 < metrics["pdeco_median_rel_l1"] < 50
    assert metrics["pdeco_median_rel_l1"] < metrics["pdeco_median_rel_l1_start"]
    assert metrics["speedup_nio_vs_pdeco"] > 1
    assert "nio_median_rel_l1_noise0" in proc.stdout
