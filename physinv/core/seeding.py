"""Reproducible seeding of Python, NumPy and torch generators."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed ``random``, NumPy's legacy state and torch (CPU and CUDA).

    Returns a fresh :class:`numpy.random.Generator` seeded with ``seed`` for
    code that prefers an explicit generator.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
