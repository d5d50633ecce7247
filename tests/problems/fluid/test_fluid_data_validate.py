"""The ns-kolmogorov data set and ``physinv validate fluid``."""

import json

import numpy as np
import pytest

import physinv.problems.fluid.data as fluid_data  # noqa: F401  (registers ns-kolmogorov)
from physinv.learn.data import generate, get_dataset, load


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_dataset_round_trip(tmp_path):
    params = {"n": 16, "T": 0.1, "spinup": 0.1, "nu": 0.02, "dtype": "float64"}
    out = generate("ns-kolmogorov", 2, tmp_path / "ns.h5", seed=3, chunk=2, params=params, progress=False)
    data = load(out)
    assert data["w0"].shape == data["wT"].shape == data["w_grf"].shape == (2, 16, 16)
    gen = get_dataset("ns-kolmogorov")
    full = gen.resolve_params(params)
    for i in range(2):
        w0, wT = fluid_data.simulate_pair(data["w_grf"][i].numpy(), full)
        np.testing.assert_allclose(data["w0"][i].numpy(), w0, rtol=0, atol=1e-13)
        np.testing.assert_allclose(data["wT"][i].numpy(), wT, rtol=0, atol=1e-13)
    assert not np.allclose(data["w0"][0].numpy(), data["w0"][1].numpy())
    assert abs(float(data["w_grf"].mean())) < 1e-12  # zero mean mode
    assert data.meta["params"]["n"] == 16


def test_validate_quick(capsys):
    from physinv.problems.fluid.validate import main

    assert main(["--json", "--quick"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"]
    assert result["taylor_green_rel_error"] < 1e-12
    assert 3.8 <= result["temporal_order"] <= 4.2
    assert result["jaxcfd"].startswith("not run")
    # smoke: the projection leaves a divergence at the solver tolerance; the inflow adds exactly its mass
    assert max(result["smoke_relative_divergence"].values()) <= 1e-8
    assert result["smoke_relative_divergence"]["direct"] <= 1e-13
    assert result["smoke_first_step_mass_error"] <= 1e-10
    assert max(result["smoke_solver_rel_diff"].values()) <= 1e-9
