"""The training checkpoint format of physinv: written atomically, verified on read.

A checkpoint file is one header line followed by a payload::

    physinv-checkpoint-2 sha256=<64 lowercase hex digits> bytes=<payload length>\n
    <payload: the bytes torch.save writes for a dict>

The payload dict holds ``physinv_version`` and the entries listed in
:data:`REQUIRED` (model, optimizer and scheduler states, the RNG states of
every process, step and epoch counters, history, early-stopping state and a
``signature`` of the configuration), all of types that
``torch.load(..., weights_only=True)`` accepts (tensors and plain Python
values, for torch's optimizers and schedulers).  The file is written to a
temporary file in the target folder and renamed over the target
(:func:`~physinv.core.io.atomic_write`), so a killed run leaves either the
previous checkpoint or the new one, never half of one.

:func:`read_checkpoint` checks the header, the payload length and its
SHA-256 *before* unpickling anything, so a changed byte anywhere, a truncated
or empty file, a file of another kind or of the older format
``physinv-checkpoint-1`` (no checksum; not resumable) each give one
:class:`CheckpointCorruptError` naming the file, never a raw exception of
the unpickler and never a silently different model.  The verified payload is
then loaded with ``weights_only=True``; it must hold every :data:`REQUIRED`
entry (:class:`CheckpointCorruptError`) and, when asked, the run's signature
(:class:`CheckpointMismatchError`, listing the differences).  Another
package version only warns: the signature, not the version, decides whether
the states fit.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import physinv
from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.core.io import atomic_write

FORMAT = "physinv-checkpoint-2"

#: Entries every checkpoint payload holds besides ``physinv_version``.
REQUIRED = ("signature", "step", "epoch", "history", "model", "optimizer", "scheduler", "rng", "world_size",
            "best_val", "best_epoch", "bad_epochs", "stopped_early", "best_model")

_MAGIC = b"physinv-checkpoint-"
_HEADER = re.compile(rb"physinv-checkpoint-2 sha256=([0-9a-f]{64}) bytes=([0-9]{1,19})")

__all__ = ["FORMAT", "REQUIRED", "CheckpointError", "CheckpointCorruptError", "CheckpointMismatchError",
           "rng_state", "set_rng_state", "save_checkpoint", "read_checkpoint", "signature_differences"]


class CheckpointError(PhysinvError):
    """A checkpoint that cannot be used to resume."""


class CheckpointCorruptError(CheckpointError, InvalidParameterError):
    """A file that is not a complete physinv checkpoint (truncated, damaged, another format)."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A checkpoint was written for another configuration (grid dimension, architecture, data...)."""


def rng_state() -> dict[str, Any]:
    """The global RNG states of this process: Python, NumPy, torch CPU and (if available) every CUDA device.

    NumPy's state is stored as ``(name, key as a list of ints, pos, has_gauss, cached_gaussian)`` so that
    ``torch.load(..., weights_only=True)`` reads it.
    """
    name, key, *rest = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, key.tolist(), *rest), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is available)."""
    name, key, *rest = state["numpy"]
    random.setstate(state["python"])
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (the :data:`REQUIRED` entries) atomically, with the header line and package version."""
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointCorruptError(f"refusing to write checkpoint {path} without {missing}")
    buffer = io.BytesIO()
    torch.save({"physinv_version": physinv.__version__, **state}, buffer)
    payload = buffer.getvalue()
    header = f"{FORMAT} sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(header)
            fh.write(payload)

    return atomic_write(path, write)


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


def _verified_payload(path: Path) -> bytes:
    """The payload bytes of ``path`` after its header, length and SHA-256 have been checked."""
    if not path.is_file():
        raise CheckpointCorruptError(f"no checkpoint file at {path}; check the path")
    data = path.read_bytes()
    head, _, payload = data.partition(b"\n")
    match = _HEADER.fullmatch(head)
    if match is None:
        if not data:
            raise _damaged(path, "the file is empty")
        if b"physinv-checkpoint-1" in data:
            raise CheckpointCorruptError(
                f"{path} is a checkpoint of the older format physinv-checkpoint-1 (no checksum), which this "
                f"physinv ({FORMAT}) cannot resume: start a new run (another checkpoint path, or delete it)")
        if data[:len(_MAGIC)] == _MAGIC[:len(data)]:  # begins as a checkpoint does
            raise _damaged(path, "its header line is cut or damaged")
        raise CheckpointCorruptError(
            f"{path} is not a physinv training checkpoint (it does not start with the header line "
            f"'{FORMAT} sha256=... bytes=...'): it is another kind of file, or damaged; give the path of a "
            "checkpoint, or delete the file to start a new run")
    digest, size = match.group(1).decode(), int(match.group(2))
    if len(payload) != size:
        raise _damaged(path, f"{len(payload)} payload bytes, the header says {size}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise _damaged(path, "the SHA-256 of the payload differs from the header's")
    return payload


def _damaged(path: Path, what: str) -> CheckpointCorruptError:
    return CheckpointCorruptError(f"checkpoint {path} is truncated or damaged ({what}): delete it to start a new "
                                  "run, or resume from an intact copy")


def read_checkpoint(path: str | os.PathLike, signature: dict[str, Any] | None = None,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """Verify and load a checkpoint written by :func:`save_checkpoint`; returns its payload dict.

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
        Missing, empty, truncated or damaged file (header, length or SHA-256
        wrong), another kind of file, the older format, or missing entries.
    CheckpointError
        An intact file whose payload ``torch.load(..., weights_only=True)``
        refuses (e.g. a custom optimizer state holding other objects; allow
        them with ``torch.serialization.add_safe_globals``).
    CheckpointMismatchError
        Signature differs from ``signature``.
    """
    path = Path(path)
    buffer = io.BytesIO(_verified_payload(path))
    try:
        payload = torch.load(buffer, map_location=map_location, weights_only=True)
    except Exception as exc:  # the bytes are those written: the content is outside torch's safe set
        reason = str(exc).split("WeightsUnpickler error: ")[-1].split("\n")[0]  # torch's one relevant line
        raise CheckpointError(
            f"checkpoint {path} is intact but torch.load(weights_only=True) refuses its content ({reason}); "
            "if you trust the file, allow those types with torch.serialization.add_safe_globals, "
            "else start a new run") from exc
    entries = ("physinv_version", *REQUIRED)
    missing = [k for k in entries if k not in payload] if isinstance(payload, dict) else list(entries)
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
