"""Preconditioned conjugate gradients in torch, batched over a leading dimension."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from physinv.core.errors import ConvergenceError

__all__ = ["CGResult", "ConvergenceError", "cg"]  # ConvergenceError re-exported: raised by cg's callers


@dataclass
class CGResult:
    x: torch.Tensor
    iterations: int
    converged: bool
    residual_history: list[float] = field(default_factory=list)


def cg(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    precond: Callable[[torch.Tensor], torch.Tensor] | None = None,
    x0: torch.Tensor | None = None,
    rtol: float = 1e-10,
    maxiter: int | None = None,
    batched: bool = False,
) -> CGResult:
    """Solve ``A x = b`` for SPD ``A`` by (preconditioned) conjugate gradients.

    Stops when ``||b - A x|| <= rtol ||b||`` for every system.  With
    ``batched=True`` the first dimension of ``b`` indexes independent systems
    (``matvec`` and ``precond`` act on the whole batch); each has its own step
    lengths.  ``residual_history`` holds the largest relative residual.
    """
    dims = tuple(range(1, b.ndim)) if batched else tuple(range(b.ndim))

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(dim=dims, keepdim=True)

    n = b[0].numel() if batched else b.numel()
    maxiter = maxiter if maxiter is not None else 10 * n
    tiny = torch.finfo(b.dtype).tiny
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    bnorm = dot(b, b).sqrt().clamp_min(tiny)
    z = precond(r) if precond is not None else r
    p = z.clone()
    rz = dot(r, z)
    rr = rz if precond is None else dot(r, r)
    history = [float((rr.sqrt() / bnorm).max())]
    it = 0
    while history[-1] > rtol and it < maxiter:
        ap = matvec(p)
        pap = dot(p, ap)
        # systems of a batch that have converged exactly have p = 0: keep them still
        alpha = torch.where(pap > 0, rz / pap.clamp_min(tiny), 0.0)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, ap, value=-1.0)
        z = precond(r) if precond is not None else r
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(tiny), 0.0)
        p.mul_(beta).add_(z)
        rz = rz_new
        rr = rz if precond is None else dot(r, r)
        it += 1
        history.append(float((rr.sqrt() / bnorm).max()))
    return CGResult(x=x, iterations=it, converged=history[-1] <= rtol, residual_history=history)
