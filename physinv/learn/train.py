"""Epoch-based supervised training: AdamW, schedulers, early stopping, exact resume, DDP.

:class:`SupervisedTrainer` minimizes ``loss_fn(model(x), y)`` over a data set
of pairs ``(x, y)``:

- AdamW with a learning-rate schedule per epoch: ``cosine`` (to ``min_lr`` at
  the last epoch), ``step`` (times ``gamma`` every ``step_size`` epochs),
  ``plateau`` (times ``plateau_factor`` after ``plateau_patience`` epochs
  without improvement of the validation loss) or ``none``;
- validation after every epoch; early stopping after ``patience`` epochs
  without an improvement larger than ``min_delta``; the best model is restored
  at the end (``restore_best``);
- a checkpoint after every epoch, written atomically by rank 0: model,
  optimizer, scheduler, RNG states of every rank, epoch, history, best
  validation loss and model, package version and a configuration signature.
  ``fit(..., resume=True)`` continues from it and reproduces the uninterrupted
  run; a checkpoint written for another configuration raises
  :class:`~physinv.learn.trainer.CheckpointMismatchError`;
- data-parallel under ``torchrun --nproc_per_node=K`` (gloo on CPU, NCCL on
  GPU): ``batch_size`` is the global batch, split evenly over the ranks by a
  :class:`~torch.utils.data.DistributedSampler` whose shuffling depends only
  on ``(seed, epoch)``, so K processes see the same global batches as one.

Command line (a flattened MLP on a generated data file; see ``docs/learning.md``)::

    python -m physinv.learn.train --data data.h5 --out runs/mlp --epochs 50
    torchrun --standalone --nproc_per_node=2 -m physinv.learn.train --data data.h5 --out runs/mlp
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

import physinv
from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError
from physinv.core.io import atomic_write_json, atomic_write_text
from physinv.learn import distributed
from physinv.learn.trainer import CheckpointMismatchError, _rng_state, _set_rng_state, save_checkpoint

SCHEDULERS = ("cosine", "step", "plateau", "none")

__all__ = ["TrainConfig", "TrainResult", "SupervisedTrainer", "CheckpointMismatchError", "mse", "relative_l2",
           "FlatMLP", "main"]


@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`SupervisedTrainer` (all of them enter the checkpoint signature).

    ``batch_size`` is the global batch (over all ``torchrun`` processes) and
    must be divisible by the number of processes.  ``patience=None`` disables
    early stopping.
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
        self.betas = tuple(float(b) for b in self.betas)
        if self.scheduler not in SCHEDULERS:
            raise InvalidParameterError(f"unknown scheduler {self.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidParameterError(f"epochs and batch_size must be >= 1; got {self.epochs}, {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidParameterError(f"lr must be a positive finite number; got {self.lr}")
        if self.patience is not None and self.patience < 1:
            raise InvalidParameterError(f"patience must be >= 1 or None (no early stopping); got {self.patience}")


@dataclass
class TrainResult:
    """What :meth:`SupervisedTrainer.fit` returns.

    ``history`` has one record per epoch (``epoch, train_loss, val_loss, lr, time_s``);
    ``train_loss`` / ``val_loss`` are those of the last epoch run;
    ``best_val`` / ``best_epoch`` the best validation loss and its epoch (1-based).
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = 0
    stopped_early: bool = False
    world_size: int = 1

    @property
    def train_loss(self) -> float:
        return self.history[-1]["train_loss"] if self.history else math.nan

    @property
    def val_loss(self) -> float | None:
        return self.history[-1]["val_loss"] if self.history else None


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all entries."""
    return torch.mean((pred - target) ** 2)


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||pred - target|| / ||target||`` (per sample)."""
    diff = (pred - target).flatten(1).norm(dim=1)
    return torch.mean(diff / target.flatten(1).norm(dim=1).clamp_min(torch.finfo(target.dtype).tiny))


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


