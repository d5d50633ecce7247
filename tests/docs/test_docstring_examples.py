"""The examples in the docstrings (``>>>``), which the API reference shows, run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Modules whose examples build DOLFINx objects: they need the ``fem`` extra.
NEEDS_FEM = ("physinv.fem.form_simulator", "physinv.fem.time_stepping", "physinv.problems.forms.")


def modules_with_examples() -> list[str]:
    found = []
    for path in sorted((ROOT / "physinv").rglob("*.py")):
        if re.search(r"^\s*>>> ", path.read_text(encoding="utf-8"), re.M):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_examples_are_found():
    assert len(modules_with_examples()) >= 5


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name):
    if name.startswith(NEEDS_FEM):
        from physinv.core.errors import MissingExtraError
        from physinv.fem.dolfinx import import_dolfinx

        try:
            import_dolfinx("the docstring examples")
        except MissingExtraError as exc:
            pytest.skip(str(exc))
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has '>>>' lines but doctest found no example"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
