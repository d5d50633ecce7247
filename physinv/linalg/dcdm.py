"""Deep conjugate direction method (DCDM; Kaneda et al. 2023), network-agnostic.

For SPD ``A`` and ``A x = b``, iteration ``k`` takes the residual
``r_k = b - A x_k``, asks a *direction* map (the trained network in the
paper; here any callable) for a search direction

    q = direction(r_k / ||r_k||),

makes it A-orthogonal to the last ``m`` search directions ``p_j`` (``m = 2``
in the paper) by modified Gram-Schmidt in the A-inner product,

    q <- q - (q^T A p_j / p_j^T A p_j) p_j,      j = k-1, k-2,

(the stored ``A p_j`` make this free of extra matvecs), and does an exact
line search along ``p_k = q``:

    alpha = p_k^T r_k / p_k^T A p_k,   x_{k+1} = x_k + alpha p_k,
    r_{k+1} = r_k - alpha A p_k.

Each step minimizes the A-norm of the error along ``p_k``, so the error
never grows for any direction map; with ``direction = identity`` the
iterates equal those of CG in exact arithmetic (``r_k`` is already
A-orthogonal to ``p_{k-2}``, and the projection on ``p_{k-1}`` is CG's
``beta``); with a fixed SPD preconditioner ``M^{-1}`` as the direction map
they equal PCG's.  One matvec per iteration, as in CG.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.linalg.cg import CGResult
from physinv.linalg.solvers import checked_iterative_solve

Direction = Callable[[torch.Tensor], torch.Tensor]


class NotPositiveDefiniteError(InvalidParameterError):
    """``q^T A q <= 0`` for a nonzero search direction: ``A`` is not SPD (or the direction vanished)."""


class DirectionShapeError(ShapeMismatchError, InvalidParameterError):
    """The direction map returned a tensor whose shape differs from the residual's."""


