"""Command line: train a flattened MLP between two fields of a generated data file, with :class:`Trainer`.

The reference run of the trainer under ``torchrun`` (see ``docs/learning.md``)::

    python -m physinv.learn.train_mlp --data data.h5 --out runs/mlp --epochs 50
    torchrun --standalone --nproc_per_node=2 -m physinv.learn.train_mlp --data data.h5 --out runs/mlp

It writes ``OUT/checkpoint.pt`` (the format of :mod:`physinv.learn.checkpoint`),
``OUT/log.jsonl`` and ``OUT/result.json``; ``--resume`` continues from the checkpoint.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Sequence

import torch

from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.core.io import atomic_write_json
from physinv.learn import distributed
from physinv.learn.trainer import SCHEDULERS, TrainConfig, Trainer

__all__ = ["FlatMLP", "build_parser", "main"]


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
        prog="python -m physinv.learn.train_mlp",
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
        trainer = Trainer(
            model, config=config, checkpoint_path=out / "checkpoint.pt", log_path=out / "log.jsonl",
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
        print(f"physinv.learn.train_mlp: error: {exc}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
