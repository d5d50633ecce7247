"""Atomic writers of physinv.core.io: no partial files, no non-finite JSON."""

import json
import math
import os

import numpy as np
import pytest

from physinv.core.io import atomic_savefig, atomic_write_json, atomic_write_text


def _leftovers(directory):
    return sorted(p for p in os.listdir(directory) if p.endswith(".tmp"))


def test_write_text_creates_parents_and_roundtrips(tmp_path):
    path = tmp_path / "a" / "b" / "report.md"
    text = "| m | v |\n|---|---|\n| \u03ba | 1.5 |\n"
    out = atomic_write_text(path, text)
    assert out == path
    assert path.read_text(encoding="utf-8") == text
    assert _leftovers(path.parent) == []


def test_write_json_roundtrips_exactly(tmp_path):
    data = {"rate": 1.9987654321012345, "n": 64, "name": "fd", "tiny": 5e-324, "np": np.float64(0.1)}
    path = atomic_write_json(tmp_path / "metrics.json", data)
    back = json.loads(path.read_text())
    assert back == {k: float(v) if isinstance(v, np.floating) else v for k, v in data.items()}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_write_json_refuses_non_finite_and_keeps_old_file(tmp_path, bad):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"rate": 2.0})
    before = path.read_text()
    with pytest.raises(ValueError, match="rate"):
        atomic_write_json(path, {"error": 0.1, "rate": bad})
    assert path.read_text() == before
    assert _leftovers(tmp_path) == []


def test_write_json_refuses_non_finite_without_creating_file(tmp_path):
    path = tmp_path / "metrics.json"
    with pytest.raises(ValueError):
        atomic_write_json(path, {"x": math.nan})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("data", [{"dots": {"jacobian": math.nan}}, {"remainders": [1e-3, math.inf]}])
def test_write_json_refuses_nested_non_finite(tmp_path, data):
    path = tmp_path / "metrics.json"
    with pytest.raises(ValueError):
        atomic_write_json(path, data)
    assert not path.exists()


def test_non_serializable_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "m.json", {"obj": object()})
    assert os.listdir(tmp_path) == []


class _FailingFigure:
    """Writes part of a file, then fails, like a crash in the middle of a save."""

    def savefig(self, fname, format=None, **kwargs):
        with open(fname, "w") as fh:
            fh.write("partial")
        raise RuntimeError("disk full")


class _Figure:
    def savefig(self, fname, format=None, **kwargs):
        with open(fname, "w") as fh:
            fh.write(f"format={format}")


def test_failed_write_removes_temp_and_keeps_previous(tmp_path):
    path = tmp_path / "fig.png"
    atomic_savefig(_Figure(), path)
    assert path.read_text() == "format=png"
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_savefig(_FailingFigure(), path)
    assert path.read_text() == "format=png"
    assert os.listdir(tmp_path) == ["fig.png"]


def test_savefig_format_from_suffix(tmp_path):
    atomic_savefig(_Figure(), tmp_path / "fig.pdf")
    assert (tmp_path / "fig.pdf").read_text() == "format=pdf"