def dcdm(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    direction: Direction,
    x0: torch.Tensor | None = None,
    rtol: float = 1e-6,
    maxiter: int | None = 100,
    batched: bool = False,
    num_orthogonal: int = 2,
    fallback: StallFallback | None = None,
) -> CGResult:
    """Solve ``A x = b`` for SPD ``A`` by deep conjugate directions.

    Parameters
    ----------
    matvec
        ``u -> A u`` (on the whole batch when ``batched``).
    b
        Right-hand side; with ``batched=True`` the first dimension indexes
        independent systems, each with its own step lengths and stopping.
    direction
        Maps the normalized residual ``r / ||r||`` (each system normalized on
        its own; the whole batch in one call) to a search direction of the
        same shape, e.g. a network approximating ``A^{-1}`` up to scale, the
        identity (then DCDM is CG) or a preconditioner.  Its output is cast
        to ``b``'s dtype.
    x0
        Initial guess (default 0).
    rtol
        Stop when ``||b - A x|| <= rtol ||b||`` (recursively updated residual)
        for every system.
    maxiter
        Iteration cap (the paper uses 100); ``None``: 10 times the size of one system, as in ``cg``.
    num_orthogonal
        Number of previous directions to A-orthogonalize against (paper: 2).
    fallback
        ``None`` (the paper's method): the direction map is used throughout.
        A :class:`StallFallback`: once the largest relative residual has
        fallen by less than ``ratio`` over the last ``window`` iterations, the
        rest of the solve uses the residual itself as direction and forgets
        the previous directions (CG restarted from the current iterate); the iteration where this happened is
        stored in ``fallback.switched_at`` (None if it never did).

    Returns
    -------
    CGResult
        ``x``, ``iterations``, ``converged`` and ``residual_history`` (largest
        relative residual over the batch, ``iterations + 1`` entries), as
        :func:`physinv.linalg.cg.cg` returns, so callers can swap the two.

    Raises
    ------
    InvalidParameterError
        NaN/Inf in ``b`` or ``x0``, bad ``rtol``/``maxiter``;
        :class:`NotPositiveDefiniteError` when ``q^T A q <= 0`` for an
        unconverged system; :class:`DirectionShapeError` when the direction
        has another shape than the residual; NaN/Inf in a direction.
    """
    if not torch.is_tensor(b):
        raise InvalidParameterError(f"b must be a torch.Tensor, got {type(b).__name__}")
    if not bool(torch.isfinite(b).all()):
        raise InvalidParameterError(
            f"right-hand side contains {int((~torch.isfinite(b)).sum())} NaN/Inf value(s); all must be finite"
        )
    if not rtol > 0:
        raise InvalidParameterError(f"rtol must be > 0; got {rtol}")
    if maxiter is None:
        maxiter = 10 * (b[0].numel() if batched and b.ndim else b.numel())
    if int(maxiter) < 0:
        raise InvalidParameterError(f"maxiter must be an integer >= 0; got {maxiter}")
    if int(num_orthogonal) < 0:
        raise InvalidParameterError(f"num_orthogonal must be >= 0; got {num_orthogonal}")
    if batched and b.ndim < 1:
        raise ShapeMismatchError("batched=True needs b with a leading batch dimension")
    dims = tuple(range(1, b.ndim)) if batched else tuple(range(b.ndim))

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(dim=dims, keepdim=True)

    tiny = torch.finfo(b.dtype).tiny
    zero = torch.zeros((), dtype=b.dtype, device=b.device)
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        if tuple(x0.shape) != tuple(b.shape):
            raise ShapeMismatchError(f"x0 has shape {tuple(x0.shape)}; b has shape {tuple(b.shape)}")
        if not bool(torch.isfinite(x0).all()):
            raise InvalidParameterError("x0 contains NaN/Inf values; all must be finite")
        x = x0.detach().clone().to(b.dtype)
        r = b - matvec(x)
    bnorm = dot(b, b).sqrt().clamp_min(tiny)
    rnorm = dot(r, r).sqrt()
    history = [float((rnorm / bnorm).max())]
    previous: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (p, A p, p^T A p)
    it = 0
    if fallback is not None:
        fallback.switched_at = None
    while history[-1] > rtol and it < int(maxiter):
        active = rnorm > rtol * bnorm  # systems still iterating
        if fallback is not None and fallback.switched_at is None and fallback.stalled(history):
            fallback.switched_at = it
            previous.clear()  # a true restart: CG's recurrences need p_0 = r_0
        use_residual = fallback is not None and fallback.switched_at is not None
        q = r.clone() if use_residual else direction(r / rnorm.clamp_min(tiny))
        if not torch.is_tensor(q) or tuple(q.shape) != tuple(r.shape):
            got = tuple(q.shape) if torch.is_tensor(q) else type(q).__name__
            raise DirectionShapeError(
                f"direction returned {got} for a residual of shape {tuple(r.shape)}; "
                "it must return a tensor of the residual's shape"
            )
        q = torch.where(active, q.to(dtype=r.dtype, device=r.device), zero)
        for p, ap, pap in previous:  # modified Gram-Schmidt in the A-inner product
            coef = torch.where(pap > 0, dot(q, ap) / pap.clamp_min(tiny), zero)
            q = q - coef * p
        aq = matvec(q)
        qaq = dot(q, aq)
        if not bool(torch.isfinite(qaq).all()):
            raise InvalidParameterError(
                f"iteration {it}: the search direction (or A q) contains NaN/Inf; "
                "the direction map must return finite values"
            )
        bad = active & (qaq <= 0)
        if bool(bad.any()):
            worst = float(torch.where(bad, qaq, zero).min())
            raise NotPositiveDefiniteError(
                f"iteration {it}: q^T A q = {worst:.3e} <= 0 for a search direction; the operator is not "
                "positive definite (DCDM needs SPD A, e.g. h^2(-Laplacian), not the Laplacian itself) "
                "or the direction map returned a direction in the span of the previous ones"
            )
        alpha = torch.where(active, dot(q, r) / qaq.clamp_min(tiny), zero)
        x.addcmul_(alpha, q)
        r.addcmul_(alpha, aq, value=-1.0)
        previous.append((q, aq, torch.where(active, qaq, zero)))
        if len(previous) > int(num_orthogonal):
            previous.pop(0)
        rnorm = dot(r, r).sqrt()
        it += 1
        history.append(float((rnorm / bnorm).max()))
    return CGResult(x=x, iterations=it, converged=history[-1] <= rtol, residual_history=history)


