"""A small training loop with checkpoints that resume exactly.

A checkpoint stores the model, optimizer and scheduler states, the step, the
RNG states (Python, NumPy, torch CPU and CUDA), the package version and a
user ``signature`` (e.g. grid dimension and architecture).  Loading a
checkpoint whose signature differs raises
:class:`~physinv.core.errors.CheckpointMismatchError`; resuming from step k
reproduces the uninterrupted run bit for bit on the same device.
Checkpoints are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

import physinv
from physinv.core.errors import PhysinvError
from physinv.core.io import atomic_torch_save


class CheckpointMismatchError(PhysinvError, ValueError):
    """A checkpoint was written for another configuration (grid dimension, architecture...)."""


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then rename)."""
    return atomic_torch_save(payload, path)


@dataclass
class Trainer:
    """Minimize ``loss_fn(model, batch)`` over batches from ``batches(step)``.

    Parameters
    ----------
    model, optimizer, scheduler
        The usual torch objects (``scheduler`` may be None).
    loss_fn
        ``loss_fn(model, batch) -> scalar tensor``.
    signature
        What a checkpoint must match to be resumed (e.g. ``{"ndim": 3, "channels": 16}``).
    checkpoint_path, checkpoint_every
        Where and how often (in steps) to write checkpoints; the last step is always written.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor]
    signature: dict[str, Any] = field(default_factory=dict)
    scheduler: Any = None
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_every: int = 100
    step: int = 0
    history: list[float] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {
            "physinv_version": physinv.__version__,
            "signature": dict(self.signature),
            "step": self.step,
            "history": list(self.history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": _rng_state(),
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        path = path or self.checkpoint_path
        if path is None:
            raise PhysinvError("no checkpoint path given")
        return save_checkpoint(path, self.state())

    def load(self, path: str | os.PathLike) -> None:
        """Restore everything from ``path``; the signature must match this trainer's."""
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if payload.get("signature") != dict(self.signature):
            raise CheckpointMismatchError(
                f"checkpoint {path} was written for {payload.get('signature')}; "
                f"this run needs {dict(self.signature)} (e.g. another grid dimension or architecture)"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload["scheduler"] is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.step = int(payload["step"])
        self.history = list(payload["history"])
        _set_rng_state(payload["rng"])

    def fit(self, batches: Callable[[int], Any], steps: int,
            progress: Callable[[Iterator[int]], Iterator[int]] | None = None) -> list[float]:
        """Train until ``self.step == steps`` (continuing from a loaded checkpoint)."""
        indices = range(self.step, steps)
        for step in (progress(iter(indices)) if progress else indices):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model, batches(step))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {float(loss.detach())} at step {step}")
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step = step + 1
            self.history.append(float(loss.detach()))
            if self.checkpoint_path is not None and (
                self.step % self.checkpoint_every == 0 or self.step == steps
            ):
                self.save()
        return self.history
