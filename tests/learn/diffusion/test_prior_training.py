"""Training a UNet prior with the shared Trainer: the loss falls, resume is exact (EMA included), loading checks."""

import json
import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.learn.checkpoint import read_checkpoint
from physinv.learn.diffusion import PriorConfig, PriorFileError, UNetPrior, load_prior, train_prior

pytest.importorskip("diffusers")

TINY = dict(width=8, levels=2, batch_size=8)


def _waves(count=128, seed=0):
    """Cosine waves of random phase along axis 0 on the periodic 8 x 8 grid (a one-parameter family)."""
    phase = 8 * torch.rand(count, 1, 1, generator=torch.Generator().manual_seed(seed))
    x = torch.arange(8.0)
    return torch.cos(2 * math.pi * (x[:, None] + phase) / 8).expand(count, 8, 8).clone()


def test_training_reduces_the_loss_and_the_prior_denoises(tmp_path, one_thread):
    fields = _waves()
    run = train_prior(fields, tmp_path / "p", steps=150, config=PriorConfig(width=16, levels=2, batch_size=16,
                                                                            lr=3e-3), checkpoint_every=1000)
    loss = np.array([h["train_loss"] for h in run.result.history])
    assert len(loss) == 150
    assert loss[-30:].mean() < 0.5 * loss[:30].mean()  # measured: 0.19 -> 0.057
    # the loaded prior (EMA weights) removes most of the noise of sigma = 0.5 (std units: the fields' std is 0.71)
    prior = load_prior(tmp_path / "p")
    assert isinstance(prior, UNetPrior) and prior.shape == (8, 8)
    gen = torch.Generator().manual_seed(1)
    clean = _waves(64, seed=2)
    noisy = clean + 0.5 * torch.randn(clean.shape, generator=gen)
    with torch.no_grad():
        error = float((prior.denoise(noisy, 0.5) - clean).pow(2).mean())
    assert error < 0.5 * 0.25  # the noisy input's own error is 0.25
    meta = json.loads((tmp_path / "p" / "prior.json").read_text())
    assert meta["training"]["steps"] == 150 and meta["unet"]["parameters"] == run.parameter_count
    assert meta["normalization"]["std"] == pytest.approx(float(fields.double().std(unbiased=False)), rel=1e-6)
    assert (tmp_path / "p" / "training_curve.png").stat().st_size > 1000
    assert len((tmp_path / "p" / "training_log.jsonl").read_text().splitlines()) == 150


def test_resume_reproduces_the_uninterrupted_run_bitwise_ema_included(tmp_path, one_thread):
    fields = _waves(32)
    config = PriorConfig(**TINY, ema_decay=0.9)
    straight = train_prior(fields, tmp_path / "a", steps=12, config=config, checkpoint_every=5)
    interrupted = train_prior(fields, tmp_path / "b", steps=12, config=config, checkpoint_every=5, stop_after=5)
    assert interrupted.result.step == 5 and not (tmp_path / "b" / "prior.json").exists()
    with pytest.raises(PriorFileError, match="not finished"):
        load_prior(tmp_path / "b")
    resumed = train_prior(fields, tmp_path / "b", steps=12, config=config, checkpoint_every=5, resume=True)
    assert resumed.result.step == 12
    a = read_checkpoint(tmp_path / "a" / "checkpoint.pt")["model"]
    b = read_checkpoint(tmp_path / "b" / "checkpoint.pt")["model"]
    assert sorted(a) == sorted(b) and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["train_loss"] for h in straight.result.history] == [h["train_loss"] for h in resumed.result.history]
    # the EMA is a real average: it differs from the weights
    assert not torch.equal(a["ema.conv_in.weight"], a["net.conv_in.weight"])
    # and it is what load_prior uses
    loaded = load_prior(tmp_path / "b")
    torch.testing.assert_close(loaded.model.conv_in.weight, a["ema.conv_in.weight"], rtol=0, atol=0)
    # settings of a finished directory are kept: a run with other settings and no resume is refused
    with pytest.raises(InvalidParameterError, match="already holds"):
        train_prior(fields, tmp_path / "b", steps=12, config=config)


