"""The seismic FWI case: a smoke run of all its pieces (fast), and the quick run (slow)."""

import json

import pytest
from casefiles import check_outputs as check_case_outputs
from casefiles import load_case

from physinv.core.errors import ShapeMismatchError
from physinv.learn.data import read_metadata
from physinv.learn.workflow import load_saved_model

pytest.importorskip("deepwave")

REQUIRED = tuple(f"{m}_{k}_{w}" for m in ("fwi", "inversionnet", "nio", "hybrid") for k in ("mae", "ssim")
                 for w in ("in_family", "out_of_family")) + (
    "speedup_learned_vs_fwi", "wrapper_over_deepwave_time", "grad_over_forward_time", "fwi_beta",
    "start_mae_in_family", "inversionnet_params", "nio_params")
FILES = ("metrics.json", "report.md", "maps_in_family.png", "maps_curvevel_a.png", "maps_flatfault_a.png",
         "gathers.png", "misfit.png", "training.png", "models/inversionnet.pt", "models/nio.pt")


def test_smoke_run_writes_everything(tmp_path, one_thread):
    case = load_case("seismic_fwi")
    out = tmp_path / "smoke"
    assert case.main(["--smoke", "--out", str(out), "--device", "cpu", "--no-progress", "--seed", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_case_outputs(out, metrics, REQUIRED, FILES)
    for method in ("fwi", "inversionnet", "nio", "hybrid"):
        for where in ("in_family", "out_of_family"):
            assert 0.0 <= metrics[f"{method}_mae_{where}"] <= 2.0  # normalized to [-1, 1]
            assert -1.0 <= metrics[f"{method}_ssim_{where}"] <= 1.0
    assert metrics["wrapper_over_deepwave_time"] > 0 and metrics["grad_over_forward_time"] > 1
    report = (out / "report.md").read_text()
    assert "InversionNet + FWI" in report and "OpenFWI" in report
    # the data sets carry the command, seed and survey that made them; other families use other seeds
    files = sorted((out / "data").glob("*.h5"))
    assert len(files) == 3
    seeds = {read_metadata(f)["seed"] for f in files}
    assert seeds == {2, 1002, 2002}
    # a saved network refuses gathers of another survey with a clear error
    model = load_saved_model(out / "models" / "inversionnet.pt", case.guarded)
    spec = model.spec
    import torch

    with pytest.raises(ShapeMismatchError):
        model(torch.zeros(1, spec.L, spec.n_boundary + 1, spec.channels))


@pytest.mark.slow
def test_quick_run(tmp_path):
    case = load_case("seismic_fwi")
    out = tmp_path / "quick"
    assert case.main(["--quick", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_case_outputs(out, metrics, REQUIRED, FILES)
    # the networks learn the training family: better than the 1D starting model in family
    assert metrics["inversionnet_mae_in_family"] < metrics["start_mae_in_family"]
    assert metrics["speedup_learned_vs_fwi"] >= 100
