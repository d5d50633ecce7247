"""The documentation site builds in strict mode, and strict mode catches what it should.

``mkdocs build --strict`` turns every warning into a failure: a link to a page or anchor that does
not exist, a page left out of the navigation, an API name (``::: physinv.x.y``) that no longer
exists, a docstring mkdocstrings cannot parse.  The first test builds the real site; the fault
tests build a copy with one such defect each and check that the build fails and names it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]') builds the site")
pytest.importorskip("mkdocstrings", reason="the docs extra (pip install -e '.[docs]') builds the site")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = build(ROOT, out)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return out


def test_the_site_builds_strict_with_every_page(site):
    pages = sorted(p.relative_to(DOCS).with_suffix(".html").as_posix() for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if not (site / p).is_file()]
    assert not missing
    assert len(pages) >= 40
    # The API reference is rendered from the docstrings: a class, its signature and a NumPy section.
    api = (site / "api" / "invert.html").read_text(encoding="utf-8")
    assert "InverseProblem" in api and "minimize_lbfgs" in api and "Parameters" in api


def test_every_module_has_an_api_page():
    documented = set()
    for page in (DOCS / "api").rglob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    modules = set()
    for path in (ROOT / "physinv").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__" or any(p.startswith("_") for p in parts):
            continue
        modules.add(".".join(parts))
    assert sorted(modules - documented) == [], "add the modules to a page of docs/api/"


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    """A copy of the site's sources (mkdocs.yml, its hook, docs/)."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copy(ROOT / "mkdocs_hooks.py", tmp_path / "mkdocs_hooks.py")
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns(".*"))
    # mkdocstrings reads the sources from the installed package; point it at this tree explicitly
    yml = (tmp_path / "mkdocs.yml").read_text(encoding="utf-8").replace("paths: [.]", f"paths: [{ROOT}]")
    (tmp_path / "mkdocs.yml").write_text(yml, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("defect, expected", [
    ("[the flame](problems/no_such_page.md)", "no_such_page.md"),
    ("[the flame](problems/flame.md#no-such-anchor)", "no-such-anchor"),
    ("::: physinv.invert.no_such_module", "no_such_module"),
])
def test_strict_build_fails_on_a_broken_reference(docs_copy, tmp_path, defect, expected):
    page = docs_copy / "docs" / "inversion.md"
    page.write_text(page.read_text(encoding="utf-8") + f"\n\n{defect}\n", encoding="utf-8")
    proc = build(docs_copy, tmp_path / "site")
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr


def test_strict_build_fails_on_a_page_left_out_of_the_navigation(docs_copy, tmp_path):
    (docs_copy / "docs" / "orphan.md").write_text("# An orphan page\n", encoding="utf-8")
    proc = build(docs_copy, tmp_path / "site")
    assert proc.returncode != 0
    assert "orphan.md" in proc.stdout + proc.stderr


def test_docstring_roles_are_rendered():
    sys.path.insert(0, str(ROOT))
    try:
        from mkdocs_hooks import render_roles
    finally:
        sys.path.remove(str(ROOT))
    page = (":func:<code>minimize_lbfgs</code>, :class:<code>~physinv.core.errors.ShapeMismatchError</code>, "
            ":math:<code>a &lt; b^2</code>")
    assert render_roles(page) == ('<code>minimize_lbfgs</code>, <code>ShapeMismatchError</code>, '
                                  '<span class="arithmatex">\\(a &lt; b^2\\)</span>')
