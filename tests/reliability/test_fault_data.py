"""Fault injection on data generation: concurrent writers, kills at random moments, flipped bytes, orphaned workers.

Each test runs the real ``physinv data generate`` command in subprocesses on small sizes.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from physinv import cli
from physinv.learn import data, datafile

NAME = "poisson-2d-kappa"
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _command(path: Path, n: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "physinv.cli", "data", "generate", NAME, "--n", str(n), "--chunk", "2",
            "--seed", "4", "--param", "cells=12", "--out", str(path), "--quiet", *extra]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in data.load(path).fields.items()}


def _assert_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype
        np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Uninterrupted runs of the commands below, by size."""
    folder = tmp_path_factory.mktemp("serial")
    out = {}
    for n in (40, 120, 600):
        path = folder / f"n{n}.h5"
        subprocess.run(_command(path, n), env=ENV, check=True, timeout=300)
        out[n] = _arrays(path)
    return out


@pytest.mark.parametrize("wait", [False, True])
def test_two_concurrent_generations_into_one_path(tmp_path, serial, wait):
    """Either the second refuses and the first file is intact, or it waits and reuses it; never a damaged file."""
    for trial in range(2):
        path = tmp_path / f"c{trial}.h5"
        extra = ("--wait", "300") if wait else ()
        procs = [subprocess.Popen(_command(path, 40, *extra), env=ENV, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _ in results)
        if wait:
            assert codes == [0, 0], results
        else:
            assert codes in ([0, 0], [0, 2]), results  # [0, 0]: the second started after the first had finished
            for code, err in results:
                if code == 2:
                    assert "is locked: pid" in err and "wait for it to finish" in err, err
        _assert_equal(_arrays(path), serial[40])
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [path.name]


#: Samples of the killed generations: 300 chunks, long enough (about a second here) that kills drawn
#: within 0.3 s of the partial file's creation land while chunks are written even on a fast machine
#: (with 120 samples a CI run once finished every generation before its kill).
SIGKILL_N = 600


def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(tmp_path, serial):
    rng = np.random.default_rng(12)
    path = tmp_path / "killed.h5"
    states = []
    partial = datafile.partial_path(path)
    for trial in range(5):
        proc = subprocess.Popen(_command(path, SIGKILL_N), env=ENV, stderr=subprocess.DEVNULL)
        if trial > 0:  # the first kill lands during start-up, the others while chunks are written
            deadline = time.monotonic() + 60
            while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.8) if trial == 0 else rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if path.exists():
            states.append("complete")
        elif partial.exists():
            try:
                states.append(f"{data.read_metadata(path)['chunks_done']} chunks")
            except data.DataFileError:
                states.append("damaged partial")
        else:
            states.append("nothing yet")
        if not path.exists():  # never readable as a data set before it is complete
            with pytest.raises(data.DataFileError):
                data.load(path)
    subprocess.run(_command(path, SIGKILL_N), env=ENV, check=True, timeout=300)
    _assert_equal(_arrays(path), serial[SIGKILL_N])
    assert any(s.endswith("chunks") for s in states), states  # at least one kill landed in the generation


def _flipped(clean: bytes, rng: np.random.Generator, start: int = 0) -> bytes:
    raw = bytearray(clean)
    for offset in rng.choice(np.arange(start, len(raw)), size=rng.integers(1, 3), replace=False):
        raw[offset] ^= int(rng.integers(1, 256))
    return bytes(raw)


# HDF5 parses damaged files in C: a hang there would outlive pytest-timeout's signal, so these tests end the run
@pytest.mark.timeout(240, method="thread")
def test_flipped_bytes_in_a_data_file_give_one_clear_error_never_wrong_values(tmp_path, capsys):
    path = tmp_path / "clean.h5"
    data.generate(NAME, 8, path, seed=4, chunk=2, params={"cells": 12}, progress=False)
    clean_bytes = path.read_bytes()
    rng = np.random.default_rng(3)
    for trial in range(150):
        damaged = tmp_path / f"flip{trial}.h5"
        damaged.write_bytes(_flipped(clean_bytes, rng))
        with pytest.raises(data.DataFileError, match=f"{damaged} is damaged"):  # the seal covers every byte
            data.load(damaged)
        assert cli.main(["data", "info", str(damaged)]) == 1
        damaged.unlink()
    capsys.readouterr()


@pytest.mark.timeout(240, method="thread")
def test_flipped_bytes_in_a_partial_file_give_one_clear_error_never_wrong_values(tmp_path, unseal):
    """An unfinished file has no seal yet: HDF5's checksums, the attribute digest and the chunk digests guard it.

    A flip may make a written chunk look unwritten (resuming computes it again); never a wrong value."""
    out = tmp_path / "p.h5"
    data.generate(NAME, 8, out, seed=4, chunk=2, params={"cells": 12}, progress=False)
    clean = _arrays(out)
    partial = unseal(out)
    clean_bytes, clean_meta = partial.read_bytes(), datafile.verify(partial, sealed=False)
    rng = np.random.default_rng(5)
    outcomes = {"error": 0, "harmless": 0}
    for _ in range(150):
        partial.write_bytes(_flipped(clean_bytes, rng, start=datafile.USERBLOCK))
        try:
            meta = datafile.verify(partial, sealed=False)
            fields = datafile.read_fields(partial, meta["fields"])
        except data.DataFileError as exc:
            assert str(partial) in str(exc)
            outcomes["error"] += 1
        else:  # unused space, or a chunk that now looks unwritten: every chunk recorded as done holds the clean values
            assert {**meta, "chunks_done": clean_meta["chunks_done"]} == clean_meta
            with h5py.File(partial, "r", **datafile._H5) as h5:
                done = h5[datafile.DONE][()].any(axis=1)
            for key, values in fields.items():
                for index in np.flatnonzero(done):
                    np.testing.assert_array_equal(values[2 * index:2 * index + 2], clean[key][2 * index:2 * index + 2])
            outcomes["harmless"] += 1
    assert outcomes["error"] >= 100, outcomes  # most of the file is data and checksummed metadata


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    proc = subprocess.Popen(_command(tmp_path / "w.h5", 4000, "--workers", "2"), env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = [p for p in _children(proc.pid)
                   if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(workers) == 2, "the generation did not start its two workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if _alive(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "workers outlived their killed parent"
