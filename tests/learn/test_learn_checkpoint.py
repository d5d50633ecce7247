"""The one checkpoint format: exact resume, atomic writes, and clear errors for damaged or foreign files."""

import fractions
import hashlib
import io
import os
import random
import re

import numpy as np
import pytest
import torch

import physinv
from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.learn import checkpoint
from physinv.learn.checkpoint import CheckpointCorruptError, CheckpointError, CheckpointMismatchError, read_checkpoint
from physinv.learn.trainer import TrainConfig, Trainer


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return x, x.sum(1, keepdim=True) ** 2


def _noisy_loss(m, batch):
    x, y = batch
    # draws from all three global generators: resume must restore each of them
    noise = torch.randn(y.shape, dtype=y.dtype) * 0.01 + 1e-3 * (random.random() + float(np.random.rand()))
    return ((m(x) - y - noise) ** 2).mean()


def _make(path=None, hidden=8):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Tanh(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(hidden, 1)).double()
    config = TrainConfig(epochs=8, lr=1e-2, scheduler="cosine", grad_clip=10.0)
    return Trainer(model, _noisy_loss, config=config, checkpoint_path=path, checkpoint_every=3, device="cpu")


def _written(tmp_path, steps=2):
    t = _make(tmp_path / "c.pt")
    t.fit_steps(_batches, steps)
    return tmp_path / "c.pt"


def _write_file(path, payload):
    """A checkpoint file as documented: the header line, then the torch.save bytes of ``payload``."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path.write_bytes(f"physinv-checkpoint-2 sha256={hashlib.sha256(data).hexdigest()} bytes={len(data)}\n".encode()
                     + data)


def test_n_steps_straight_equal_half_then_resume_in_a_fresh_trainer(tmp_path):
    straight = _make()
    straight.fit_steps(_batches, 8)

    _make(tmp_path / "c.pt").fit_steps(_batches, 4)  # the last step is always written
    torch.manual_seed(1234)  # the interrupted process's RNG states are gone
    np.random.seed(99)
    random.seed(5)
    resumed = _make(tmp_path / "c.pt")
    res = resumed.fit_steps(_batches, 8, resume=True)
    assert res.step == 8 and len(res.history) == 8
    assert resumed.history == straight.history
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)
    sa, sb = resumed.optimizer.state_dict()["state"], straight.optimizer.state_dict()["state"]
    for k in sb:
        assert torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"])
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_checkpoint_holds_the_documented_entries(tmp_path):
    head, data = _written(tmp_path, steps=4).read_bytes().split(b"\n", 1)
    assert head.decode() == f"{checkpoint.FORMAT} sha256={hashlib.sha256(data).hexdigest()} bytes={len(data)}"
    payload = torch.load(io.BytesIO(data), weights_only=True)  # only tensors and plain Python types
    assert payload["physinv_version"] == physinv.__version__
    assert set(checkpoint.REQUIRED) <= set(payload)
    assert payload["step"] == 4 and payload["epoch"] == 0 and payload["world_size"] == 1
    assert [h["step"] for h in payload["history"]] == [1, 2, 3, 4]
    assert len(payload["rng"]) == 1 and {"python", "numpy", "torch"} <= set(payload["rng"][0])
    assert payload["signature"]["optimizer"] == "AdamW" and payload["signature"]["scheduler"] == "CosineAnnealingLR"


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = _written(tmp_path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)  # the new checkpoint is written, its rename fails
    t = _make(path)
    with pytest.raises(OSError, match="disk full"):
        t.fit_steps(_batches, 3)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_damaged_checkpoint_is_refused_not_silently_restarted(tmp_path, damage):
    path = _written(tmp_path)
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[-100] ^= 1
    path.write_bytes({"truncate": data[: len(data) // 2], "flip": bytes(flipped),
                      "garbage": b"\x00not a checkpoint" * 64, "empty": b""}[damage])
    message = "not a physinv training checkpoint" if damage == "garbage" else "truncated or damaged"
    with pytest.raises(CheckpointCorruptError, match=f"{re.escape(str(path))}.*{message}") as info:
        _make(path).fit_steps(_batches, 4, resume=True)
    assert isinstance(info.value, PhysinvError)


def test_foreign_old_or_incomplete_files_are_refused(tmp_path):
    torch.save({"model": {}, "step": 3}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointCorruptError, match="not a physinv training checkpoint.*physinv-checkpoint-2"):
        _make().load(tmp_path / "foreign.pt")
    path = _written(tmp_path)
    payload = read_checkpoint(path)
    torch.save({**payload, "format": "physinv-checkpoint-1"}, tmp_path / "old.pt")
    with pytest.raises(CheckpointCorruptError, match="older format physinv-checkpoint-1.*start a new run"):
        _make().load(tmp_path / "old.pt")
    del payload["rng"], payload["optimizer"]
    _write_file(path, payload)
    with pytest.raises(CheckpointCorruptError, match=r"lacks \['optimizer', 'rng'\]"):
        _make().load(path)
    with pytest.raises(CheckpointCorruptError, match="no checkpoint file"):
        read_checkpoint(tmp_path / "missing.pt")


def test_an_intact_file_with_unsafe_content_is_not_unpickled(tmp_path):
    payload = read_checkpoint(_written(tmp_path))
    payload["history"].append(fractions.Fraction(1, 3))  # not among the types weights_only=True loads
    _write_file(tmp_path / "c.pt", payload)
    with pytest.raises(CheckpointError, match="intact but torch.load.weights_only=True. refuses.*add_safe_globals"):
        read_checkpoint(tmp_path / "c.pt")


def test_a_checkpoint_of_another_model_or_configuration_is_refused(tmp_path):
    path = _written(tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"parameters: checkpoint .*\(8, 3\).*this run .*\(16, 3\)"):
        _make(path, hidden=16).fit_steps(_batches, 4, resume=True)
    other = _make(path)
    other.config = TrainConfig(epochs=8, lr=2e-2, scheduler="cosine", grad_clip=10.0)
    with pytest.raises(CheckpointMismatchError, match=r"config\.lr: 0\.01 -> 0\.02"):
        other.load(path)


def test_another_package_version_warns_and_resumes(tmp_path, monkeypatch):
    path = _written(tmp_path)
    monkeypatch.setattr(physinv, "__version__", "0.0.0-other")
    t = _make(path)
    with pytest.warns(UserWarning, match="written by physinv .* this is 0.0.0-other"):
        t.load(path)
    assert t.step == 2


def test_bad_trainer_arguments():
    model = torch.nn.Linear(3, 1)
    with pytest.raises(InvalidParameterError, match="checkpoint_every must be >= 1"):
        Trainer(model, checkpoint_every=0, device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidParameterError, match="scheduler needs its optimizer"):
        Trainer(model, scheduler=torch.optim.lr_scheduler.StepLR(opt, 1), device="cpu")
    with pytest.raises(InvalidParameterError, match="resume=True needs a checkpoint_path"):
        Trainer(model, device="cpu").fit_steps(lambda s: None, 1, resume=True)
