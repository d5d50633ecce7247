"""Reproducible seeding of Python, NumPy and torch generators."""

from __future__ import annotations

import numbers
import random

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError


def seed_everything(seed: int) -> np.random.Generator:
    """Seed ``random``, NumPy's legacy state and torch (CPU and CUDA).

    ``seed`` is an integer with ``0 <= seed < 2**64`` (Python or NumPy integer;
    bools, floats and strings are refused with :class:`InvalidParameterError`).
    Returns a fresh :class:`numpy.random.Generator` seeded with ``seed`` for
    code that prefers an explicit generator.
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def check_seed(seed) -> int:
    """``seed`` as a Python int, or :class:`InvalidParameterError` unless it is an integer in ``[0, 2**64)``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidParameterError(
            f"seed must be an integer >= 0 (and < 2**64); got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise InvalidParameterError(f"seed must be an integer >= 0 and < 2**64; got {seed}")
    return seed
