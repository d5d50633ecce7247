"""Input validation shared by simulators and solvers."""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError


def check_tensor(name: str, x, what: str = "", evaluate_hint: str = "") -> None:
    """Raise unless ``x`` is a :class:`torch.Tensor`.

    ``what`` describes the expected tensor (e.g. ``"of shape (9, 9), one value per grid node"``);
    ``evaluate_hint`` tells how to turn a function into values when ``x`` is callable (e.g.
    ``"kappa = f(*grid.coordinates())"``).  Arrays and lists get the hint ``torch.as_tensor``.
    """
    if torch.is_tensor(x):
        return
    expected = f"{name} must be a torch.Tensor" + (f" {what}" if what else "")
    if callable(x) and not isinstance(x, type):
        label = getattr(x, "__qualname__", type(x).__name__)
        hint = "; a function is not evaluated for you: evaluate it first"
        hint += f", e.g. {evaluate_hint}" if evaluate_hint else ""
        raise InvalidParameterError(f"{expected}; got a function ({label}){hint}")
    hint = ""
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
        hint = "; convert it with torch.as_tensor(..., dtype=torch.float64)"
    raise InvalidParameterError(f"{expected}, got {type(x).__name__}{hint}")


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise unless ``x`` is a tensor free of NaN and Inf."""
    check_tensor(name, x)
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
    """Raise unless ``x`` is a tensor whose trailing dimensions equal ``expected``."""
    check_tensor(name, x, f"with trailing shape {tuple(expected)}" + (f" ({what})" if what else ""))
    shape = tuple(x.shape)
    if shape[len(shape) - len(expected):] != tuple(expected) or len(shape) < len(expected):
        extra = f" ({what})" if what else ""
        raise ShapeMismatchError(
            f"{name} has shape {shape}; expected trailing shape {tuple(expected)}{extra}"
        )
