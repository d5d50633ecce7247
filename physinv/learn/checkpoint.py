"""The training checkpoint format of physinv: written atomically, checked on read.

A checkpoint is one ``torch.save`` file holding a dict with the format tag
``format == "physinv-checkpoint-1"`` and the entries listed in
:data:`REQUIRED` (model, optimizer and scheduler states, the RNG states of
every process, step and epoch counters, history, early-stopping state, the
package version and a ``signature`` of the configuration).  It is written to
a temporary file in the target folder and renamed over the target
(:func:`~physinv.core.io.atomic_torch_save`), so a killed run leaves either
the previous checkpoint or the new one, never half of one.

:func:`read_checkpoint` refuses, with a :class:`CheckpointError` subclass,
a file that cannot be unpickled (truncated, damaged, not a torch file), one
without the format tag or with missing entries
(:class:`CheckpointCorruptError`), and one whose signature differs from the
run's (:class:`CheckpointMismatchError`, listing the differences).  Another
package version only warns: the signature, not the version, decides whether
the states fit.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import physinv
from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.core.io import atomic_torch_save

FORMAT = "physinv-checkpoint-1"

#: Entries every checkpoint holds besides ``format`` and ``physinv_version``.
REQUIRED = ("signature", "step", "epoch", "history", "model", "optimizer", "scheduler", "rng", "world_size",
            "best_val", "best_epoch", "bad_epochs", "stopped_early", "best_model")

__all__ = ["FORMAT", "REQUIRED", "CheckpointError", "CheckpointCorruptError", "CheckpointMismatchError",
           "rng_state", "set_rng_state", "save_checkpoint", "read_checkpoint", "signature_differences"]


class CheckpointError(PhysinvError):
    """A checkpoint that cannot be used to resume."""


class CheckpointCorruptError(CheckpointError, InvalidParameterError):
    """A file that is not a complete physinv checkpoint (truncated, damaged, another format)."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A checkpoint was written for another configuration (grid dimension, architecture, data...)."""


def rng_state() -> dict[str, Any]:
    """The global RNG states of this process: Python, NumPy, torch CPU and (if available) every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is available)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (the :data:`REQUIRED` entries) atomically, tagged with the format and package version."""
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointCorruptError(f"refusing to write checkpoint {path} without {missing}")
    return atomic_torch_save({"format": FORMAT, "physinv_version": physinv.__version__, **state}, path)


def signature_differences(found: Any, expected: dict[str, Any]) -> list[str]:
    """Human-readable differences ``key.sub: checkpoint -> this run`` between two signatures."""
    found = found if isinstance(found, dict) else {}
    details = []
    for key in sorted(set(found) | set(expected), key=str):
        a, b = found.get(key), expected.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            details += [f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b), key=str)
                        if a.get(k) != b.get(k)]
        else:
            details.append(f"{key}: checkpoint {a!r}, this run {b!r}")
    return details


def read_checkpoint(path: str | os.PathLike, signature: dict[str, Any] | None = None,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path
        The checkpoint file.
    signature
        What the checkpoint's signature must equal (None: not checked, e.g.
        to read a network back for inference).
    map_location
        Passed to ``torch.load``.

    Raises
    ------
    CheckpointCorruptError
        Missing, unreadable (truncated, damaged), untagged or incomplete file.
    CheckpointMismatchError
        Signature differs from ``signature``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointCorruptError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for damaged files
        raise CheckpointCorruptError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is truncated or damaged: "
            "delete it to start over, or resume from an intact copy"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointCorruptError(
            f"{path} is not a physinv training checkpoint (format {found!r}; expected {FORMAT!r}); "
            "checkpoints of other formats cannot be resumed: start a new run"
        )
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointCorruptError(f"checkpoint {path} lacks {missing}; it is damaged: start a new run")
    if signature is not None and payload["signature"] != signature:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for another configuration "
            f"({'; '.join(signature_differences(payload['signature'], signature))}); resume with the same "
            "configuration, or start a new run (another checkpoint path, or resume=False)"
        )
    if payload["physinv_version"] != physinv.__version__:
        warnings.warn(f"checkpoint {path} was written by physinv {payload['physinv_version']}, "
                      f"this is {physinv.__version__}", stacklevel=2)
    return payload
