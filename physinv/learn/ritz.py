"""Training right-hand sides for DCDM from Lanczos/Ritz vectors of the system matrix.

Lanczos (with full reorthogonalization) on ``A`` started from ``A x``,
``x ~ N(0, 1)``, gives ``m`` Ritz pairs ``(theta_i, v_i)``.  Samples are random
combinations ``b = sum_i c_i w_i v_i`` with ``c_i ~ N(0, 1)`` and weights
``w_i = 9`` for the lowest half of the computed spectrum, 1 above, so the
low end -- where CG struggles -- dominates; each sample is normalized to unit
norm.  Ritz vectors with ``theta_i <= null_tol * theta_max`` (null space, e.g.
the identity rows' complement or singular parts) are dropped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import physinv
from physinv.core.errors import InvalidParameterError
from physinv.core.io import atomic_torch_save


def lanczos_ritz(matvec: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...], steps: int,
                 generator: torch.Generator, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz values ``(m,)`` (ascending) and vectors ``(m, *shape)`` of ``m <= steps`` Lanczos steps."""
    n = math.prod(shape)
    if not 2 <= steps <= n:
        raise InvalidParameterError(f"Lanczos steps must be in [2, {n}]; got {steps}")
    x = torch.randn(shape, generator=generator, dtype=dtype)
    v = matvec(x).reshape(-1)
    v = v / v.norm()
    basis = [v]
    alphas, betas = [], []
    for k in range(steps):
        w = matvec(basis[-1].reshape(shape)).reshape(-1)
        alpha = float(w @ basis[-1])
        alphas.append(alpha)
        q = torch.stack(basis)
        w = w - q.T @ (q @ w)  # full reorthogonalization (twice is enough)
        w = w - q.T @ (q @ w)
        beta = float(w.norm())
        if k == steps - 1 or beta <= 1e-12 * abs(alpha):
            break
        betas.append(beta)
        basis.append(w / beta)
    m = len(alphas)
    tri = np.diag(alphas) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    theta, s = np.linalg.eigh(tri)
    vectors = torch.from_numpy(s.T).to(dtype) @ torch.stack(basis[:m])
    return torch.from_numpy(theta).to(dtype), vectors.reshape((m,) + tuple(shape))


def ritz_rhs(values: torch.Tensor, vectors: torch.Tensor, count: int, generator: torch.Generator,
             low_weight: float = 9.0, null_tol: float = 1e-10) -> torch.Tensor:
    """``count`` unit-norm right-hand sides weighted toward the low end of the spectrum."""
    keep = values > null_tol * values.max()
    values, vectors = values[keep], vectors[keep]
    weights = torch.ones_like(values)
    weights[: len(values) // 2] = low_weight
    coeffs = torch.randn((count, len(values)), generator=generator, dtype=vectors.dtype) * weights
    b = coeffs @ vectors.reshape(len(values), -1)
    b = b / b.norm(dim=1, keepdim=True)
    return b.reshape((count,) + tuple(vectors.shape[1:]))


def make_training_set(matvec, shape: tuple[int, ...], count: int, steps: int, seed: int,
                      path: str | Path | None = None, params: dict | None = None) -> dict:
    """Generate (and optionally save atomically) a DCDM training set with its parameters and seed."""
    gen = torch.Generator().manual_seed(seed)
    values, vectors = lanczos_ritz(matvec, shape, steps, gen)
    rhs = ritz_rhs(values, vectors, count, gen).to(torch.float32)
    data = {"rhs": rhs, "ritz_values": values, "seed": seed, "shape": tuple(shape),
            "lanczos_steps": steps, "count": count, "params": dict(params or {}),
            "physinv_version": physinv.__version__}
    if path is not None:
        atomic_torch_save(data, path)
    return data
