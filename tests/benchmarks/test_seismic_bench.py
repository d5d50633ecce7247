"""Smoke test of benchmarks/seismic.py at the quick size: correctness of what it compares, not times."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("deepwave")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "seismic.py"


def test_the_three_implementations_agree_and_every_ratio_is_reported(tmp_path):
    spec = importlib.util.spec_from_file_location("physinv_bench_seismic", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "seismic.json"
    result = bench.main(["--quick", "--repeat", "1", "--json", str(out)])
    # the same discrete map three times: float32 round-off apart
    assert result["agreement"]["physinv_vs_deepwave_rel"] < 1e-6
    assert result["agreement"]["torch-reference_vs_deepwave_rel"] < 1e-4
    for m in bench.METHODS:
        r = result["methods"][m]
        assert r["forward_s"] > 0 and r["forward_gradient_s"] > 0 and r["peak_memory_bytes"] > 0
        assert r["forward_gradient_over_deepwave"] > 0
    assert json.loads(out.read_text())["methods"].keys() == result["methods"].keys()
