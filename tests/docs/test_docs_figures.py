"""``physinv docs figures``: every figure the pages show is drawn by the command, and the command
keeps the figures whole under faults (a failing producer, a second writer, a damaged manifest)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from physinv import cli
from physinv.casekit import docs_figures
from physinv.core import registry
from physinv.core.errors import PhysinvError, UnknownNameError
from physinv.core.locking import ExclusiveLock, LockedError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def shown_figures() -> list[str]:
    """File names of ``docs/figures`` that some page shows (``![...](.../figures/NAME)``)."""
    names = set()
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            assert resolved.parent == DOCS / "figures", f"{page}: image {target} outside docs/figures"
            names.add(resolved.name)
    return sorted(names)


@pytest.fixture(autouse=True)
def source_cases():
    cli.register_source_cases()


def test_every_shown_figure_is_drawn_by_the_command_and_unchanged_since():
    shown = shown_figures()
    assert len(shown) >= 10
    assert docs_figures.stale_figures(DOCS / "figures", shown) == []


def test_the_manifest_lists_only_registered_figures():
    owners = {t for g in docs_figures.figure_groups().values() for _, t in g.figures}
    manifest = docs_figures.read_manifest(DOCS / "figures")
    assert sorted(set(manifest["figures"]) - owners) == []
    for name, entry in manifest["figures"].items():
        command = manifest["groups"][entry["group"]]["command"]
        assert command.startswith(("physinv docs figures", "physinv run")), name


def test_problem_figures_are_drawn_into_a_fresh_folder(tmp_path):
    written = docs_figures.make_figures(tmp_path, ["poisson", "eit"], log=lambda _: None)
    assert written == ["poisson_convergence.png", "eit_protocol.png"]
    manifest = json.loads((tmp_path / docs_figures.MANIFEST).read_text())["figures"]
    for name in written:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 200
        assert manifest[name]["sha256"] == docs_figures.sha256(tmp_path / name)
        assert manifest[name]["group"] in ("poisson", "eit")
    assert docs_figures.stale_figures(tmp_path, written) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*written, docs_figures.MANIFEST])


def test_an_edited_figure_is_reported_as_changed(tmp_path):
    docs_figures.make_figures(tmp_path, ["eit"], log=lambda _: None)
    with (tmp_path / "eit_protocol.png").open("ab") as f:
        f.write(b"\0")
    [problem] = docs_figures.stale_figures(tmp_path, ["eit_protocol.png"])
    assert "changed since drawn" in problem and "--only eit" in problem
    assert "no producer" in docs_figures.stale_figures(tmp_path, ["hand_made.png"])[0]


def _failing_producer(out_dir) -> None:
    (Path(out_dir) / "half.png").write_bytes(b"partial")
    raise RuntimeError("producer failed half-way")


def test_a_failing_producer_leaves_the_earlier_figures_and_no_staging(tmp_path, monkeypatch):
    docs_figures.make_figures(tmp_path, ["eit"], log=lambda _: None)
    before = (tmp_path / "eit_protocol.png").read_bytes()
    spec = registry.DocsFigureSpec("failing", f"{__name__}:_failing_producer", ("eit_protocol.png",), "fails")
    monkeypatch.setattr(docs_figures.DOCS_FIGURES, "_entries", {**docs_figures.DOCS_FIGURES._entries, "failing": spec})
    monkeypatch.setattr(docs_figures, "figure_groups",
                        lambda: {"failing": docs_figures.FigureGroup("failing", "problem",
                                                                     (("eit_protocol.png", "eit_protocol.png"),),
                                                                     "cmd", "fails")})
    with pytest.raises(PhysinvError, match="failing .*RuntimeError: producer failed half-way"):
        docs_figures.make_figures(tmp_path, ["failing"], log=lambda _: None)
    assert (tmp_path / "eit_protocol.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MANIFEST.json", "eit_protocol.png"]
    assert docs_figures.stale_figures(tmp_path, ["eit_protocol.png"]) == []


def test_a_staging_folder_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    stale = tmp_path / f"{docs_figures.STAGING_PREFIX}case-eit-abc123"
    (stale / "run").mkdir(parents=True)
    (stale / "run" / "half.png").write_bytes(b"partial")
    messages = []
    docs_figures.make_figures(tmp_path, ["eit"], log=messages.append)
    assert not stale.exists()
    assert any("left by an interrupted run" in m for m in messages)


@pytest.mark.parametrize("jobs", [0, 1.5, True])
def test_jobs_must_be_a_positive_integer(tmp_path, jobs):
    from physinv.core.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="jobs must be an integer >= 1"):
        docs_figures.make_figures(tmp_path, ["eit"], jobs=jobs)
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_is_refused(tmp_path):
    with ExclusiveLock(tmp_path / docs_figures.MANIFEST, what="drawing the docs figures into"):
        with pytest.raises(LockedError, match="locked"):
            docs_figures.make_figures(tmp_path, ["eit"], log=lambda _: None)
    assert not (tmp_path / "eit_protocol.png").exists()


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"figures": {}}', '{"groups": {}, "figures": {"a.png": {"group": "eit"}}}',
                                    '{"groups": {}, "figures": {"a.png": {"group": "eit", "sha256": "00"}}}', "\udcff"])
def test_a_damaged_manifest_is_an_error_and_is_not_overwritten(tmp_path, damage):
    (tmp_path / docs_figures.MANIFEST).write_text(damage, errors="surrogateescape")
    before = (tmp_path / docs_figures.MANIFEST).read_bytes()
    with pytest.raises(PhysinvError, match="damaged"):
        docs_figures.make_figures(tmp_path, ["eit"], log=lambda _: None)
    with pytest.raises(PhysinvError, match="damaged"):
        docs_figures.stale_figures(tmp_path, ["eit_protocol.png"])
    assert (tmp_path / docs_figures.MANIFEST).read_bytes() == before
    assert not (tmp_path / "eit_protocol.png").exists()


def test_skip_cases_with_a_named_case_is_refused(tmp_path):
    from physinv.core.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="--skip-cases excludes"):
        docs_figures.make_figures(tmp_path, ["case:poisson_inverse"], skip_cases=True)


def test_a_case_group_runs_the_quick_case_and_records_its_metrics(tmp_path):
    messages = []
    written = docs_figures.make_figures(tmp_path, ["case:poisson_inverse"], jobs=2, log=messages.append)
    assert written == ["poisson_inverse_kappa.png", "poisson_inverse_convergence.png"]
    manifest = json.loads((tmp_path / docs_figures.MANIFEST).read_text())
    assert manifest["figures"]["poisson_inverse_kappa.png"]["group"] == "case:poisson_inverse"
    entry = manifest["groups"]["case:poisson_inverse"]
    assert entry["command"] == "physinv run poisson_inverse --quick --seed 0 --out DIR" and entry["seed"] == 0
    # the numbers the figure shows: the quick run's reconstruction error (measured 0.06; the start is 0.29)
    assert 0.0 < entry["run_metrics"]["kappa_rel_l2"] < 0.15
    with Image.open(tmp_path / "poisson_inverse_kappa.png") as image:
        assert image.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*written, docs_figures.MANIFEST])


def test_unknown_group_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(UnknownNameError, match="known: .*poisson"):
        docs_figures.make_figures(tmp_path, ["nope"])
    assert cli.main(["docs", "figures", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown docs figure group 'nope'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_list_names_every_group_and_each_case_figure_source(capsys):
    assert cli.main(["docs", "figures", "--list"]) == 0
    out = capsys.readouterr().out
    for group in ("poisson", "flame", "calderon", "eit", "seismic", "fluid", "case:diffusion_inverse"):
        assert re.search(rf"^{re.escape(group)}\s", out, re.M), group


@pytest.mark.parametrize("source, message", [
    ("DOCS_FIGURES = {'a.png': name}", "literal dict"),
    ("DOCS_FIGURES = ['a.png']", "plain PNG file names"),
    ("DOCS_FIGURES = {'a.png': 3}", "plain PNG file names"),
    ("DOCS_FIGURES = {'a.png': '../escape.png'}", "'../escape.png'"),
    ("DOCS_FIGURES: dict = {'a.png': 'MANIFEST.json'}", "'MANIFEST.json'"),
    ("DOCS_FIGURES = {['unhashable']: 'a.png'}", "literal dict"),
])
def test_a_malformed_case_figure_table_is_refused(source, message):
    with pytest.raises(PhysinvError, match=message):
        cli.case_docs_figures(ast.parse(source), Path("cases/x.py"))
    assert cli.case_docs_figures(ast.parse("X = 1"), Path("cases/x.py")) == ()


def test_two_groups_drawing_one_figure_are_refused(monkeypatch):
    spec = registry.DocsFigureSpec("twin", "m:f", ("eit_protocol.png",), "twin")
    monkeypatch.setattr(docs_figures.DOCS_FIGURES, "_entries", {**docs_figures.DOCS_FIGURES._entries, "twin": spec})
    with pytest.raises(PhysinvError, match="drawn by both"):
        docs_figures.figure_groups()
