"""Every fenced code block in docs/ is executed or checked, so the examples cannot rot.

* ``python`` blocks: each page's blocks run in order in one namespace, in a process of their own (forked from
  a server that imported torch and physinv, before any page code ran) whose working directory is an empty
  temporary folder (one thread); a page whose code needs a missing optional extra is skipped, naming the extra.
* ``bash`` / ``sh`` / ``shell`` / ``console`` blocks: every command is parsed by the real parser of what it
  calls (``physinv``, the case scripts, benchmarks, ``python -m`` modules, also behind ``torchrun`` and
  ``mpiexec``); cheap ``physinv`` commands are run.  Programs the tests cannot check are listed with the
  reason in ``codeblocks.UNCHECKED``.
* ``text`` blocks (output, formulas) are not code.  An untagged block fails.

``pytest tests/docs -s`` prints the time per page and the summary line; ``python tests/docs/codeblocks.py
--run`` does the same outside pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import codeblocks as cb

INVENTORY = cb.inventory()
PYTHON_PAGES = INVENTORY["python_pages"]
SHELL_BLOCKS = INVENTORY["kinds"].get("shell", [])


@pytest.fixture(scope="session")
def page_result():
    """``page_result(page)``: the page's Python blocks, run once per session (memoized) in a process of their
    own, forked from a server that imported torch and physinv once (``codeblocks.PageRunner``)."""
    cache: dict[str, dict] = {}
    runner = cb.PageRunner()

    def run(page: str) -> dict:
        if page not in cache:
            cache[page] = runner.run(page)
        return cache[page]

    yield run
    runner.close()


@pytest.fixture(scope="session")
def command_results():
    """Every shell command of the docs, checked once per session in a fresh interpreter."""
    return cb.check_commands_subprocess()


def test_every_block_has_a_known_language_tag():
    bad = [b for b in INVENTORY["blocks"] if b.kind in ("untagged", "unknown")]
    assert not bad, (
        "fenced code blocks need a language tag (python/py: run; bash/sh/shell/console: commands checked; text: "
        "output, formulas, listings): " + ", ".join(f"{b.where} ({b.tag or 'untagged'})" for b in bad))


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_of_the_page_run(page, page_result):
    result = page_result(page)
    print(f"\n{page}: {result['status']} in {result['seconds']:.1f} s ("
          + ", ".join(f"line {line}: {s:.1f} s" for line, s in result["blocks"]) + ")")
    if result["status"] == "skipped":
        pytest.skip(result["message"])
    assert result["status"] == "ok", f"{result['message']}\n--- output of the page ---\n{result['output']}"
    expected = [b.line for b in cb.extract(cb.DOCS / page) if b.kind == "python"]
    assert [line for line, _ in result["blocks"]] == expected


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: f"{b.page}:{b.line}")
def test_shell_commands_of_the_block_parse(block, command_results):
    mine = [r for r in command_results if (r["page"], r["block"]) == (block.page, block.line)]
    assert len(mine) == len(cb.commands(block)), f"{block.where}: the docs changed during the test; rerun"
    errors = [f"docs/{r['page']}:{r['line']}: {r['text']}\n    {r['message']}" for r in mine if r["status"] == "error"]
    assert not errors, "\n".join(errors)
    for r in mine:
        print(f"\ndocs/{r['page']}:{r['line']}: {r['status']}{': ' + r['message'] if r['message'] else ''}")
    skipped = [f"docs/{r['page']}:{r['line']}: {r['message']}" for r in mine if r["status"] == "skipped"]
    if skipped:
        pytest.skip("; ".join(skipped))


# ---- the checker catches what it should (pages written to tmp_path, never into docs/)


def test_extraction_finds_indented_tilde_untagged_blocks_and_console_commands(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n1. a list item:\n\n    ```python\n    x = 1\n    if x:\n        y = 2\n    ```\n\n"
                    "~~~~ { .bash }\nphysinv data list   # a comment\nphysinv cases \\\n    --help\n~~~~\n\n"
                    "```\nplain\n```\n\n```console\n$ physinv cases\nsome output\n```\n")
    blocks = cb.extract(page)
    assert [(b.line, b.tag, b.kind) for b in blocks] == [(5, "python", "python"), (11, "bash", "shell"),
                                                          (17, "", "untagged"), (21, "console", "shell")]
    assert blocks[0].code == "x = 1\nif x:\n    y = 2\n"
    assert [(c.line, c.argv) for c in cb.commands(blocks[1])] == [
        (12, ["physinv", "data", "list"]), (13, ["physinv", "cases", "--help"])]
    assert [c.argv for c in cb.commands(blocks[3])] == [["physinv", "cases"]]


@pytest.mark.parametrize("argv, message", [
    (["physinv", "no-such-command"], "invalid choice"),
    (["physinv", "run", "no_such_case", "--quick"], "no_such_case"),
    (["physinv", "run", "sor_bandit", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["python", "cases/sor_bandit.py", "--variance", "medium"], "invalid choice: 'medium'"),
    (["physinv", "data", "generate", "poisson-2d-kappa", "--n", "8"], "--out"),
    (["physinv", "data", "generate", "poisson-2d-kappa", "--n", "8", "--out", "x.h5", "--param", "cels=8"], "cels"),
    (["OMP_NUM_THREADS=1", "torchrun", "--nproc_per_node=2", "-m", "physinv.learn.train_mlp", "--out", "r"],
     "--data"),
    (["some-tool", "--flag"], "does not know the program"),
])
def test_a_wrong_command_fails_the_check(argv, message):
    with pytest.raises(Exception, match=message.replace("'", ".").replace("-", "\\-")):
        cb.check_argv(argv, run_cheap=False)


def test_a_failing_block_is_reported_with_its_markdown_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nvalue = 41\n```\n\ntext\n\n"
                    "```python\nvalue += 1\nraise RuntimeError(f'bad {value}')\n```\n")
    runner = cb.PageRunner()
    try:
        result = runner.run(str(page), timeout=120)
    finally:
        runner.close()
    assert result["status"] == "failed" and result["blocks"] == [[1, result["blocks"][0][1]]]
    assert f"{page}:7 (python block at line 7)" in result["message"]
    assert f'File "{page}", line 9' in result["message"] and "RuntimeError: bad 42" in result["message"]


def test_a_missing_extra_names_the_extra():
    assert cb._missing_extra(ModuleNotFoundError("No module named 'deepwave'", name="deepwave")) == "seismic"
    assert cb._missing_extra(ModuleNotFoundError("No module named 'nonsense'", name="nonsense")) is None


def test_docs_code_inventory(page_result, command_results):
    """Every Python block was executed (none skipped silently); prints the counts."""
    kinds = INVENTORY["kinds"]
    found = len(kinds.get("python", []))
    results = {page: page_result(page) for page in PYTHON_PAGES}
    executed = sum(len(r["blocks"]) for r in results.values())
    counts = cb.command_summary(command_results)
    line = cb.summary_line(executed, len(PYTHON_PAGES), len(SHELL_BLOCKS), counts["parsed"], counts["run"],
                           len(kinds.get("text", [])), counts["blocks_checked"], counts["unchecked"])
    print("\n" + "\n".join(f"  {page:32s} {r['status']:8s} {r['seconds']:6.1f} s" for page, r in results.items()))
    print(f"  {'total':32s} {'':8s} {sum(r['seconds'] for r in results.values()):6.1f} s\n{line}")
    unchecked = sorted({(r["text"].split()[0], r["message"]) for r in command_results if r["status"] == "unchecked"})
    print("commands not checked: " + "; ".join(f"{prog} ({why})" for prog, why in unchecked))
    assert not [b for b in INVENTORY["blocks"] if b.kind in ("untagged", "unknown")]
    assert not counts["errors"], [f"docs/{r['page']}:{r['line']}" for r in counts["errors"]]
    failed = [r["message"].splitlines()[0] for r in results.values() if r["status"] == "failed"]
    assert not failed, failed
    skipped = [r["message"] for r in results.values() if r["status"] == "skipped"]
    skipped += [f"docs/{r['page']}:{r['line']}: {r['message']}" for r in counts["skipped"]]
    if skipped:
        pytest.skip(f"{found - executed} of {found} python blocks and {len(counts['skipped'])} commands not "
                    f"checked (optional extras missing): {skipped}")
    assert executed == found, f"{executed} python blocks executed, {found} in the docs"