class SupervisedTrainer:
    """Train ``model`` on pairs ``(x, y)`` with :class:`TrainConfig`.

    Parameters
    ----------
    model
        Maps a batch ``x`` of shape ``(b, *input_shape)`` to ``(b, *target_shape)``.
    config
        Hyper-parameters (:class:`TrainConfig`).
    loss_fn
        ``loss_fn(pred, target) -> scalar``, a mean over the batch (default
        :func:`mse`): data-parallel runs average it over equal local batches.
    checkpoint_path
        File written after every epoch (rank 0, atomically); None: no checkpoints.
    signature
        Extra entries a checkpoint must match to be resumed (e.g. ``{"L": 20}``).
    device
        ``auto|cpu|cuda``; under ``torchrun`` with CUDA, rank r uses ``cuda:LOCAL_RANK``.
    log_path
        JSON-lines file, one record per epoch (rank 0, rewritten atomically).
    progress
        Progress bar over epochs on rank 0.
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig | None = None,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mse,
                 checkpoint_path: str | os.PathLike | None = None, signature: dict[str, Any] | None = None,
                 device: str = "auto", log_path: str | os.PathLike | None = None, progress: bool = True):
        self.config = config or TrainConfig()
        self.dist = distributed.init_distributed(device)
        self.model = model.to(self.dist.device)
        self.loss_fn = loss_fn
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.user_signature = dict(signature or {})
        self.progress = progress
        cfg = self.config
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        if cfg.scheduler == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs,
                                                                        eta_min=cfg.min_lr)
        elif cfg.scheduler == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        elif cfg.scheduler == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr)
        else:
            self.scheduler = None
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.ddp_model: torch.nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp_model = self.model
        self.result = TrainResult(world_size=self.dist.world_size)
        self._best_state: dict[str, torch.Tensor] | None = None
        self._bad_epochs = 0

    # ------------------------------------------------------------------ signature and checkpoints

    def signature(self, data_info: dict[str, Any]) -> dict[str, Any]:
        """What a checkpoint must match: config, model class and parameter shapes, data sizes, user entries."""
        return {
            "config": asdict(self.config),
            "model": type(self.model).__name__,
            "parameters": [(k, tuple(v.shape), str(v.dtype)) for k, v in self.model.state_dict().items()],
            "data": data_info,
            "user": self.user_signature,
        }

    def _state(self, signature: dict[str, Any]) -> dict[str, Any]:
        rng = distributed.all_gather_object(_rng_state())
        return {
            "physinv_version": physinv.__version__,
            "signature": signature,
            "epoch": self.result.epoch,
            "history": self.result.history,
            "best_val": self.result.best_val,
            "best_epoch": self.result.best_epoch,
            "bad_epochs": self._bad_epochs,
            "stopped_early": self.result.stopped_early,
            "best_model": self._best_state,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng,
            "world_size": self.dist.world_size,
        }

    def _save(self, signature: dict[str, Any]) -> None:
        state = self._state(signature)  # collective: every rank takes part
        if self.dist.is_main:
            if self.checkpoint_path is not None:
                save_checkpoint(self.checkpoint_path, state)
            if self.log_path is not None:
                atomic_write_text(self.log_path, "".join(json.dumps(h) + "\n" for h in self.result.history))
        distributed.barrier()

    def load(self, path: str | os.PathLike, signature: dict[str, Any]) -> None:
        """Restore the training state from ``path``; raises CheckpointMismatchError on another configuration."""
        payload = torch.load(path, map_location="cpu", weights_only=False)
        found = payload.get("signature")
        if found != signature:
            found = found if isinstance(found, dict) else {}
            diff = [k for k in sorted(set(found) | set(signature)) if found.get(k) != signature.get(k)]
            details = []
            for key in diff:
                a, b = found.get(key), signature.get(key)
                if isinstance(a, dict) and isinstance(b, dict):
                    sub = [f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                           if a.get(k) != b.get(k)]
                    details.extend(sub)
                else:
                    details.append(f"{key}: checkpoint {a!r}, this run {b!r}")
            raise CheckpointMismatchError(
                f"checkpoint {path} was written for another configuration ({'; '.join(details)}); resume with "
                "the same configuration, or start a new run (another checkpoint path, or resume=False)"
            )
        if payload.get("physinv_version") != physinv.__version__:
            warnings.warn(f"checkpoint {path} was written by physinv {payload.get('physinv_version')}, "
                          f"this is {physinv.__version__}", stacklevel=2)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.result.epoch = int(payload["epoch"])
        self.result.history = list(payload["history"])
        self.result.best_val = float(payload["best_val"])
        self.result.best_epoch = int(payload["best_epoch"])
        self.result.stopped_early = bool(payload["stopped_early"])
        self._bad_epochs = int(payload["bad_epochs"])
        self._best_state = payload["best_model"]
        rng = payload["rng"]
        if len(rng) != self.dist.world_size:
            warnings.warn(f"checkpoint written by {len(rng)} process(es), resumed by {self.dist.world_size}: "
                          "random streams (dropout...) differ from the uninterrupted run", stacklevel=2)
        _set_rng_state(rng[self.dist.rank % len(rng)])

    # ------------------------------------------------------------------ training

    def _loader(self, ds: Dataset, shuffle: bool) -> tuple[DataLoader, DistributedSampler]:
        cfg, d = self.config, self.dist
        sampler = DistributedSampler(ds, num_replicas=d.world_size, rank=d.rank, shuffle=shuffle, seed=cfg.seed,
                                     drop_last=False)
        return DataLoader(ds, batch_size=cfg.batch_size // d.world_size, sampler=sampler, num_workers=0), sampler

    def _check_output(self, pred: torch.Tensor, y: torch.Tensor) -> None:
        if pred.shape != y.shape:
            raise ShapeMismatchError(
                f"the model maps inputs to shape {tuple(pred.shape)} but the targets have shape {tuple(y.shape)}; "
                "they must agree (no broadcasting in the loss)"
            )

    @torch.no_grad()
    def evaluate(self, data: Any, batch_size: int | None = None) -> float:
        """Mean of ``loss_fn`` over ``data`` (sharded over the ranks; sample-weighted)."""
        ds, _, _ = _as_dataset(data, "evaluation data")
        d = self.dist
        idx = list(range(d.rank, len(ds), d.world_size))
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=d.device)
        bs = batch_size or self.config.batch_size
        for start in range(0, len(idx), bs):
            rows = idx[start:start + bs]
            if isinstance(ds, TensorDataset):
                x, y = (t[rows].to(d.device) for t in ds.tensors)
            else:
                x, y = _collate([ds[i] for i in rows], d.device)
            pred = self.model(x)
            self._check_output(pred, y)
            count = torch.tensor(float(len(x)), dtype=torch.float64, device=d.device)
            total += torch.stack([self.loss_fn(pred, y).double() * count, count])
        total = distributed.all_reduce_sum(total)
        return float(total[0] / total[1])

    def fit(self, train: Any, val: Any = None, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Train for ``config.epochs`` epochs (or until early stopping).

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
        data_info = {"n_train": len(train_ds), "n_val": len(val_ds) if val_ds is not None else 0,
                     "input_shape": xs, "target_shape": ys}
        signature = self.signature(data_info)
        if resume and self.checkpoint_path is None:
            raise InvalidParameterError("resume=True needs a checkpoint_path")
        if resume and self.checkpoint_path.exists():
            self.load(self.checkpoint_path, signature)
        else:
            torch.manual_seed(cfg.seed + d.rank)  # dropout etc.; the shuffling depends on (seed, epoch) only
            self.result = TrainResult(world_size=d.world_size)
            self._best_state, self._bad_epochs = None, 0
        loader, sampler = self._loader(train_ds, shuffle=True)
        bar = None
        if self.progress and d.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.epochs, initial=self.result.epoch, unit="epoch", desc="train")
        try:
            while self.result.epoch < cfg.epochs and not self.result.stopped_early:
                if stop_after is not None and self.result.epoch >= stop_after:
                    break
                self._epoch(loader, sampler, val_ds, signature)
                if bar is not None:
                    last = self.result.history[-1]
                    bar.set_postfix(train=f"{last['train_loss']:.3g}",
                                    val="-" if last["val_loss"] is None else f"{last['val_loss']:.3g}")
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        finished = self.result.epoch >= cfg.epochs or self.result.stopped_early
        if finished and cfg.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        return self.result

    def _epoch(self, loader: DataLoader, sampler: DistributedSampler, val_ds, signature) -> None:
        cfg, d = self.config, self.dist
        epoch = self.result.epoch
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        self.ddp_model.train()
        total = torch.zeros(2, dtype=torch.float64, device=d.device)
        for step, (x, y) in enumerate(loader):
            x, y = x.to(d.device), y.to(d.device)
            self.optimizer.zero_grad(set_to_none=True)
            pred = self.ddp_model(x)
            if step == 0:
                self._check_output(pred, y)
            loss = self.loss_fn(pred, y)
            if not bool(torch.isfinite(loss.detach())):
                raise FloatingPointError(f"training loss became {float(loss.detach())} in epoch {epoch + 1}, "
                                         f"batch {step}; lower the learning rate or check the data scaling")
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            count = torch.tensor(float(len(x)), dtype=torch.float64, device=d.device)
            total += torch.stack([loss.detach().double() * count, count])
        total = distributed.all_reduce_sum(total)
        train_loss = float(total[0] / total[1])
        val_loss = self.evaluate(val_ds) if val_ds is not None else None
        lr = self.optimizer.param_groups[0]["lr"]
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss if val_loss is not None else train_loss)
        elif self.scheduler is not None:
            self.scheduler.step()
        res = self.result
        res.epoch = epoch + 1
        if val_loss is not None:
            if val_loss < res.best_val - cfg.min_delta:
                res.best_val, res.best_epoch, self._bad_epochs = val_loss, res.epoch, 0
                self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            else:
                self._bad_epochs += 1
            if cfg.patience is not None and self._bad_epochs >= cfg.patience:
                res.stopped_early = True
        res.history.append({"epoch": res.epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                            "time_s": time.perf_counter() - t0})
        self._save(signature)


def _collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]], device) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*items)
    return torch.stack(xs).to(device), torch.stack(ys).to(device)


# ---------------------------------------------------------------------- command line


class FlatMLP(torch.nn.Module):
    """A plain MLP on flattened fields: ``(b, *in_shape) -> (b, *out_shape)`` (a baseline regressor)."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.out_shape = tuple(out_shape)
        sizes = [math.prod(in_shape), *hidden, math.prod(out_shape)]
        layers: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.GELU()]
        self.net = torch.nn.Sequential(*layers[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).reshape(-1, *self.out_shape)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m physinv.learn.train",
        description="Train a flattened MLP from one input field to one target field of a data file "
                    "(physinv data generate); runs under torchrun for data-parallel training.")
    p.add_argument("--data", required=True, help="HDF5 data file written by `physinv data generate`")
    p.add_argument("--inputs", help="input field (default: the generator's first input)")
    p.add_argument("--targets", help="target field (default: the generator's first target)")
    p.add_argument("--out", required=True, help="folder for checkpoint.pt, log.jsonl, result.json")
    p.add_argument("--val-fraction", type=float, default=0.2, help="last fraction of the samples for validation")
    p.add_argument("--hidden", default="64,64", help="hidden layer widths, comma-separated")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    p.add_argument("--scheduler", choices=SCHEDULERS, default=TrainConfig.scheduler)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (default: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto|cpu|cuda")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--stop-after", type=int, default=None, help="return after this many epochs (for tests)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from physinv.learn import data as datamod

    args = build_parser().parse_args(argv)
    if distributed.launched_by_torchrun():
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        loaded = datamod.load(args.data)
        xname = args.inputs or (loaded.inputs[0] if loaded.inputs else None)
        yname = args.targets or (loaded.targets[0] if loaded.targets else None)
        if xname is None or yname is None:
            raise InvalidParameterError("the data file declares no inputs/targets; pass --inputs and --targets")
        dtype = getattr(torch, args.dtype)
        x, y = loaded[xname].to(dtype), loaded[yname].to(dtype)
        n_val = int(round(args.val_fraction * len(x)))
        if not 0 <= n_val < len(x):
            raise InvalidParameterError(f"--val-fraction {args.val_fraction} leaves no training samples")
        torch.manual_seed(args.seed)
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
        model = FlatMLP(x.shape[1:], y.shape[1:], hidden).to(dtype)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             weight_decay=args.weight_decay, scheduler=args.scheduler, patience=args.patience,
                             seed=args.seed)
        out = Path(args.out)
        trainer = SupervisedTrainer(
            model, config, checkpoint_path=out / "checkpoint.pt", log_path=out / "log.jsonl",
            device=args.device, progress=not args.quiet,
            signature={"data": str(Path(args.data).resolve()), "inputs": xname, "targets": yname,
                       "hidden": hidden, "dtype": args.dtype})
        split = len(x) - n_val
        val = (x[split:], y[split:]) if n_val else None
        result = trainer.fit((x[:split], y[:split]), val, resume=args.resume, stop_after=args.stop_after)
        if trainer.dist.is_main:
            atomic_write_json(out / "result.json", {
                "epochs": result.epoch, "train_loss": result.train_loss,
                "val_loss": result.val_loss if result.val_loss is not None else -1.0,
                "best_val": result.best_val if math.isfinite(result.best_val) else -1.0,
                "best_epoch": result.best_epoch, "stopped_early": int(result.stopped_early),
                "world_size": result.world_size})
            print(f"{result.epoch} epochs on {result.world_size} process(es): train loss {result.train_loss:.6g}")
        return 0
    except PhysinvError as exc:
        print(f"physinv.learn.train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
