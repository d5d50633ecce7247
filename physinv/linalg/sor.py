r"""Successive over-relaxation (SOR).

SOR for :math:`A x = b` splits :math:`A = L + D + U` (strictly lower, diagonal,
strictly upper) and iterates, from :math:`x_0 = 0`,

.. math::

    x_{k+1} = (D + \omega L)^{-1}\bigl(\omega b - (\omega U + (\omega - 1) D)\, x_k\bigr),

until :math:`\|b - A x_k\|_2 \le \mathrm{tol}\,\|b\|_2`.  ``omega = 1`` is
Gauss-Seidel.  The iteration count of one sweep order (the natural row order)
is what is counted; the solver processes the rows in *levels* (rows with no
coupling among them, in an order consistent with the natural one), which gives
exactly the arithmetic of the row-by-row sweep but vectorizes, and runs many
systems (instances x omegas) at once.

For consistently ordered matrices Young's formula gives the optimal parameter

.. math::

    \omega^*(\beta) = 1 + \Bigl(\frac{\beta}{1 + \sqrt{1 - \beta^2}}\Bigr)^2,

with :math:`\beta` the spectral radius of the Jacobi iteration matrix
:math:`I - D^{-1} A` (:func:`optimal_omega`).  Choosing omega online for a
sequence of systems ("Learning to relax") is :mod:`physinv.learn.relaxation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError

DEFAULT_TOL = 1e-8
DEFAULT_MAXITER = 10_000


class SORDivergenceError(PhysinvError, RuntimeError):
    """SOR produced a non-finite residual (the matrix is not SPD or omega is outside (0, 2))."""


# --------------------------------------------------------------------------- checks


def check_omega(omega, batch: int | None = None) -> np.ndarray:
    w = np.atleast_1d(np.asarray(omega, dtype=float))
    if w.ndim != 1:
        raise ShapeMismatchError(f"omega must be a scalar or a 1-D array, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0.0) or np.any(w >= 2.0):
        bad = w[~(np.isfinite(w) & (w > 0) & (w < 2))][0]
        raise InvalidParameterError(
            f"SOR relaxation parameter omega={bad!r} is not allowed; omega must lie in the open interval (0, 2)"
        )
    if batch is not None and w.size not in (1, batch):
        raise ShapeMismatchError(f"omega has {w.size} values but there are {batch} systems; give 1 or {batch}")
    return w


def _check_matrix(A) -> sp.csr_matrix:
    if not sp.issparse(A):
        A = np.asarray(A, dtype=float)
        if A.ndim != 2:
            raise ShapeMismatchError(f"A must be a 2-D matrix, got shape {A.shape}")
    A = sp.csr_matrix(A, dtype=float)
    if A.shape[0] != A.shape[1]:
        raise ShapeMismatchError(f"A must be square, got shape {A.shape}")
    if not np.all(np.isfinite(A.data)):
        raise InvalidParameterError("A has NaN or Inf entries; all entries must be finite")
    return A


def _check_rhs(b, n: int) -> np.ndarray:
    b = np.asarray(b, dtype=float)
    if b.ndim not in (1, 2) or b.shape[-1] != n:
        raise ShapeMismatchError(f"b must have shape ({n},) or (batch, {n}) to match A of shape ({n}, {n}); "
                                 f"got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise InvalidParameterError("b has NaN or Inf entries; the right-hand side must be finite")
    return b


def _check_diagonal(d: np.ndarray) -> None:
    if np.any(d <= 0.0):
        i = int(np.argmax(d <= 0.0))
        raise InvalidParameterError(
            f"SOR needs a positive diagonal; diagonal entry {i} of A (plus shift) is {d.flat[i]:.6g}. "
            "SOR converges for symmetric positive definite A and 0 < omega < 2"
        )


# --------------------------------------------------------------------------- the iteration


def sweep_levels(A: sp.csr_matrix) -> list[np.ndarray]:
    """Group the rows of ``A`` into levels that a natural-order sweep may update together.

    Row ``j`` depends on row ``i < j`` when ``a_ij != 0`` or ``a_ji != 0``
    (``j`` reads the new ``x_i``, or ``i`` must read the old ``x_j``); a row's
    level is one more than the highest level it depends on.  Rows of one level
    are uncoupled, so updating them at once is exactly the sequential sweep.
    For the 5-point Laplacian in lexicographic order the levels are the
    anti-diagonals (wavefronts).
    """
    n = A.shape[0]
    pattern = sp.csr_matrix((np.ones_like(A.data), A.indices, A.indptr), shape=A.shape)
    lower = sp.tril(pattern + pattern.T, k=-1).tocsr()
    level = np.zeros(n, dtype=np.int64)
    for j in range(n):
        deps = lower.indices[lower.indptr[j]:lower.indptr[j + 1]]
        if deps.size:
            level[j] = level[deps].max() + 1
    order = np.argsort(level, kind="stable")
    bounds = np.searchsorted(level[order], np.arange(level.max() + 2))
    return [order[bounds[k]:bounds[k + 1]] for k in range(level.max() + 1)]


@dataclass
class _Batch:
    x: np.ndarray  # (n, B)
    b: np.ndarray  # (n, B)
    d: np.ndarray  # (n, B)
    w: np.ndarray  # (1, B)
    bnorm: np.ndarray  # (B,)
    index: np.ndarray  # (B,) positions in the caller's batch


def _run(A: sp.csr_matrix, b: np.ndarray, omega: np.ndarray, shift: np.ndarray, tol: float, maxiter: int,
         history: bool = False, progress=None):
    """Batched SOR on ``(A + shift_k I) x_k = b_k`` with ``omega_k``; columns are systems."""
    n, batch = b.shape[1], b.shape[0]
    diag = A.diagonal()
    off = (A - sp.diags(diag)).tocsr()
    off.eliminate_zeros()
    levels = sweep_levels(A)
    rows = [off[s] for s in levels]
    d = diag[:, None] + shift[None, :] * np.ones((1, batch))
    _check_diagonal(d)
    bt = np.ascontiguousarray(b.T)
    st = _Batch(x=np.zeros((n, batch)), b=bt, d=d, w=np.broadcast_to(omega, (batch,))[None, :].copy(),
                bnorm=np.linalg.norm(bt, axis=0), index=np.arange(batch))
    iterations = np.full(batch, maxiter, dtype=np.int64)
    converged = np.zeros(batch, dtype=bool)
    x_out = np.zeros((n, batch)) if history else None
    finite = np.ones(batch, dtype=bool)
    hist = [np.ones(batch)] if history else None
    zero_b = st.bnorm == 0.0
    iterations[zero_b], converged[zero_b] = 0, True
    keep = ~zero_b
    st = _select(st, keep)
    k = 0
    while st.index.size and k < maxiter:
        k += 1
        for s, r in zip(levels, rows):
            xs = st.x[s]
            st.x[s] = xs + st.w * ((st.b[s] - r @ st.x) / st.d[s] - xs)
        res = np.linalg.norm(st.b - off @ st.x - st.d * st.x, axis=0) / st.bnorm
        if history:
            h = np.full(batch, np.nan)
            h[st.index] = res
            hist.append(h)
        done = res <= tol
        bad = ~np.isfinite(res)
        if np.any(done | bad):
            if history:
                x_out[:, st.index[done | bad]] = st.x[:, done | bad]
            iterations[st.index[done]] = k
            converged[st.index[done]] = True
            finite[st.index[bad]] = False
            st = _select(st, ~(done | bad))
        if progress is not None:
            progress(k, st.index.size)
    if history:
        x_out[:, st.index] = st.x
    return iterations, converged, finite, x_out, hist


def _select(st: _Batch, keep: np.ndarray) -> _Batch:
    return _Batch(x=st.x[:, keep], b=st.b[:, keep], d=st.d[:, keep], w=st.w[:, keep], bnorm=st.bnorm[keep],
                  index=st.index[keep])


@dataclass
class SORResult:
    """Solution, iteration count and relative residual history ``||b - A x_k|| / ||b||``, k = 0..iterations."""

    x: np.ndarray
    iterations: int
    converged: bool
    residual_history: np.ndarray = field(default_factory=lambda: np.zeros(0))


def sor(A, b, omega: float, *, tol: float = DEFAULT_TOL, maxiter: int = DEFAULT_MAXITER) -> SORResult:
    r"""Solve ``A x = b`` by SOR from ``x = 0`` (see the module docstring for the iteration).

    Parameters
    ----------
    A : scipy sparse matrix or array, shape ``(n, n)``
        Positive diagonal required (SOR converges for SPD ``A``).
    b : array, shape ``(n,)``
    omega : float in (0, 2)
    tol : float
        Stop when ``||b - A x_k||_2 <= tol ||b||_2``.
    maxiter : int
        At most this many sweeps; ``converged`` is False when it is reached.

    Raises
    ------
    InvalidParameterError
        omega outside (0, 2), NaN/Inf in ``A`` or ``b``, a non-positive diagonal entry.
    ShapeMismatchError
        ``A`` not square or ``b`` not of length ``n``.
    SORDivergenceError
        The residual became non-finite (``A`` is not SPD).
    """
    A = _check_matrix(A)
    b = _check_rhs(b, A.shape[0])
    if b.ndim != 1:
        raise ShapeMismatchError(f"sor solves one system; b must have shape ({A.shape[0]},), got {b.shape} "
                                 "(use sor_iterations for a batch)")
    w = check_omega(omega, batch=1)
    _check_tolerances(tol, maxiter)
    its, conv, finite, x, hist = _run(A, b[None, :], w, np.zeros(1), tol, maxiter, history=True)
    if not finite[0]:
        raise SORDivergenceError(f"SOR with omega={w[0]} diverged (non-finite residual after "
                                 f"{len(hist) - 1} sweeps); A must be symmetric positive definite")
    if conv[0] and its[0] == 0:
        return SORResult(np.zeros_like(b), 0, True, np.array([0.0]))
    history = np.array([h[0] for h in hist])
    return SORResult(x=x[:, 0], iterations=len(history) - 1, converged=bool(conv[0]), residual_history=history)


def _check_tolerances(tol: float, maxiter: int) -> None:
    if not (math.isfinite(tol) and tol > 0):
        raise InvalidParameterError(f"tol={tol!r} must be a positive finite number")
    if int(maxiter) != maxiter or maxiter < 1:
        raise InvalidParameterError(f"maxiter={maxiter!r} must be a positive integer")


def sor_iterations(A, b, omega, *, shift=None, tol: float = DEFAULT_TOL, maxiter: int = DEFAULT_MAXITER,
                   progress=None) -> np.ndarray:
    """Iteration counts of SOR on a batch of systems ``(A + shift_k I) x = b_k`` with ``omega_k``.

    Parameters
    ----------
    A : sparse matrix, shape ``(n, n)``
        The common matrix; ``shift`` adds a per-system multiple of the identity.
    b : array, shape ``(batch, n)``
    omega : float or array, shape ``(batch,)``
    shift : None or array, shape ``(batch,)``
    progress : callable ``(sweep, active_systems)`` or None

    Returns
    -------
    numpy.ndarray of int, shape ``(batch,)``
        Sweeps to reach ``||r|| <= tol ||b||``; ``maxiter`` for a system that did
        not converge within the cap or whose residual became non-finite (the
        loss of a diverging solve is the cap).
    """
    A = _check_matrix(A)
    b = _check_rhs(b, A.shape[0])
    b = np.atleast_2d(b)
    w = check_omega(omega, batch=b.shape[0])
    shift = np.zeros(b.shape[0]) if shift is None else np.asarray(shift, dtype=float).reshape(-1)
    if shift.size == 1:
        shift = np.full(b.shape[0], float(shift[0]))
    if shift.size != b.shape[0]:
        raise ShapeMismatchError(f"shift has {shift.size} values but there are {b.shape[0]} systems")
    if not np.all(np.isfinite(shift)):
        raise InvalidParameterError("shift has NaN or Inf entries")
    _check_tolerances(tol, maxiter)
    its, _, _, _, _ = _run(A, b, w, shift, tol, int(maxiter), progress=progress)
    return its


# --------------------------------------------------------------------------- Jacobi radius, omega*


def jacobi_spectral_radius(A) -> float:
    r"""Spectral radius :math:`\beta` of the Jacobi iteration matrix :math:`I - D^{-1} A` (dense eigenvalues)."""
    A = _check_matrix(A)
    d = A.diagonal()
    _check_diagonal(d)
    J = np.eye(A.shape[0]) - A.toarray() / d[:, None]
    return float(np.max(np.abs(np.linalg.eigvals(J))))


def optimal_omega(beta) -> np.ndarray | float:
    r"""Young's optimal relaxation :math:`\omega^* = 1 + (\beta / (1 + \sqrt{1 - \beta^2}))^2`, for 0 <= beta < 1."""
    beta = np.asarray(beta, dtype=float)
    if not np.all(np.isfinite(beta)) or np.any(beta < 0) or np.any(beta >= 1):
        raise InvalidParameterError(f"the Jacobi spectral radius must lie in [0, 1) for omega*, got {beta}")
    out = 1.0 + (beta / (1.0 + np.sqrt(1.0 - beta**2))) ** 2
    return float(out) if out.ndim == 0 else out
