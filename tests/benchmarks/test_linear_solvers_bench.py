"""Smoke test of benchmarks/linear_solvers.py at 12^3 with a barely trained network: correctness only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from physinv.learn.dcdm_net import DCDMNet, network_signature
from physinv.learn.trainer import Trainer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "linear_solvers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("physinv_bench_linear_solvers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(bench, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    net = DCDMNet(ndim=3, channels=4, blocks=1)
    trainer = Trainer(net, lambda m, x: (m(x) ** 2).mean(), optimizer=torch.optim.Adam(net.parameters()),
                      signature=network_signature(net), checkpoint_path=folder / "dcdm.pt", device="cpu")
    trainer.fit_steps(lambda step: torch.randn(1, 8, 8, 8), 1)
    res = bench.main(["--n", "12", "--checkpoint", str(folder / "dcdm.pt"), "--device", "cpu",
                      "--json", str(folder / "out.json")])
    res["_json"] = folder / "out.json"
    return res


def test_classic_solvers_and_the_hybrid_reach_the_tolerance(results):
    for name in ("cg", "jacobi-pcg", "amg-pcg", "dcdm+cg"):
        run = results["runs"][name]
        assert run["converged"], name
        assert run["true_relres"] <= 1.01e-6, name  # recursive vs true residual agree in float64
    assert results["runs"]["amg-pcg"]["iterations"] < results["runs"]["cg"]["iterations"]


def test_time_to_dcdm_residual_is_reported_for_every_converged_solver(results):
    for run in results["runs"].values():
        if run["converged"]:
            assert run["time_to_dcdm_residual_s"] is not None and run["time_to_dcdm_residual_s"] >= 0
    saved = json.loads(results["_json"].read_text())
    assert saved["runs"]["cg"]["iterations"] == results["runs"]["cg"]["iterations"]
    assert saved["ratio_dcdm_over_amg"] > 0


def test_missing_checkpoint_and_odd_grid_are_refused(bench, tmp_path):
    with pytest.raises(SystemExit, match="no DCDM checkpoint"):
        bench.main(["--n", "12", "--checkpoint", str(tmp_path / "none.pt")])
    with pytest.raises(SystemExit, match="even"):
        bench.main(["--n", "13"])
