"""Fault injection on training checkpoints: flipped bytes, truncation, empty, foreign and old-format files.

Each damaged checkpoint must give one :class:`CheckpointCorruptError` naming the file, when read and when a
run resumes from it: never a raw exception of the unpickler, never a silently different model.
"""

import collections
import re

import numpy as np
import pytest
import torch

import physinv
from physinv.learn.checkpoint import CheckpointCorruptError, read_checkpoint
from physinv.learn.trainer import TrainConfig, Trainer

WRITTEN, TOTAL = 3, 5  # steps in the checkpoint, steps after resuming


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return x, x.sum(1, keepdim=True) ** 2


def _trainer(path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    return Trainer(model, config=TrainConfig(epochs=TOTAL, lr=1e-2), checkpoint_path=path, device="cpu")


def _resumed(path):
    """The parameters after resuming from ``path`` to ``TOTAL`` steps."""
    trainer = _trainer(path)
    trainer.fit_steps(_batches, TOTAL, resume=True)
    return [p.detach().clone() for p in trainer.model.parameters()]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A checkpoint after ``WRITTEN`` steps (path, bytes) and the parameters of a clean resume from it."""
    path = tmp_path_factory.mktemp("clean") / "c.pt"
    _trainer(path).fit_steps(_batches, WRITTEN)
    data = path.read_bytes()
    reference = _resumed(path)
    path.write_bytes(data)
    return path, data, reference


def _refused(path, *message):
    """Read ``path``; it must raise one CheckpointCorruptError naming the file and matching ``message``."""
    with pytest.raises(CheckpointCorruptError) as info:
        read_checkpoint(path)
    text = str(info.value)
    assert str(path) in text and "start a new run" in text
    for pattern in message:
        assert re.search(pattern, text), text


def test_120_trials_of_flipped_bytes_all_refused(clean, tmp_path):
    """Flip 1-3 random bytes anywhere and resume: a CheckpointCorruptError naming the file, 120 times out of 120.

    With the SHA-256 over the whole payload and a strict header, no flip is harmless.
    """
    _, data, reference = clean
    path = tmp_path / "c.pt"
    rng = np.random.default_rng(2024)
    outcomes = collections.Counter()
    for _ in range(120):
        damaged = bytearray(data)
        for pos in rng.choice(len(data), size=int(rng.integers(1, 4)), replace=False):
            damaged[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(damaged))
        try:
            params = _resumed(path)
        except CheckpointCorruptError as exc:
            outcomes["refused, naming the file" if str(path) in str(exc) else "refused without the path"] += 1
        except Exception as exc:  # noqa: BLE001  (what the trial counts)
            outcomes[f"raw {type(exc).__name__}"] += 1
        else:
            same = all(torch.equal(a, b) for a, b in zip(params, reference))
            outcomes["resumed, same model" if same else "resumed, DIFFERENT model"] += 1
    assert outcomes == {"refused, naming the file": 120}


def test_every_header_byte_flipped_is_refused(clean, tmp_path):
    _, data, _ = clean
    path = tmp_path / "c.pt"
    header = data.index(b"\n") + 1
    for pos in range(header):
        for mask in (0x01, 0x20, 0xFF):  # lowest bit, letter case, every bit
            damaged = bytearray(data)
            damaged[pos] ^= mask
            path.write_bytes(bytes(damaged))
            _refused(path)


def test_truncated_at_any_length_is_refused(clean, tmp_path):
    _, data, _ = clean
    path = tmp_path / "c.pt"
    header = data.index(b"\n") + 1
    for length in (1, 20, header - 1, header, header + 1, header + 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:length])
        _refused(path, "truncated or damaged")
    path.write_bytes(data + b"\0")  # appended bytes too
    _refused(path, "truncated or damaged")


def test_empty_text_foreign_and_old_format_files_are_refused(clean, tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"")
    _refused(path, "truncated or damaged", "empty")
    path.write_text("step = 3\nmodel = 'not a checkpoint'\n")
    _refused(path, "not a physinv training checkpoint")
    torch.save({"model": {}, "step": 3}, path)
    _refused(path, "not a physinv training checkpoint")
    trainer = _trainer(None)
    trainer.fit_steps(_batches, WRITTEN)
    torch.save({"format": "physinv-checkpoint-1", "physinv_version": physinv.__version__, **trainer.state()}, path)
    _refused(path, "older format physinv-checkpoint-1", "cannot resume")
    with pytest.raises(CheckpointCorruptError, match=re.escape(str(tmp_path / "missing.pt"))):
        read_checkpoint(tmp_path / "missing.pt")


def _epoch_trainer(path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    return Trainer(model, config=TrainConfig(epochs=4, batch_size=8, lr=1e-2), checkpoint_path=path, device="cpu")


def test_fit_resume_from_a_damaged_checkpoint_is_refused_and_keeps_the_file(tmp_path):
    """``fit(..., resume=True)`` on a damaged file raises and leaves it as it was; a missing file starts fresh."""
    x = torch.randn(24, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    train = (x, (x**2).sum(1, keepdim=True))
    path = tmp_path / "c.pt"
    _epoch_trainer(path).fit(train, stop_after=2)
    data = path.read_bytes()
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0x10
    for damaged in (bytes(middle), data[: len(data) // 3], b"", b"not a checkpoint\n"):
        path.write_bytes(damaged)
        trainer = _epoch_trainer(path)
        with pytest.raises(CheckpointCorruptError, match=re.escape(str(path))):
            trainer.fit(train, resume=True)
        assert path.read_bytes() == damaged and trainer.epoch == 0  # nothing trained, nothing overwritten
    # the documented behaviour for a missing file: resume=True starts fresh, like resume=False
    path.unlink()
    fresh, straight = _epoch_trainer(path), _epoch_trainer(None)
    fresh.fit(train, resume=True)
    straight.fit(train)
    assert fresh.epoch == straight.epoch == 4
    assert all(torch.equal(a, b) for a, b in zip(fresh.model.parameters(), straight.model.parameters()))
