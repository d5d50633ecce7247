"""Smoke test of benchmarks/poisson_operator.py at a tiny size: correctness only, never timings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "poisson_operator.py"
RTOL = 1e-6


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("physinv_bench_poisson_operator", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(bench, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "poisson_operator.json"
    res = bench.main([
        "--sizes", "64^2", "16^3", "--repeat", "2", "--warmup", "1",
        "--dtype", "float64", "--device", "cpu", "--rtol", str(RTOL), "--json", str(path),
    ])
    res["_json_path"] = path
    return res


def test_parse_size(bench):
    assert bench.parse_size("1024^2") == (1024, 1024)
    assert bench.parse_size("16^3") == (16, 16, 16)
    assert bench.parse_size("64x32") == (64, 32)


def test_matrix_free_apply_equals_csr_matvec(results):
    assert [r["label"] for r in results["sizes"]] == ["2D 64^2", "3D 16^3"]
    for r in results["sizes"]:
        assert r["apply_check"]["matrix_free_vs_scipy_rel"] <= 1e-12, r["label"]
        assert r["apply_check"]["torch_csr_vs_scipy_rel"] <= 1e-12, r["label"]
        assert set(r["apply"]) == {"torch matrix-free", "torch mf (autograd)", "scipy CSR", "torch sparse CSR"}


def test_every_solver_reaches_the_tolerance(results):
    expected = {"torch CG (mf)", "torch CG+Jacobi (mf)", "scipy CG (CSR)", "pyamg SA-PCG (CSR)"}
    for r in results["sizes"]:
        assert set(r["solve"]) == expected, r["label"]
        for name, s in r["solve"].items():
            assert s["converged"], (r["label"], name)
            assert s["iterations"] > 0, (r["label"], name)
            # true residual |b - A x| / |b| with the CSR matrix, float64
            assert s["true_relres"] <= RTOL * (1 + 1e-6), (r["label"], name, s["true_relres"])


def test_json_written(results):
    data = json.loads(results["_json_path"].read_text())
    assert data["benchmark"] == "poisson_operator"
    assert len(data["sizes"]) == 2
    assert data["environment"]["torch_num_threads"] >= 1
