"""Imports point downward only; the horizontal layers know no PDE.

Every ``import`` statement of the package is parsed (``ast``, at any depth,
so lazy imports inside functions count too) and checked against the layer
order of the design:

    cli -> problems -> invert, learn -> linalg, discretize, fem, viz -> core

A module may import its own layer or any layer below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "physinv"

#: Rank of each top-level part of ``physinv``: a module may import ranks <= its own.
RANK = {
    "core": 0,
    "linalg": 1, "discretize": 1, "fem": 1, "viz": 1,
    "invert": 2, "learn": 2,
    "problems": 3,
    "casekit": 4, "cli": 4,
}
HORIZONTAL = ("core", "discretize", "linalg", "fem", "invert", "learn", "viz")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "physinv" or len(parts) == 1:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if node.module == "physinv"]
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        own = rel.parts[1].removesuffix(".py") if len(rel.parts) > 1 else None
        if own not in RANK:
            continue  # physinv/__init__.py: the lazy public face
        for line, module in _imports(path):
            target = _layer(module)
            if target is None or target not in RANK:
                continue
            if RANK[target] > RANK[own] or (own in HORIZONTAL and target == "problems"):
                bad.append(f"{rel}:{line} ({own}) imports {module} ({target})")
    return bad


def test_imports_point_downward_only():
    assert _violations() == []


def test_every_package_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and p.stem != "__init__"}
    assert parts <= set(RANK), f"give these a layer in RANK: {sorted(parts - set(RANK))}"


@pytest.mark.parametrize("source, expected", [
    ("from physinv.problems.eit import simulator\n", "physinv/invert/x.py:1 (invert) imports physinv.problems.eit (problems)"),
    ("def f():\n    import physinv.learn.data\n", "physinv/linalg/x.py:2 (linalg) imports physinv.learn.data (learn)"),
])
def test_the_check_catches_an_upward_import(tmp_path, monkeypatch, source, expected):
    layer = expected.split("/")[1]
    fake = tmp_path / "physinv" / layer
    fake.mkdir(parents=True)
    (fake / "x.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "physinv")
    assert _violations() == [expected]