def test_load_prior_refuses_untrained_and_damaged_directories(tmp_path):
    with pytest.raises(PriorFileError, match="no trained prior"):
        load_prior(tmp_path / "nothing")
    train_prior(_waves(16), tmp_path / "p", steps=2, config=PriorConfig(**TINY))
    load_prior(tmp_path / "p")  # intact
    ck = tmp_path / "p" / "checkpoint.pt"
    raw = bytearray(ck.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    ck.write_bytes(bytes(raw))
    with pytest.raises(PriorFileError, match="cannot be loaded") as info:
        load_prior(tmp_path / "p")
    assert isinstance(info.value, PhysinvError)
    (tmp_path / "p" / "prior.json").write_text("{not json")
    with pytest.raises(PriorFileError, match="damaged"):
        load_prior(tmp_path / "p")


def test_train_prior_refuses_bad_fields_before_writing(tmp_path):
    with pytest.raises(InvalidParameterError, match="divisible"):
        train_prior(torch.randn(8, 6, 6), tmp_path / "p", steps=1, config=PriorConfig(width=8, levels=3))
    with pytest.raises(InvalidParameterError, match="NaN"):
        train_prior(torch.full((4, 8, 8), float("nan")), tmp_path / "p", steps=1, config=PriorConfig(**TINY))
    with pytest.raises(InvalidParameterError, match="constant"):
        train_prior(torch.ones(4, 8, 8), tmp_path / "p", steps=1, config=PriorConfig(**TINY))
    with pytest.raises(InvalidParameterError, match="ema_decay"):
        PriorConfig(ema_decay=1.0)
    assert not (tmp_path / "p").exists()


def test_float64_default_dtype_trains_the_same_float32_network(tmp_path, one_thread):
    fields = _waves(16)
    config = PriorConfig(**TINY)
    reference = train_prior(fields, tmp_path / "f32", steps=3, config=config, checkpoint_every=100)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        run = train_prior(fields, tmp_path / "f64", steps=3, config=config, checkpoint_every=100)
        assert torch.get_default_dtype() == torch.float64  # restored
        loaded = load_prior(tmp_path / "f64")
    finally:
        torch.set_default_dtype(previous)
    assert {p.dtype for p in run.prior.model.parameters()} == {torch.float32}
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    losses = [h["train_loss"] for h in run.result.history]
    assert len(losses) == 3 and losses == [h["train_loss"] for h in reference.result.history]  # bitwise


def test_train_prior_leaves_the_callers_global_generators_alone(tmp_path, one_thread):
    import random

    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    train_prior(_waves(16), tmp_path / "p", steps=2, config=PriorConfig(**TINY, seed=9))
    load_prior(tmp_path / "p")
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_overwrite_refuses_resume_and_removes_the_old_files(tmp_path, one_thread):
    fields = _waves(16)
    out = tmp_path / "p"
    train_prior(fields, out, steps=4, config=PriorConfig(**TINY))
    assert len((out / "training_log.jsonl").read_text().splitlines()) == 4 and (out / "training_curve.png").exists()
    with pytest.raises(InvalidParameterError, match="resume and overwrite"):
        train_prior(fields, out, steps=4, config=PriorConfig(**TINY), resume=True, overwrite=True)
    assert (out / "prior.json").exists()  # refused before anything changed
    # an interrupted overwrite: the old run's log, curve and description are gone, not mixed with the new run
    run = train_prior(fields, out, steps=4, config=PriorConfig(**TINY, seed=1), overwrite=True, stop_after=2,
                      checkpoint_every=100)
    assert run.result.step == 2
    assert not (out / "prior.json").exists() and not (out / "training_curve.png").exists()
    assert len((out / "training_log.jsonl").read_text().splitlines()) == 2
