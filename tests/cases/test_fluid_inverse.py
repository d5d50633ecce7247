"""The fluid inverse case: a smoke run of all its pieces (fast), and the quick run (slow)."""

import json

import pytest
from casefiles import check_outputs as check_case_outputs
from casefiles import load_case

from physinv.learn.data import read_metadata

REQUIRED = tuple(f"{m}_{k}_sigma{s}" for m in ("adjoint", "eki") for k in ("rel_l2", "final_rel_l2", "forward_calls")
                 for s in (0, 1, 2)) + ("prior_mean_rel_l2", "prior_mean_final_rel_l2")
FILES = ("metrics.json", "report.md", "vorticity.png", "error_vs_calls.png")


def test_smoke_run_writes_everything_and_counts_calls(tmp_path, one_thread):
    case = load_case("fluid_inverse")
    out = tmp_path / "smoke"
    assert case.main(["--smoke", "--out", str(out), "--device", "cpu", "--no-progress", "--seed", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_case_outputs(out, metrics, REQUIRED, FILES)
    cfg = case.SETTINGS["smoke"]
    for s in (0, 1, 2):
        # EKI: J forward calls per update plus one per reported mean; derivative-free
        assert metrics[f"eki_adjoint_calls_sigma{s}"] == 0
        assert metrics[f"eki_forward_calls_sigma{s}"] <= cfg["ensemble"] * cfg["eki_iterations"] + cfg["eki_iterations"] + 1
        # the adjoint solver makes one backward pass per forward evaluation
        assert metrics[f"adjoint_adjoint_calls_sigma{s}"] == metrics[f"adjoint_forward_calls_sigma{s}"]
    (data,) = (out / "data").glob("*.h5")
    assert read_metadata(data)["seed"] == 1


@pytest.mark.slow
def test_quick_run(tmp_path):
    case = load_case("fluid_inverse")
    out = tmp_path / "quick"
    assert case.main(["--quick", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_case_outputs(out, metrics, REQUIRED, FILES)
    # the adjoint MAP fits the observed final state better than the prior mean does
    assert metrics["adjoint_final_rel_l2_sigma0"] < metrics["prior_mean_final_rel_l2"]
