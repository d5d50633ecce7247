"""Device selection (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import torch

from physinv.core.errors import InvalidParameterError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda[:k]`` to a :class:`torch.device`; ``auto`` prefers CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidParameterError(
                f"device {name!r} requested but CUDA is not available; use --device cpu or auto"
            )
        return torch.device(name)
    raise InvalidParameterError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:K")
