"""Helpers shared by the case tests: import a case script as a module, check its outputs."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parents[2] / "cases"


def load_case(name: str):
    """``cases/NAME.py`` imported as a module (its ``main`` not run)."""
    spec = importlib.util.spec_from_file_location(f"{name}_case", CASES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_outputs(out: Path, metrics: dict, required, files) -> None:
    """Every required metric is present and finite, every file written (no temporary leftovers), and
    metrics.json holds what ``run`` returned."""
    for key in required:
        assert key in metrics, key
        assert math.isfinite(metrics[key]), (key, metrics[key])
    for name in files:
        assert (out / name).stat().st_size > 200, name
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
