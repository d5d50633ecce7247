"""The diffusion case: a smoke run of all its pieces with exact call counts (fast), and the quick run (slow)."""

import json

import pytest
from casefiles import check_outputs as check_case_outputs
from casefiles import load_case

METHODS = ("dps", "enkg", "eki", "adjoint")
REQUIRED = (tuple(f"{m}_rel_l2_sigma{s}" for m in METHODS for s in (0, 1, 2))
            + tuple(f"{m}_forward_calls" for m in METHODS)
            + tuple(f"design_calls_{m}" for m in ("diffusion", "gradient", "cem"))
            + ("poisson_coverage_90", "prior_spectrum_rel_err", "poisson_coverage_90_reference"))
FILES = ("metrics.json", "report.md", "error_vs_calls.png", "ns_fields.png", "poisson_fields.png",
         "poisson_spread.png", "prior_quality.png", "designs.png")


def test_smoke_run_writes_everything_and_counts_calls(tmp_path, one_thread):
    case = load_case("diffusion_inverse")
    out = tmp_path / "smoke"
    assert case.main(["--smoke", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_case_outputs(out, metrics, REQUIRED, FILES)
    cfg = case.SETTINGS["smoke"]
    budget = cfg["ns_budget"]
    # DPS: samples x levels forward and adjoint calls, one more forward for the mean; EnKG: J per level, no adjoint
    levels = (budget - 1) // (2 * cfg["dps_samples"])
    assert (metrics["dps_forward_calls"], metrics["dps_adjoint_calls"]) == (cfg["dps_samples"] * levels + 1,
                                                                            cfg["dps_samples"] * levels)
    j = cfg["enkg_ensemble"]
    assert (metrics["enkg_forward_calls"], metrics["enkg_adjoint_calls"]) == (j * ((budget - 1) // j) + 1, 0)
    assert (metrics["eki_forward_calls"], metrics["eki_adjoint_calls"]) == (budget, 0)  # J (k + 1), k = budget/J - 1
    # every method stays within the budget (L-BFGS may finish the line search it started: 2 calls a trial)
    for method in METHODS:
        assert metrics[f"{method}_forward_calls"] + metrics[f"{method}_adjoint_calls"] <= budget + 4
    for method in ("diffusion", "gradient", "cem"):
        assert 1 <= metrics[f"design_calls_{method}"] <= cfg["design_budget"] + 1
    (trained,) = (out / "models").glob("unet_*/prior.json")  # the trained UNet prior, with its provenance
    assert json.loads(trained.read_text())["training"]["steps"] == cfg["unet_steps"]


@pytest.mark.slow
def test_quick_run(tmp_path):
    case = load_case("diffusion_inverse")
    out = tmp_path / "quick"
    assert case.main(["--quick", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check_case_outputs(out, metrics, REQUIRED, FILES)
    # the linearized mixture posterior is calibrated on the Poisson task
    assert 0.8 <= metrics["poisson_coverage_90_reference"] <= 1.0
