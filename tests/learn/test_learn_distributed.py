"""torchrun with 2 processes on CPU (gloo) equals 1 process with the same global batch;
a run stopped in one process and resumed in another equals the uninterrupted run."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physinv.learn import data, train_mlp
from physinv.learn.checkpoint import read_checkpoint

# 20 samples: 12 for training (global batch 8: one full and one partial batch of 4 = 2 per rank), 8 validation
ARGS = ["--epochs", "3", "--batch-size", "8", "--hidden", "16", "--dtype", "float64", "--lr", "1e-2",
        "--val-fraction", "0.4", "--scheduler", "cosine", "--quiet"]


@pytest.fixture(scope="module")
def datafile(tmp_path_factory):
    return data.generate("poisson-2d-kappa", 20, tmp_path_factory.mktemp("d") / "d.h5", seed=0, chunk=10,
                         params={"cells": 4}, progress=False)


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _in_process(argv):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_mlp.main(argv) == 0
    finally:
        torch.set_num_threads(threads)


def _final(out: Path):
    result = json.loads((out / "result.json").read_text())
    model = read_checkpoint(out / "checkpoint.pt")["model"]
    return result, model


def _assert_same_run(a, b, rtol=1e-6):
    (ra, ma), (rb, mb) = a, b
    assert ra["epochs"] == rb["epochs"] == 3
    for key in ("train_loss", "val_loss"):
        assert abs(ra[key] - rb[key]) <= rtol * abs(rb[key]), key
    for name in mb:
        scale = float(mb[name].abs().max())
        assert float((ma[name] - mb[name]).abs().max()) <= rtol * scale, name


def test_two_processes_match_one_with_the_same_global_batch(datafile, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    two = tmp_path / "two"
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "physinv.learn.train_mlp", "--data", str(datafile),
         "--out", str(two), *ARGS], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    one = tmp_path / "one"
    _in_process(["--data", str(datafile), "--out", str(one), *ARGS])
    r2, r1 = _final(two), _final(one)
    assert (r2[0]["world_size"], r1[0]["world_size"]) == (2, 1)
    _assert_same_run(r2, r1)
    # rank 0 alone wrote the log: one line per epoch
    assert len((two / "log.jsonl").read_text().splitlines()) == 3


def test_resume_in_a_new_process_matches_the_uninterrupted_run(datafile, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _in_process(["--data", str(datafile), "--out", str(straight), *ARGS])
    proc = subprocess.run([sys.executable, "-m", "physinv.learn.train_mlp", "--data", str(datafile), "--out",
                           str(resumed), *ARGS, "--stop-after", "1"], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((resumed / "result.json").read_text())["epochs"] == 1
    _in_process(["--data", str(datafile), "--out", str(resumed), *ARGS, "--resume"])
    _assert_same_run(_final(resumed), _final(straight))
    # another configuration against that checkpoint: a clear error, exit status 2
    assert train_mlp.main(["--data", str(datafile), "--out", str(resumed), *ARGS[:-1], "--lr", "2e-2", "--resume",
                       "--quiet"]) == 2
