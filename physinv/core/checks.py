"""Input validation shared by simulators and solvers."""

from __future__ import annotations

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds NaN or Inf."""
    if not torch.is_tensor(x):
        raise InvalidParameterError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not bool(torch.isfinite(x.detach()).all()):
        bad = int((~torch.isfinite(x.detach())).sum())
        raise InvalidParameterError(
            f"{name} contains {bad} NaN/Inf value(s); all entries must be finite"
        )


def check_positive(name: str, x: torch.Tensor) -> None:
    """Raise unless ``x`` is finite and strictly positive everywhere."""
    check_finite(name, x)
    xmin = float(x.detach().min())
    if xmin <= 0.0:
        raise InvalidParameterError(
            f"{name} must be strictly positive everywhere (got minimum {xmin:.3g}); "
            "a conductivity/diffusivity has to be > 0"
        )


def check_shape(name: str, x: torch.Tensor, expected: tuple[int, ...], what: str = "") -> None:
    """Raise unless the trailing dimensions of ``x`` equal ``expected``."""
    shape = tuple(x.shape)
    if shape[len(shape) - len(expected):] != tuple(expected) or len(shape) < len(expected):
        extra = f" ({what})" if what else ""
        raise ShapeMismatchError(
            f"{name} has shape {shape}; expected trailing shape {tuple(expected)}{extra}"
        )
