"""`physinv prior train` and `physinv prior sample` on a tiny generated data set."""

import json

import numpy as np
import pytest
import torch

from physinv import cli
from physinv.core.errors import ShapeMismatchError
from physinv.learn import data

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 log-conductivities on the 8 x 8 nodes of a 7-cell grid (physinv data generate poisson-2d-kappa)."""
    path = tmp_path_factory.mktemp("data") / "kappa.h5"
    return data.generate("poisson-2d-kappa", 40, path, seed=3, chunk=20, params={"cells": 7}, progress=False)


def test_prior_train_then_sample(dataset, tmp_path, capsys, one_thread):
    out = tmp_path / "prior"
    code = cli.main(["prior", "train", str(dataset), "--field", "log_kappa", "--out", str(out), "--steps", "20",
                     "--batch-size", "8", "--width", "8", "--levels", "2", "--ema-decay", "0.99", "--seed", "4",
                     "--no-progress", "--checkpoint-every", "10"])
    assert code == 0
    assert "8x8 fields 'log_kappa'" in capsys.readouterr().out
    meta = json.loads((out / "prior.json").read_text())
    assert meta["shape"] == [8, 8] and meta["training"]["steps"] == 20 and meta["training"]["ema_decay"] == 0.99
    assert meta["data"]["generator"] == "poisson-2d-kappa" and meta["data"]["seed"] == 3
    assert meta["data"]["params"]["cells"] == 7 and meta["data"]["field"] == "log_kappa" and meta["data"]["n"] == 40
    assert meta["unet"]["periodic"] is True and meta["unet"]["channels"] == [8, 16]
    assert (out / "training_curve.png").exists() and (out / "checkpoint.pt").exists()

    args = ["prior", "sample", str(out), "--count", "5", "--steps", "3", "--seed", "7", "--no-progress"]
    assert cli.main([*args, "--out", str(tmp_path / "s1.npz"), "--reference", str(dataset)]) == 0
    printed = capsys.readouterr().out
    assert "prior_spectrum_rel_err" in printed
    assert cli.main([*args, "--out", str(tmp_path / "s2.npz")]) == 0
    one, two = np.load(tmp_path / "s1.npz"), np.load(tmp_path / "s2.npz")
    assert one["samples"].shape == (5, 8, 8) and np.isfinite(one["samples"]).all()
    np.testing.assert_array_equal(one["samples"], two["samples"])  # same seed, same draws
    assert float(one["prior_spectrum_rel_err"]) >= 0 and "prior_spectrum_rel_err" not in two.files
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_prior_commands_refuse_bad_input_and_write_nothing(dataset, tmp_path, capsys):
    out = tmp_path / "prior"
    base = ["prior", "train", str(dataset), "--out", str(out), "--no-progress", "--steps", "1"]
    cases = [
        ([*base, "--field", "nope"], "no field"),
        ([*base, "--field", "u", "--levels", "5"], "divisible by 2**(levels - 1) = 16"),
        ([*base, "--field", "u", "--width", "12"], "multiple of 8"),
        (["prior", "train", str(tmp_path / "missing.h5"), "--field", "u", "--out", str(out)], "no data file"),
        (["prior", "sample", str(tmp_path / "empty"), "--count", "2"], "no trained prior"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
        assert not out.exists() and not (tmp_path / "empty").exists()
    with pytest.raises(ShapeMismatchError, match="2D fields"):
        cli.prior_fields(torch.zeros(4, 16), "line", "d.h5")


def test_prior_sample_reference_without_a_field_is_an_invalid_parameter(dataset, tmp_path):
    from physinv.core.errors import InvalidParameterError
    from physinv.learn.diffusion import PriorConfig, train_prior

    out = tmp_path / "prior"
    fields = data.load(dataset, ["log_kappa"])["log_kappa"]
    train_prior(fields, out, steps=2, config=PriorConfig(width=8, levels=2, batch_size=8))  # no data_info
    args = cli.build_parser().parse_args(["prior", "sample", str(out), "--count", "2", "--steps", "2",
                                          "--no-progress", "--reference", str(dataset)])
    with pytest.raises(InvalidParameterError, match="--reference needs --field"):
        args.func(args, [])
    assert not (out / "samples.npz").exists()


def test_prior_sample_method_choices_are_the_samplers(capsys):
    from physinv.learn.diffusion.sampling import SAMPLERS

    parser = cli.build_parser()
    for method in SAMPLERS:
        assert parser.parse_args(["prior", "sample", "d", "--count", "1", "--method", method]).method == method
    with pytest.raises(SystemExit):
        parser.parse_args(["prior", "sample", "d", "--count", "1", "--method", "ddim"])
    assert "invalid choice" in capsys.readouterr().err
