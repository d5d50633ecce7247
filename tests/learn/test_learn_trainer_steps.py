import numpy as np
import pytest
import torch

from physinv.learn.checkpoint import CheckpointMismatchError, read_checkpoint
from physinv.learn.trainer import Trainer


def _make(path=None, signature=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)

    def loss_fn(m, batch):
        x, y = batch
        noise = torch.randn(y.shape) * 0.01  # consumes the global RNG: resume must restore it
        return ((m(x) - y - noise) ** 2).mean()

    return Trainer(model, loss_fn, optimizer=opt, scheduler=sched, signature=signature or {"ndim": 3},
                   checkpoint_path=path, checkpoint_every=2, device="cpu")


def _batches(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 3, generator=g)
    return x, x.sum(1, keepdim=True) ** 2


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    straight = _make()
    straight.fit_steps(_batches, 10)

    first = _make(tmp_path / "ckpt.pt")
    first.fit_steps(_batches, 6)  # checkpoint at step 6
    torch.manual_seed(1234)  # the interrupted process's RNG state is gone
    np.random.seed(99)
    resumed = _make(tmp_path / "ckpt.pt")
    resumed.load(tmp_path / "ckpt.pt")
    assert resumed.step == 6
    resumed.fit_steps(_batches, 10)
    assert resumed.history == straight.history
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_checkpoint_for_another_grid_dimension_is_refused(tmp_path):
    t = _make(tmp_path / "c.pt", signature={"ndim": 3})
    t.fit_steps(_batches, 2)
    other = _make(signature={"ndim": 2})
    with pytest.raises(CheckpointMismatchError, match="ndim"):
        other.load(tmp_path / "c.pt")


def test_checkpoints_are_written_atomically(tmp_path):
    t = _make(tmp_path / "c.pt")
    t.fit_steps(_batches, 4)
    assert (tmp_path / "c.pt").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    payload = read_checkpoint(tmp_path / "c.pt")
    assert payload["step"] == 4 and payload["physinv_version"]


def test_non_finite_loss_stops_training():
    t = _make()
    t.loss_fn = lambda m, batch: m(batch[0]).sum() * float("nan")
    with pytest.raises(FloatingPointError, match="step 0"):
        t.fit_steps(_batches, 3)
