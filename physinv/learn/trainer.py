"""The one training loop of physinv: steps or epochs, exact resume, early stopping, DDP.

:class:`Trainer` minimizes ``loss_fn(model, batch)`` with one optimizer step
per batch, driven either

- by a stream of batches, :meth:`Trainer.fit_steps` (``batches(step)`` for
  step ``0, 1, ...``; the scheduler steps once per step), as the
  unsupervised DCDM training does; or
- by epochs over a data set of pairs ``(x, y)``, :meth:`Trainer.fit` (the
  scheduler steps once per epoch), with validation after every epoch, early
  stopping after ``patience`` epochs without an improvement larger than
  ``min_delta`` and restore of the best model, as the supervised learners do.

Both write the same checkpoint (:mod:`physinv.learn.checkpoint`): every
``checkpoint_every`` steps or epochs and at the end, atomically, by rank 0.
``resume=True`` continues from it (a missing file starts fresh; a damaged,
truncated, foreign or old-format one raises
:class:`~physinv.learn.checkpoint.CheckpointCorruptError` and is left as it
is) and reproduces the uninterrupted run bit for bit on the same device and
number of processes.  The checkpoint's signature (configuration, optimizer
and scheduler classes, model class and parameter shapes, data sizes, the
user's ``signature``) must match the run's.

Under ``torchrun --nproc_per_node=K`` (gloo on CPU, NCCL on GPU) the model is
wrapped in ``DistributedDataParallel``; in :meth:`Trainer.fit`,
``batch_size`` is the global batch, split evenly over the ranks by a
:class:`~torch.utils.data.DistributedSampler` whose shuffling depends only on
``(seed, epoch)``, so K processes take the steps one process takes.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.io import atomic_write_text
from physinv.core.seeding import seed_everything
from physinv.learn import distributed
from physinv.learn.checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state

SCHEDULERS = ("cosine", "step", "plateau", "none")

__all__ = ["SCHEDULERS", "TrainConfig", "TrainResult", "Trainer", "SupervisedLoss", "mse", "relative_l2_loss"]


def _field(name: str, value: Any, kind: type, ok: Callable[[Any], bool], allowed: str) -> Any:
    """``value`` as ``kind`` (int or float) if it is one (bool is not; an int is a float) and ``ok``; else an error.

    Raises :class:`InvalidParameterError` naming the :class:`TrainConfig` field, the value and what is allowed.
    """
    abstract = numbers.Integral if kind is int else numbers.Real
    if (isinstance(value, bool) or not isinstance(value, abstract) or (kind is float and not math.isfinite(value))
            or not ok(kind(value))):
        raise InvalidParameterError(f"TrainConfig.{name} must be {allowed}; got {value!r}")
    return kind(value)


@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`Trainer` (all of them enter the checkpoint signature).

    ``epochs`` is the length of the learning-rate schedule in scheduler
    periods (epochs in :meth:`Trainer.fit`, steps in :meth:`Trainer.fit_steps`).
    ``batch_size`` is the global batch of :meth:`Trainer.fit` (over all
    ``torchrun`` processes) and must be divisible by the number of processes.
    ``patience=None`` disables early stopping; ``grad_clip`` bounds the
    gradient 2-norm; ``seed`` seeds Python, NumPy and torch (``seed + rank``)
    at a fresh start, and the epoch shuffling.

    Every field is checked on construction (:class:`InvalidParameterError`
    naming the field, the value and what is allowed): integer fields take
    ints only (not floats, not bools), with ``epochs, batch_size, step_size
    >= 1``, ``plateau_patience >= 0``, ``patience`` None or ``>= 1`` and
    ``0 <= seed < 2**63``; the other numbers are finite, with ``lr > 0``,
    ``0 <= min_lr <= lr``, ``weight_decay, min_delta >= 0``, ``betas`` in
    ``[0, 1)``, ``gamma`` in ``(0, 1]``, ``plateau_factor`` in ``(0, 1)`` and
    ``grad_clip`` None or ``> 0``.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "cosine"
    min_lr: float = 0.0
    step_size: int = 30
    gamma: float = 0.1
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    grad_clip: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise InvalidParameterError(f"unknown scheduler {self.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
        self.epochs = _field("epochs", self.epochs, int, lambda v: v >= 1, "an int >= 1")
        self.batch_size = _field("batch_size", self.batch_size, int, lambda v: v >= 1, "an int >= 1")
        self.lr = _field("lr", self.lr, float, lambda v: v > 0, "a finite number > 0")
        self.weight_decay = _field("weight_decay", self.weight_decay, float, lambda v: v >= 0, "a finite number >= 0")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise InvalidParameterError(f"TrainConfig.betas must be a pair (beta1, beta2); got {self.betas!r}")
        self.betas = tuple(_field(f"betas[{i}]", b, float, lambda v: 0 <= v < 1, "a number in [0, 1)")
                           for i, b in enumerate(self.betas))
        self.min_lr = _field("min_lr", self.min_lr, float, lambda v: 0 <= v <= self.lr,
                             f"a number in [0, lr] = [0, {self.lr}]")
        self.step_size = _field("step_size", self.step_size, int, lambda v: v >= 1, "an int >= 1")
        self.gamma = _field("gamma", self.gamma, float, lambda v: 0 < v <= 1, "a number in (0, 1]")
        self.plateau_factor = _field("plateau_factor", self.plateau_factor, float, lambda v: 0 < v < 1,
                                     "a number in (0, 1)")
        self.plateau_patience = _field("plateau_patience", self.plateau_patience, int, lambda v: v >= 0,
                                       "an int >= 0")
        if self.patience is not None:
            self.patience = _field("patience", self.patience, int, lambda v: v >= 1,
                                   "an int >= 1, or None (no early stopping)")
        self.min_delta = _field("min_delta", self.min_delta, float, lambda v: v >= 0, "a finite number >= 0")
        if not isinstance(self.restore_best, bool):
            raise InvalidParameterError(f"TrainConfig.restore_best must be True or False; got {self.restore_best!r}")
        if self.grad_clip is not None:
            self.grad_clip = _field("grad_clip", self.grad_clip, float, lambda v: v > 0,
                                    "a finite number > 0, or None (no clipping)")
        self.seed = _field("seed", self.seed, int, lambda v: 0 <= v < 2**63, "an int in [0, 2**63)")

    def optimizer(self, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, Any]:
        """AdamW on ``model``'s parameters and the configured scheduler (None for ``"none"``)."""
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler
        if self.scheduler == "cosine":
            return opt, sched.CosineAnnealingLR(opt, T_max=self.epochs, eta_min=self.min_lr)
        if self.scheduler == "step":
            return opt, sched.StepLR(opt, step_size=self.step_size, gamma=self.gamma)
        if self.scheduler == "plateau":
            return opt, sched.ReduceLROnPlateau(opt, factor=self.plateau_factor, patience=self.plateau_patience,
                                                min_lr=self.min_lr)
        return opt, None


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` and :meth:`Trainer.fit_steps` return.

    ``history`` has one record per epoch (``epoch, train_loss, val_loss, lr,
    time_s``) or per step (``step, train_loss, lr``); ``train_loss`` /
    ``val_loss`` are those of the last record; ``best_val`` / ``best_epoch``
    the best validation loss and its epoch (1-based).
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    best_val: float = math.inf
    best_epoch: int = 0
    stopped_early: bool = False
    world_size: int = 1

    @property
    def train_loss(self) -> float:
        return self.history[-1]["train_loss"] if self.history else math.nan

    @property
    def val_loss(self) -> float | None:
        return self.history[-1].get("val_loss") if self.history else None


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all entries, ``mean((pred - target)^2)``."""
    return torch.mean((pred - target) ** 2)


def relative_l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Batch mean of the per-sample relative L2 error, :math:`\frac1B\sum_i \|p_i - t_i\|_2 / \|t_i\|_2`.

    ``pred`` and ``target`` have shape ``(batch, ...)``; each sample is flattened.
    """
    diff = (pred - target).flatten(1).norm(dim=1)
    return torch.mean(diff / target.flatten(1).norm(dim=1).clamp_min(torch.finfo(target.dtype).tiny))


class SupervisedLoss:
    """``loss(model(x), y)`` on a batch of pairs ``(x, y)``: the loss of :meth:`Trainer.fit`.

    ``loss(pred, target)`` must be a mean over the batch (data-parallel runs
    average it over equal local batches); ``model(x)`` must have exactly the
    targets' shape (no broadcasting), else :class:`ShapeMismatchError`.
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse):
        self.loss = loss

    def __call__(self, model: torch.nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        x, y = batch
        pred = model(x)
        if pred.shape != y.shape:
            raise ShapeMismatchError(
                f"the model maps inputs to shape {tuple(pred.shape)} but the targets have shape {tuple(y.shape)}; "
                "they must agree (no broadcasting in the loss)"
            )
        return self.loss(pred, y)


class Trainer:
    """Minimize ``loss_fn(model, batch)``; one loop, one checkpoint format.

    Parameters
    ----------
    model
        The network (moved to the run's device).
    loss_fn
        ``loss_fn(model, batch) -> scalar tensor``; default
        ``SupervisedLoss(mse)`` for pairs ``(x, y)``.
    config
        :class:`TrainConfig` (default ``TrainConfig()``).
    optimizer, scheduler
        Torch optimizer and scheduler; when ``optimizer`` is None both come
        from ``config`` (AdamW and ``config.scheduler``).
    signature
        Extra entries a checkpoint must match to be resumed (e.g. ``{"ndim": 3}``).
    checkpoint_path, checkpoint_every
        Where and how often (in steps for :meth:`fit_steps`, epochs for
        :meth:`fit`) rank 0 writes the checkpoint; the end is always written.
    log_path
        JSON-lines file of the history (rank 0, rewritten atomically with each checkpoint).
    device
        ``auto|cpu|cuda``; under ``torchrun`` with CUDA, rank r uses ``cuda:LOCAL_RANK``.
    progress
        Progress bar on rank 0.
    after_step
        ``after_step(trainer)``, called on every rank after each optimizer step (``trainer.step``
        already counts it), e.g. to update an exponential moving average of the weights.  What it
        changes must live in the model's state (parameters or buffers, such as the EMA copy of
        :mod:`physinv.learn.diffusion.training`) to be checkpointed and restored on resume; it must
        draw no random numbers from the global generators unless that is part of the run.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
                 *, config: TrainConfig | None = None, optimizer: torch.optim.Optimizer | None = None,
                 scheduler: Any = None, signature: dict[str, Any] | None = None,
                 checkpoint_path: str | os.PathLike | None = None, checkpoint_every: int = 1,
                 log_path: str | os.PathLike | None = None, device: str = "auto", progress: bool = False,
                 after_step: Callable[["Trainer"], None] | None = None):
        if checkpoint_every < 1:
            raise InvalidParameterError(f"checkpoint_every must be >= 1; got {checkpoint_every}")
        if optimizer is None and scheduler is not None:
            raise InvalidParameterError("a scheduler needs its optimizer: pass optimizer= too, or neither")
        self.config = config or TrainConfig()
        self.dist = distributed.init_distributed(device)
        self.model = model.to(self.dist.device)
        self.loss_fn = loss_fn if loss_fn is not None else SupervisedLoss(mse)
        if optimizer is None:
            optimizer, scheduler = self.config.optimizer(self.model)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.user_signature = dict(signature or {})
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.checkpoint_every = checkpoint_every
        self.log_path = Path(log_path) if log_path is not None else None
        self.progress = progress
        self.after_step = after_step
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.ddp_model: torch.nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp_model = self.model
        self.data_info: dict[str, Any] | None = None
        self.step, self.epoch = 0, 0
        self.history: list[dict[str, Any]] = []
        self.best_val, self.best_epoch, self.bad_epochs = math.inf, 0, 0
        self.stopped_early = False
        self.best_model: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ checkpoints

    def signature(self) -> dict[str, Any]:
        """What a checkpoint must match: config, optimizer, scheduler, model parameters, data sizes, user entries."""
        return {
            "config": asdict(self.config),
            "optimizer": type(self.optimizer).__name__,
            "scheduler": type(self.scheduler).__name__ if self.scheduler is not None else None,
            "model": type(self.model).__name__,
            "parameters": [(k, tuple(v.shape), str(v.dtype)) for k, v in self.model.state_dict().items()],
            "data": self.data_info,
            "user": self.user_signature,
        }

    def state(self) -> dict[str, Any]:
        """The checkpoint entries (collective under DDP: every rank contributes its RNG state)."""
        return {
            "signature": self.signature(), "step": self.step, "epoch": self.epoch, "history": list(self.history),
            "best_val": self.best_val, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early, "best_model": self.best_model,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": distributed.all_gather_object(rng_state()), "world_size": self.dist.world_size,
        }

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the checkpoint (rank 0) and the log; every rank must call it."""
        path = path or self.checkpoint_path
        if path is None:
            raise InvalidParameterError("no checkpoint path given (checkpoint_path=... or save(path))")
        state = self.state()
        if self.dist.is_main:
            save_checkpoint(path, state)
        self.save_log()
        distributed.barrier()

    def load(self, path: str | os.PathLike) -> None:
        """Restore everything from ``path``; its signature must be this run's (:class:`CheckpointMismatchError`)."""
        payload = read_checkpoint(path, self.signature())
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.step, self.epoch = int(payload["step"]), int(payload["epoch"])
        self.history = list(payload["history"])
        self.best_val, self.best_epoch = float(payload["best_val"]), int(payload["best_epoch"])
        self.bad_epochs, self.stopped_early = int(payload["bad_epochs"]), bool(payload["stopped_early"])
        self.best_model = payload["best_model"]
        rng = payload["rng"]
        if len(rng) != self.dist.world_size:
            warnings.warn(f"checkpoint written by {len(rng)} process(es), resumed by {self.dist.world_size}: "
                          "random streams (dropout...) differ from the uninterrupted run", stacklevel=2)
        set_rng_state(rng[self.dist.rank % len(rng)])

    def result(self) -> TrainResult:
        """The training state as a :class:`TrainResult`."""
        return TrainResult(list(self.history), self.epoch, self.step, self.best_val, self.best_epoch,
                           self.stopped_early, self.dist.world_size)

    def _start(self, resume: bool) -> None:
        if resume and self.checkpoint_path is None:
            raise InvalidParameterError("resume=True needs a checkpoint_path")
        if resume and self.checkpoint_path.exists():
            self.load(self.checkpoint_path)
        elif self.step == 0 and self.epoch == 0:  # fresh run: dropout etc.; the shuffling uses (seed, epoch)
            seed_everything(self.config.seed + self.dist.rank)

    def _maybe_save(self, count: int, last: bool) -> None:
        if not (last or count % self.checkpoint_every == 0):
            return
        if self.checkpoint_path is not None:
            self.save()
        else:
            self.save_log()

    def save_log(self) -> None:
        """Write the history to ``log_path`` (rank 0, atomically)."""
        if self.dist.is_main and self.log_path is not None:
            atomic_write_text(self.log_path, "".join(json.dumps(h) + "\n" for h in self.history))

    # ------------------------------------------------------------------ training

    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimizer step on ``batch`` (moved to the device); returns the detached loss."""
        batch = _to_device(batch, self.dist.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.ddp_model, batch)
        if not bool(torch.isfinite(loss.detach())):
            where = f" (epoch {self.epoch + 1})" if self.data_info is not None else ""
            raise FloatingPointError(f"training loss became {float(loss.detach())} at step {self.step}{where}; "
                                     "lower the learning rate or check the data scaling")
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        if self.after_step is not None:
            self.after_step(self)
        return loss.detach()

    def _scheduler_step(self, metric: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metric)
        elif self.scheduler is not None:
            self.scheduler.step()

    def _bar(self, total: int, initial: int, unit: str):
        if not (self.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, unit=unit, desc="train", leave=False)

    def fit_steps(self, batches: Callable[[int], Any], steps: int, resume: bool = False) -> TrainResult:
        """Train until ``self.step == steps`` on ``batches(step)`` (each rank draws its own batch).

        ``resume=True`` first continues from ``checkpoint_path`` if it exists.
        """
        self._start(resume)
        self.ddp_model.train()
        bar = self._bar(steps, min(self.step, steps), "step")
        try:
            while self.step < steps:
                lr = self.optimizer.param_groups[0]["lr"]
                loss = float(distributed.all_reduce_sum(self.train_step(batches(self.step))) / self.dist.world_size)
                self._scheduler_step(loss)
                self.history.append({"step": self.step, "train_loss": loss, "lr": lr})
                self._maybe_save(self.step, self.step == steps)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3g}")
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return self.result()

    def fit(self, train: Any, val: Any = None, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Train for ``config.epochs`` epochs over pairs (or until early stopping).

        Parameters
        ----------
        train, val
            ``(inputs, targets)`` tensors with a leading sample axis, or torch
            Datasets of pairs; ``val`` enables early stopping, the plateau
            scheduler's monitor and best-model restore.
        resume
            Continue from ``checkpoint_path`` if it exists (else start fresh).
        stop_after
            Return after this many completed epochs (the checkpoint is written);
            a later ``fit(..., resume=True)`` continues to ``config.epochs``.
        """
        cfg, d = self.config, self.dist
        if cfg.batch_size % d.world_size:
            raise InvalidParameterError(
                f"batch_size {cfg.batch_size} (global) must be divisible by the {d.world_size} processes")
        if cfg.patience is not None and val is None:
            raise InvalidParameterError("early stopping (patience) needs validation data: pass val=(inputs, targets)")
        train_ds, xs, ys = _as_dataset(train, "training data")
        val_ds = _as_dataset(val, "validation data")[0] if val is not None else None
        self.data_info = {"n_train": len(train_ds), "n_val": len(val_ds) if val_ds is not None else 0,
                          "input_shape": xs, "target_shape": ys}
        self._start(resume)
        sampler = DistributedSampler(train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed,
                                     drop_last=False)
        loader = DataLoader(train_ds, batch_size=cfg.batch_size // d.world_size, sampler=sampler, num_workers=0)
        bar = self._bar(cfg.epochs, min(self.epoch, cfg.epochs), "epoch")
        try:
            while self.epoch < cfg.epochs and not self.stopped_early:
                if stop_after is not None and self.epoch >= stop_after:
                    break
                self._epoch(loader, sampler, val_ds)
                if bar is not None:
                    last = self.history[-1]
                    bar.set_postfix(train=f"{last['train_loss']:.3g}",
                                    val="-" if last["val_loss"] is None else f"{last['val_loss']:.3g}")
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        finished = self.epoch >= cfg.epochs or self.stopped_early
        if finished and cfg.restore_best and self.best_model is not None:
            self.model.load_state_dict(self.best_model)
        return self.result()

    def _epoch(self, loader: DataLoader, sampler: DistributedSampler, val_ds: Dataset | None) -> None:
        cfg, d = self.config, self.dist
        t0 = time.perf_counter()
        sampler.set_epoch(self.epoch)
        self.ddp_model.train()
        total = torch.zeros(2, dtype=torch.float64, device=d.device)
        for batch in loader:
            count = torch.tensor(float(_batch_len(batch)), dtype=torch.float64, device=d.device)
            total += torch.stack([self.train_step(batch).double() * count, count])
        total = distributed.all_reduce_sum(total)
        train_loss = float(total[0] / total[1])
        val_loss = self.evaluate(val_ds) if val_ds is not None else None
        lr = self.optimizer.param_groups[0]["lr"]
        self._scheduler_step(val_loss if val_loss is not None else train_loss)
        self.epoch += 1
        if val_loss is not None:
            if val_loss < self.best_val - cfg.min_delta:
                self.best_val, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
                self.best_model = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            if cfg.patience is not None and self.bad_epochs >= cfg.patience:
                self.stopped_early = True
        self.history.append({"epoch": self.epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                             "time_s": time.perf_counter() - t0})
        self._maybe_save(self.epoch, self.epoch >= cfg.epochs or self.stopped_early)

    @torch.no_grad()
    def evaluate(self, data: Any, batch_size: int | None = None) -> float:
        """Sample-weighted mean of ``loss_fn`` over pairs ``data`` (sharded over the ranks)."""
        ds, _, _ = _as_dataset(data, "evaluation data")
        d = self.dist
        idx = list(range(d.rank, len(ds), d.world_size))
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=d.device)
        bs = batch_size or self.config.batch_size
        for start in range(0, len(idx), bs):
            rows = idx[start:start + bs]
            if isinstance(ds, TensorDataset):
                batch = tuple(t[rows] for t in ds.tensors)
            else:
                batch = tuple(torch.stack(field) for field in zip(*(ds[i] for i in rows)))
            batch = _to_device(batch, d.device)
            count = torch.tensor(float(len(rows)), dtype=torch.float64, device=d.device)
            total += torch.stack([self.loss_fn(self.model, batch).double() * count, count])
        total = distributed.all_reduce_sum(total)
        return float(total[0] / total[1])


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_len(batch: Any) -> int:
    while not torch.is_tensor(batch):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return len(batch)


def _as_dataset(data: Any, name: str) -> tuple[Dataset, tuple[int, ...] | None, tuple[int, ...] | None]:
    """``(x, y)`` tensors or a TensorDataset of two tensors, checked; other datasets as they are."""
    if isinstance(data, TensorDataset):
        data = data.tensors
    if isinstance(data, (tuple, list)):
        if len(data) != 2 or not all(torch.is_tensor(t) for t in data):
            raise InvalidParameterError(f"{name} must be a pair (inputs, targets) of tensors or a torch Dataset")
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ShapeMismatchError(
                f"{name}: inputs have {x.shape[0]} samples (shape {tuple(x.shape)}), targets {y.shape[0]} "
                f"(shape {tuple(y.shape)}); the first axis counts samples and must agree"
            )
        if x.shape[0] == 0:
            raise InvalidParameterError(f"{name} is empty")
        for what, t in (("inputs", x), ("targets", y)):
            if t.is_floating_point() or t.is_complex():
                bad = ~torch.isfinite(t)
                if bool(bad.any()):
                    rows = torch.nonzero(bad.flatten(1).any(1)).flatten()[:5].tolist()
                    raise InvalidParameterError(
                        f"{name} {what} contain {int(bad.sum())} NaN/Inf value(s) (samples {rows}...); "
                        "all entries must be finite"
                    )
        return TensorDataset(x, y), tuple(x.shape[1:]), tuple(y.shape[1:])
    if isinstance(data, Dataset):
        return data, None, None
    raise InvalidParameterError(f"{name} must be a pair (inputs, targets) of tensors or a torch Dataset; "
                                f"got {type(data).__name__}")
