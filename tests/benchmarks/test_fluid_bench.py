"""Smoke test of benchmarks/fluid.py at its quick sizes: what it compares is right, not how fast."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fluid.py"


def test_fluid_benchmark_measures_consistent_things(tmp_path, one_thread):
    spec = importlib.util.spec_from_file_location("physinv_bench_fluid", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "fluid.json"
    result = bench.main(["--quick", "--sizes", "16", "--memory-size", "16", "--repeat", "1", "--json", str(out)])
    for row in result["spectral"].values():
        assert row["physinv_forward_gradient_s"] > 0
        if "matched_rel_diff" in row:  # jax-cfd installed: the matched scheme reproduces it
            assert row["matched_rel_diff"] < 1e-12
    (mem,) = result["memory"].values()
    # checkpointing keeps one state per segment instead of every stage of every step
    assert mem["checkpoint_10_segments"]["saved_bytes"] < 0.01 * mem["no_checkpointing"]["saved_bytes"]
    for solver, row in result["smoke"].items():
        assert row["max_divergence_after"] < 1e-6 * row["max_divergence_before"], solver
    assert set(json.loads(out.read_text())["smoke"]) == {"direct", "cg", "cg-amg", "dcdm"}
