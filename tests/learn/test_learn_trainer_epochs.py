import math

import numpy as np
import pytest
import torch

import physinv
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.checkpoint import CheckpointMismatchError, read_checkpoint
from physinv.learn.trainer import TrainConfig, Trainer, relative_l2_loss


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=40, seed=0, sign=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return x, sign * (x**2).sum(1, keepdim=True)


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Dropout(0.1),
                               torch.nn.Linear(16, 1)).double()


def _trainer(path=None, model=None, **cfg):
    config = TrainConfig(**{"epochs": 6, "batch_size": 8, "lr": 1e-2, **cfg})
    return Trainer(model or _mlp(), config=config, checkpoint_path=path, device="cpu")


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    train, val = _data(32), _data(8, seed=1)
    straight = _trainer(tmp_path / "straight.pt")
    res = straight.fit(train, val)
    assert res.epoch == 6 and res.train_loss < 0.8 * res.history[0]["train_loss"]  # it learns

    _trainer(tmp_path / "ckpt.pt").fit(train, val, stop_after=2)
    payload = read_checkpoint(tmp_path / "ckpt.pt")
    assert payload["epoch"] == 2 and payload["physinv_version"] == physinv.__version__
    assert {"model", "optimizer", "scheduler", "rng", "best_model", "signature"} <= set(payload)
    torch.manual_seed(1234)  # the interrupted process's RNG state is gone (dropout draws from it)
    np.random.seed(99)
    resumed = _trainer(tmp_path / "ckpt.pt", model=torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1)).double())
    res2 = resumed.fit(train, val, resume=True)
    assert res2.epoch == 6 and len(res2.history) == 6
    assert math.isclose(res2.train_loss, res.train_loss, rel_tol=1e-6)
    assert math.isclose(res2.val_loss, res.val_loss, rel_tol=1e-6)
    assert [h["lr"] for h in res2.history] == [h["lr"] for h in res.history]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)
        assert torch.equal(a, b)  # bitwise on one CPU thread
    # resuming a finished run does nothing
    again = _trainer(tmp_path / "ckpt.pt").fit(train, val, resume=True)
    assert again.epoch == 6 and again.train_loss == res2.train_loss


def test_early_stopping_restores_the_best_model(tmp_path):
    train = _data(32)
    val = _data(16, seed=1, sign=-1.0)  # fitting the training data makes the validation loss grow
    model = torch.nn.Linear(3, 1).double()
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    trainer = _trainer(tmp_path / "c.pt", model=model, epochs=20, patience=2, scheduler="none",
                       weight_decay=0.0)
    res = trainer.fit(train, val)
    vals = [h["val_loss"] for h in res.history]
    assert res.stopped_early and res.epoch == 3 and res.best_epoch == 1
    assert vals[1] > vals[0] and vals[2] > vals[0]
    assert math.isclose(trainer.evaluate(val), res.best_val, rel_tol=1e-12)  # best (epoch 1) model restored
    assert not math.isclose(trainer.evaluate(val), vals[-1], rel_tol=1e-6)


def test_schedulers_follow_their_formulas():
    train, val = _data(16), _data(8, seed=1, sign=-1.0)
    res = _trainer(epochs=5, scheduler="step", step_size=2, gamma=0.5).fit(train)
    assert [h["lr"] for h in res.history] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3], rel=1e-12)
    res = _trainer(epochs=4, scheduler="cosine", min_lr=1e-3).fit(train)
    expected = [1e-3 + (1e-2 - 1e-3) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [h["lr"] for h in res.history] == pytest.approx(expected, rel=1e-12)
    # plateau: the validation loss never improves after epoch 1; cut after plateau_patience + 1 bad epochs
    model = torch.nn.Linear(3, 1).double()
    torch.nn.init.zeros_(model.weight)
    res = _trainer(model=model, epochs=5, scheduler="plateau", plateau_patience=1, plateau_factor=0.5,
                   weight_decay=0.0).fit(train, val)
    assert [h["lr"] for h in res.history] == pytest.approx([1e-2, 1e-2, 1e-2, 5e-3, 5e-3], rel=1e-12)


def test_relative_l2_loss():
    target = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    pred = torch.tensor([[3.0, 4.5], [0.0, 0.0]])
    assert float(relative_l2_loss(pred, target)) == pytest.approx((0.5 / 5 + 1.0) / 2)


def test_bad_input_gets_clear_errors(tmp_path):
    x, y = _data(16)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InvalidParameterError, match=r"training data inputs contain 1 NaN/Inf.*samples \[3\]"):
        _trainer().fit((bad, y))
    with pytest.raises(InvalidParameterError, match="validation data targets contain"):
        _trainer().fit((x, y), (x[:4], torch.full((4, 1), float("inf"), dtype=torch.float64)))
    with pytest.raises(ShapeMismatchError, match="inputs have 16 samples.*targets 15"):
        _trainer().fit((x, y[:15]))
    with pytest.raises(ShapeMismatchError, match=r"model maps inputs to shape \(8, 1\).*targets have shape \(8, 2\)"):
        _trainer().fit((x, torch.cat([y, y], 1)))
    with pytest.raises(InvalidParameterError, match="unknown scheduler 'cosin'"):
        TrainConfig(scheduler="cosin")
    with pytest.raises(InvalidParameterError, match="needs validation data"):
        _trainer(patience=3).fit((x, y))
    # resuming from a checkpoint written with another configuration
    _trainer(tmp_path / "c.pt", epochs=2).fit((x, y))
    with pytest.raises(CheckpointMismatchError, match=r"config\.lr: 0\.01 -> 0\.02"):
        _trainer(tmp_path / "c.pt", epochs=2, lr=2e-2).fit((x, y), resume=True)
    with pytest.raises(CheckpointMismatchError, match="n_train"):
        _trainer(tmp_path / "c.pt", epochs=2).fit((x[:12], y[:12]), resume=True)
    wide = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()
    with pytest.raises(CheckpointMismatchError, match="parameters"):
        _trainer(tmp_path / "c.pt", model=wide, epochs=2).fit((x, y), resume=True)


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_any_dataset_of_pairs_trains_like_tensors():
    train, val = _data(16), _data(8, seed=1)
    a = _trainer(epochs=2).fit(train, val)
    b = _trainer(epochs=2).fit(_Pairs(*train), _Pairs(*val))
    assert math.isclose(a.train_loss, b.train_loss, rel_tol=1e-12)
    assert math.isclose(a.val_loss, b.val_loss, rel_tol=1e-12)
