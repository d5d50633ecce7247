"""Fault injection on a case's output folder: Ctrl-C at random moments, bad ``--out``, bad ``--seed``.

A run writes its outputs as one set: an interrupted rerun leaves the earlier run's outputs whole,
a complete rerun replaces them all (run id in run.json, report.md and every figure).  The
subprocess tests run ``cases/sor_bandit.py --smoke`` (100 instances, a few seconds).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from physinv.casekit import case_main, case_parser, start_case, write_results
from physinv.casekit import outputs as outputs_module

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cases" / "sor_bandit.py"
# Python's Ctrl-C handler first: a shell starts background jobs with SIGINT ignored, which the child would inherit
# (and keep), so a suite run as `... &` could not interrupt the case.  (preexec_fn would do it after a fork, which
# is unsafe once JAX's threads run in this process.)
LAUNCH = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
CASE = [sys.executable, "-c", LAUNCH, str(SCRIPT), "--smoke", "--device", "cpu"]
STARTED = "sor_bandit: smoke setting"  # the first line the case prints once it runs
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore")


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _run_ids(folder: Path) -> set[str]:
    """The run id of run.json, report.md and every figure of the case's outputs in ``folder``."""
    record = json.loads((folder / "run.json").read_text())
    assert sorted(record["outputs"]) == sorted(n for n in _files(folder) if n in record["outputs"])
    ids = {record["run_id"], (folder / "report.md").read_text().split("`")[1]}
    ids |= {Image.open(folder / n).text["physinv-run"] for n in record["outputs"] if n.endswith(".png")}
    return ids


@pytest.fixture(autouse=True)
def _python_sigint_handler():
    """The in-process tests need Python's KeyboardInterrupt handler even when the suite runs as a background job."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _start(out: Path) -> tuple[subprocess.Popen, float]:
    """Start the case into ``out``; returns it once it printed its first line, and that moment."""
    proc = subprocess.Popen([*CASE, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    while STARTED not in proc.stdout.readline():
        assert proc.poll() is None, proc.stderr.read()
    return proc, time.monotonic()


def test_an_interrupted_rerun_leaves_the_earlier_run_whole(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    kept = {"notes.txt": b"not an output", "data/set.h5": b"a data set of an earlier run"}
    for name, content in kept.items():
        (out / name).write_bytes(content)

    proc, t0 = _start(out)
    _, stderr = proc.communicate(timeout=300)  # drains both pipes: a full pipe never blocks the case
    assert proc.returncode == 0, stderr
    compute = time.monotonic() - t0  # from the first line to the end
    first = _files(out)
    first_ids = _run_ids(out)
    assert len(first_ids) == 1 and {"metrics.json", "report.md", "run.json", "regret.png"} <= set(first)

    # two signals while it computes, one while it writes its figures (from its first file in the staging folder)
    rng = np.random.default_rng(12)
    moments = [("computing", rng.uniform(0.05, 0.7) * compute) for _ in range(2)] + [("writing", rng.uniform(0, 0.15))]
    interrupted = 0
    for phase, delay in moments:
        proc, t0 = _start(out)
        if phase == "writing":
            while not any(out.glob(".run-*.partial/*")) and proc.poll() is None:
                time.sleep(0.001)
            t0 = time.monotonic()
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
        code = proc.returncode
        if code == 0:  # finished before the signal: a complete run, now the one to keep
            assert len(_run_ids(out)) == 1
            first = _files(out)
            continue
        assert code == 130 and "interrupted" in stderr, (phase, delay, stderr[-2000:])
        interrupted += 1
        assert _files(out) == first, (phase, delay)  # byte for byte: no new file, no missing one, no leftover
    assert interrupted >= 1

    proc, _ = _start(out)
    _, stderr = proc.communicate(timeout=300)  # drains both pipes: a full pipe never blocks the case
    assert proc.returncode == 0, stderr
    last = _files(out)
    (last_id,) = _run_ids(out)
    assert last_id not in first_ids
    assert set(last) == set(json.loads(last["run.json"])["outputs"]) | set(kept)
    assert all(last[name] == content for name, content in kept.items())


def _fake_case(out: Path, figures: list[str]) -> int:
    """Run a tiny case through case_main that writes ``figures``, metrics.json and report.md."""
    def run(args):
        case = start_case(args, {"quick": {}, "full": {}})
        for name in figures:
            Image.new("L", (4, 4)).save(case.out / name)
        write_results(case.out, {"x": 1.0}, "# fake\n\nbody\n")
        return {"x": 1.0}

    args = case_parser("fake", "A fake case.", "quick").parse_args(["--out", str(out), "--seed", "5"])
    return case_main("fake", run, args, ["metrics.json"], ["x"])


def test_a_complete_run_replaces_the_earlier_outputs_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    assert _fake_case(out, ["a.png", "b.png"]) == 0
    (out / "data").mkdir()
    (out / "data" / "set.h5").write_bytes(b"data")
    (out / "notes.txt").write_text("mine")
    assert _fake_case(out, ["a.png"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["seed"] == 5 and record["case"] == "fake"
    assert sorted(_files(out)) == sorted(record["outputs"] + ["data/set.h5", "notes.txt"])
    assert not (out / "b.png").exists()  # the earlier run's figure this run did not make
    assert _run_ids(out) == {record["run_id"]}
    assert (out / "report.md").read_text().startswith(f"# fake\n\nRun `{record['run_id']}`, seed 5")


def test_ctrl_c_during_the_commit_waits_until_the_set_is_in_place(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _fake_case(out, ["a.png", "b.png"]) == 0
    replace = os.replace

    def interrupted_replace(src, dst):
        if Path(dst).parent == out and Path(dst).name == "a.png":  # the first move into DIR
            signal.raise_signal(signal.SIGINT)
        replace(src, dst)

    monkeypatch.setattr(outputs_module.os, "replace", interrupted_replace)
    assert _fake_case(out, ["a.png"]) == 130
    monkeypatch.undo()
    record = json.loads((out / "run.json").read_text())
    assert sorted(_files(out)) == sorted(record["outputs"]) == ["a.png", "metrics.json", "report.md", "run.json"]
    assert _run_ids(out) == {record["run_id"]}


def _refused(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert STARTED not in proc.stdout and "Traceback" not in proc.stderr  # refused before any work
    return proc


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    path = tmp_path / "results"
    path.write_text("a file")
    proc = _refused(sys.executable, "-m", "physinv.cli", "run", "sor_bandit", "--smoke", "--out", str(path))
    assert proc.stderr.strip() == f"physinv: error: --out {path} is a file, not a folder; give a folder for the outputs"
    assert path.read_text() == "a file"


@pytest.mark.parametrize("where", ["proc", "read-only folder"])
def test_out_that_cannot_be_written_is_refused_before_any_work(tmp_path, where):
    if where == "proc":
        out = Path("/proc/physinv-out")  # cannot be created, not even by root
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        tmp_path.chmod(0o500)
        out = tmp_path / "out"
    try:
        proc = _refused(*CASE, "--out", str(out))
    finally:
        tmp_path.chmod(0o700)
    assert proc.stderr.startswith(f"physinv: error: --out {out}: cannot create or write this folder")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_negative_seed_is_refused_by_the_parser(tmp_path):
    proc = _refused(*CASE, "--out", str(tmp_path / "out"), "--seed", "-1")
    assert "argument --seed: must be an integer >= 0 and < 2**64; got '-1'" in proc.stderr
    assert not (tmp_path / "out").exists()