@dataclass
class StallFallback:
    """Switch DCDM to residual (CG) directions when the learned directions stall.

    Stalled: ``history[-1] > ratio * history[-1 - window]``, i.e. the relative
    residual fell by less than the factor ``ratio`` over ``window`` iterations.
    Not part of the paper's method; it makes a learned direction safe to use
    where a solve must reach a tight tolerance (e.g. inside a simulator).
    """

    window: int = 5
    ratio: float = 0.5
    switched_at: int | None = None

    def __post_init__(self):
        if int(self.window) < 1 or not 0.0 < self.ratio < 1.0:
            raise InvalidParameterError(
                f"StallFallback needs window >= 1 and 0 < ratio < 1; got window={self.window}, ratio={self.ratio}"
            )

    def stalled(self, history: list[float]) -> bool:
        return len(history) > self.window and history[-1] > self.ratio * history[-1 - self.window]


class DCDMSolver:
    """DCDM behind the solver interface: ``DCDMSolver(direction).prepare(operator, theta)(b)``.

    Parameters
    ----------
    direction
        A callable ``r -> q`` on batches ``(batch, *state_shape)``, or an
        object with ``prepare(operator, theta) -> callable`` (for directions
        that depend on the operator, e.g. Jacobi or a network conditioned on
        the geometry).
    rtol, maxiter, num_orthogonal
        As in :func:`dcdm`; a solve that misses ``rtol`` raises
        :class:`~physinv.core.errors.ConvergenceError`.
    fallback
        ``None`` or a :class:`StallFallback` (a fresh copy per solve); the
        iterations at which solves switched are kept in ``switched_at``.
    """

    def __init__(self, direction, rtol: float = 1e-6, maxiter: int = 100, num_orthogonal: int = 2,
                 fallback: StallFallback | None = None):
        if not (callable(direction) or hasattr(direction, "prepare")):
            raise InvalidParameterError(
                "direction must be callable r -> q or have prepare(operator, theta) returning one"
            )
        self.direction = direction
        self.rtol = rtol
        self.maxiter = maxiter
        self.num_orthogonal = num_orthogonal
        self.fallback = fallback
        self.iterations: list[int] = []
        self.switched_at: list[int | None] = []
        self.name = "dcdm"

    def prepare(self, operator, theta):
        theta = theta.detach().clone() if torch.is_tensor(theta) else theta
        shape = tuple(operator.state_shape)
        matvec = operator.bind(theta)
        direction = (
            self.direction.prepare(operator, theta) if hasattr(self.direction, "prepare") else self.direction
        )

        def run(flat: torch.Tensor) -> CGResult:
            fallback = None if self.fallback is None else replace(self.fallback)
            result = dcdm(matvec, flat, direction, rtol=self.rtol, maxiter=self.maxiter,
                          batched=True, num_orthogonal=self.num_orthogonal, fallback=fallback)
            if fallback is not None:
                self.switched_at.append(fallback.switched_at)
            return result

        return checked_iterative_solve(
            self.name, run, shape, self.rtol,
            "raise maxiter, retrain the direction network, or use cg-amg / direct", self.iterations)


class JacobiDirection:
    """Direction map ``r -> r / diag(A)`` (DCDM then equals Jacobi-PCG): a sanity baseline."""

    def prepare(self, operator, theta):
        inv = 1.0 / operator.diagonal(theta)
        return lambda r: r * inv.to(dtype=r.dtype, device=r.device)


def identity_direction(r: torch.Tensor) -> torch.Tensor:
    """``r -> r``: DCDM with this map is CG."""
    return r
