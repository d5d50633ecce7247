import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from physinv import cli
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.learn import data

NAME = "poisson-2d-kappa"
SMALL = {"cells": 6}


def _arrays(path):
    loaded = data.load(path)
    return {k: v.numpy() for k, v in loaded.fields.items()}


def _assert_bitwise_equal(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype
        np.testing.assert_array_equal(a[key], b[key])


def test_generate_writes_metadata_and_a_physical_solution(tmp_path):
    path = data.generate(NAME, 7, tmp_path / "d.h5", seed=5, chunk=3, params=SMALL, progress=False)
    loaded = data.load(path)
    meta = loaded.meta
    assert (meta["generator"], meta["seed"], meta["n"], meta["chunk"]) == (NAME, 5, 7, 3)
    assert meta["params"] == {"cells": 6, "modes": 4, "amplitude": 1.0, "dtype": "float32"}
    assert meta["physinv_version"] and meta["created"] and meta["complete"]
    assert (loaded.inputs, loaded.targets) == (["u"], ["log_kappa"])
    assert loaded["u"].shape == loaded["log_kappa"].shape == (7, 7, 7)
    # u = 0 on the boundary and, by the maximum principle for -div(kappa grad u) = 1 > 0, u > 0 inside
    u = loaded["u"]
    assert float(u[:, 0].abs().max()) == 0.0 and float(u[:, :, -1].abs().max()) == 0.0
    assert float(u[:, 1:-1, 1:-1].min()) > 0.0
    # any sample can be regenerated alone
    gen = data.get_dataset(NAME)
    alone = gen.sample(5, 4, gen.resolve_params(SMALL))
    for key, value in alone.items():
        np.testing.assert_array_equal(value, loaded[key][4].numpy())


def test_same_data_for_any_chunk_size_and_worker_count(tmp_path):
    one = _arrays(data.generate(NAME, 10, tmp_path / "one.h5", seed=1, chunk=10, params=SMALL, progress=False))
    small = _arrays(data.generate(NAME, 10, tmp_path / "c3.h5", seed=1, chunk=3, params=SMALL, progress=False))
    two = _arrays(data.generate(NAME, 10, tmp_path / "w2.h5", seed=1, chunk=4, workers=2, params=SMALL,
                                progress=False))
    _assert_bitwise_equal(one, small)
    _assert_bitwise_equal(one, two)
    other = _arrays(data.generate(NAME, 10, tmp_path / "s2.h5", seed=2, chunk=10, params=SMALL, progress=False))
    assert not np.array_equal(one["log_kappa"], other["log_kappa"])


KILLER = textwrap.dedent("""
    import os, signal, sys
    from physinv.learn import data
    calls = [0]
    simulate = data._simulate_range
    def killing(*args):
        calls[0] += 1
        if calls[0] == 4:  # 1 probe of sample 0, chunks 0 and 1 written, killed in chunk 2
            os.kill(os.getpid(), signal.SIGKILL)
        return simulate(*args)
    data._simulate_range = killing
    data.generate("poisson-2d-kappa", 11, sys.argv[1], seed=7, chunk=3, params={"cells": 6}, progress=False)
""")


def test_killed_generation_resumes_to_the_same_data(tmp_path):
    path = tmp_path / "killed.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", KILLER, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    meta = data.read_metadata(path)
    assert (meta["chunks_done"], meta["chunks_total"], meta["complete"]) == (2, 4, False)
    with pytest.raises(data.IncompleteDataError, match="2 of 4 chunks"):
        data.load(path)
    # another seed against the partial file is refused, the same command resumes
    with pytest.raises(data.DataMismatchError, match="seed"):
        data.generate(NAME, 11, path, seed=8, chunk=3, params=SMALL, progress=False)
    resumed = data.generate(NAME, 11, path, seed=7, chunk=3, params=SMALL, progress=False)
    straight = data.generate(NAME, 11, tmp_path / "straight.h5", seed=7, chunk=3, params=SMALL, progress=False)
    _assert_bitwise_equal(_arrays(resumed), _arrays(straight))
    # --overwrite starts over with the new settings
    data.generate(NAME, 4, path, seed=8, chunk=3, params=SMALL, overwrite=True, progress=False)
    assert data.read_metadata(path)["seed"] == 8 and len(data.load(path)) == 4


def _nan_draw(rng, params):
    return {"m": rng.standard_normal(3)}


def _nan_simulate(batch, params):
    y = batch["m"] ** 2
    y[0, 0] = np.nan
    return {"y": y}


def _short_simulate(batch, params):
    return {"y": batch["m"][:-1]}


data.register_dataset("test-nan", _nan_draw, _nan_simulate, params={"k": 1})
data.register_dataset("test-short", _nan_draw, _short_simulate)


def test_bad_generators_and_names_get_clear_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown data set 'calderonn'.*poisson-2d-kappa"):
        data.generate("calderonn", 4, tmp_path / "x.h5")
    with pytest.raises(InvalidParameterError, match="field 'y' has NaN"):
        data.generate("test-nan", 4, tmp_path / "nan.h5", chunk=2, progress=False)
    with pytest.raises(ShapeMismatchError, match="leading batch axis of 1"):
        data.generate("test-short", 4, tmp_path / "short.h5", progress=False)
    with pytest.raises(InvalidParameterError, match="no parameter 'cell'.*cells"):
        data.generate(NAME, 4, tmp_path / "p.h5", params={"cell": 8})
    with pytest.raises(data.DataFileError, match="no data file"):
        data.load(tmp_path / "missing.h5")


def test_cli_lists_and_generates(tmp_path, capsys):
    assert cli.main(["data", "list"]) == 0
    assert NAME in capsys.readouterr().out
    out = tmp_path / "cli.h5"
    args = ["data", "generate", NAME, "--n", "5", "--chunk", "2", "--seed", "3", "--out", str(out),
            "--param", "cells=6", "--quiet"]
    assert cli.main(args) == 0
    assert cli.main(args) == 0  # rerun of a complete file: nothing to do
    direct = data.generate(NAME, 5, tmp_path / "direct.h5", seed=3, chunk=2, params=SMALL, progress=False)
    _assert_bitwise_equal(_arrays(out), _arrays(direct))
    assert cli.main(["data", "generate", "nope", "--n", "2", "--out", str(tmp_path / "n.h5")]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err
    assert cli.main(["data", "list", "--module", "no_such_module_xyz"]) == 2
    assert "--module 'no_such_module_xyz' cannot be imported" in capsys.readouterr().err
