r"""Successive over-relaxation (SOR) and online choice of its relaxation parameter.

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

Following Khodak et al. (2024), "Learning to Relax", a sequence of shifted
Laplacian systems :math:`(A_0 + c_t I) x = b_t` is solved, and the relaxation
parameter for instance ``t`` is chosen online from the iteration counts of the
earlier instances: a fixed omega, a Tsallis-INF bandit over a grid of omegas,
a contextual Tsallis-INF that sees :math:`c_t`, and the instance-optimal

.. math::

    \omega^*(\beta) = 1 + \Bigl(\frac{\beta}{1 + \sqrt{1 - \beta^2}}\Bigr)^2,

with :math:`\beta` the spectral radius of the Jacobi iteration matrix
:math:`I - D^{-1} A` (Young's formula for consistently ordered matrices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError

DEFAULT_TOL = 1e-8
DEFAULT_MAXITER = 10_000
#: The 20 relaxation parameters the bandits choose from: evenly spaced in [1, 1.95].
OMEGA_GRID = np.linspace(1.0, 1.95, 20)
#: c = C_OFFSET + C_SCALE * Beta(a, b); the support of c is [C_OFFSET, C_OFFSET + C_SCALE].
C_OFFSET, C_SCALE = -0.15, 0.6
BETA_PARAMETERS = {"high": (0.5, 1.5), "low": (2.0, 6.0)}


class SORDivergenceError(PhysinvError, RuntimeError):
    """SOR produced a non-finite residual (the matrix is not SPD or omega is outside (0, 2))."""


# --------------------------------------------------------------------------- checks


def _check_omega(omega, batch: int | None = None) -> np.ndarray:
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
    w = _check_omega(omega, batch=1)
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
    w = _check_omega(omega, batch=b.shape[0])
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


# --------------------------------------------------------------------------- instances


class ShiftedLaplacianFamily:
    r"""The systems :math:`(A_0 + c I) x = b` of the "Learning to relax" setup.

    :math:`A_0` is the **unscaled** 5-point stencil of :math:`-\Delta` (4 on the
    diagonal, -1 for each of the 4 neighbours; equivalently :math:`h^2(-\Delta_h)`)
    on the ``n_side x n_side`` interior nodes of an ``(n_side + 2) x (n_side + 2)``
    grid with homogeneous Dirichlet boundary, in lexicographic order.  Its
    eigenvalues are :math:`4\sin^2(j\pi h/2) + 4\sin^2(k\pi h/2)`, ``h = 1/(n_side + 1)``,
    so :math:`\lambda_{\min}(A_0) = 8\sin^2(\pi h/2) = 0.16202` for ``n_side = 10``:
    every shift :math:`c \ge -0.15` keeps :math:`A_0 + cI` positive definite,
    :math:`\lambda_{\min} \ge 0.012` (checked by :meth:`lambda_min` for every
    drawn instance).  The lower end -0.15 of the shift distribution sits just
    above :math:`-\lambda_{\min}(A_0)`, where the systems are nearly singular and
    SOR is slow; with :math:`h^{-2}` scaling the same shifts would hardly change
    the matrix.

    Since the diagonal of :math:`A_0 + cI` is the constant :math:`4 + c`, the
    Jacobi radius is :math:`\beta(c) = \rho(N) / (4 + c)` with :math:`N` the
    off-diagonal part (:math:`\rho(N) = 4\cos(\pi h)`); :math:`\rho(N)` is computed
    once, numerically, and :meth:`jacobi_radius` is exact for every ``c`` (the
    tests check it against :func:`jacobi_spectral_radius`).
    """

    def __init__(self, n_side: int = 10):
        if int(n_side) != n_side or n_side < 2:
            raise InvalidParameterError(f"n_side={n_side!r} must be an integer >= 2")
        self.n_side = int(n_side)
        self.h = 1.0 / (n_side + 1)
        self.n = n_side * n_side
        one = sp.diags([-np.ones(n_side - 1), 2 * np.ones(n_side), -np.ones(n_side - 1)], [-1, 0, 1])
        eye = sp.identity(n_side)
        self.A0 = (sp.kron(eye, one) + sp.kron(one, eye)).tocsr()
        self.diagonal = 4.0
        off = (self.A0 - sp.diags(self.A0.diagonal())).toarray()
        self.off_radius = float(np.max(np.abs(np.linalg.eigvalsh(off))))
        self.lambda_min0 = float(np.linalg.eigvalsh(self.A0.toarray())[0])

    def matrix(self, c: float) -> sp.csr_matrix:
        """:math:`A_0 + c I` (CSR)."""
        return (self.A0 + float(c) * sp.identity(self.n)).tocsr()

    def lambda_min(self, c) -> np.ndarray:
        """Smallest eigenvalue of :math:`A_0 + cI`; raises if any is not positive."""
        lam = self.lambda_min0 + np.asarray(c, dtype=float)
        if np.any(lam <= 0):
            raise InvalidParameterError(f"shift c={np.min(c):.4g} makes A0 + cI indefinite "
                                        f"(lambda_min(A0) = {self.lambda_min0:.4g}); c must exceed -lambda_min(A0)")
        return lam

    def jacobi_radius(self, c) -> np.ndarray:
        r""":math:`\beta(c) = \rho(N) / (4 + c)`, exact because the diagonal is constant."""
        self.lambda_min(c)
        return self.off_radius / (self.diagonal + np.asarray(c, dtype=float))

    def optimal_omega(self, c) -> np.ndarray:
        return optimal_omega(self.jacobi_radius(c))

    def sample(self, count: int, rng: np.random.Generator, variance: str = "high") -> tuple[np.ndarray, np.ndarray]:
        r"""Draw ``count`` instances: shifts ``c`` (count,) and right-hand sides ``b`` (count, n).

        :math:`c = -0.15 + 0.6\,\mathrm{Beta}(0.5, 1.5)` for ``variance="high"`` and
        :math:`c = -0.15 + 0.6\,\mathrm{Beta}(2, 6)` for ``"low"`` (the same affine map;
        standard deviations 0.15 and 0.087).  ``b`` is a radially truncated Gaussian:
        :math:`b \sim N(0, I_n)` conditioned on :math:`\|b\|_2 \le 1.2\sqrt{n}`
        (rejection sampling; about 99.8% of draws are accepted for n = 100).  The
        shifts are drawn first, then the right-hand sides, from ``rng``.
        """
        if variance not in BETA_PARAMETERS:
            raise InvalidParameterError(f"variance={variance!r}; allowed: {', '.join(BETA_PARAMETERS)}")
        if int(count) != count or count < 1:
            raise InvalidParameterError(f"count={count!r} must be a positive integer")
        a, bb = BETA_PARAMETERS[variance]
        c = C_OFFSET + C_SCALE * rng.beta(a, bb, size=int(count))
        self.lambda_min(c)
        return c, radially_truncated_gaussian(int(count), self.n, rng)


def radially_truncated_gaussian(count: int, n: int, rng: np.random.Generator, radius: float | None = None):
    r"""``count`` draws of :math:`N(0, I_n)` conditioned on :math:`\|b\| \le` ``radius``.

    The default radius is :math:`1.2\sqrt{n}` (rejection sampling).
    """
    radius = 1.2 * math.sqrt(n) if radius is None else float(radius)
    out = np.empty((count, n))
    filled = 0
    while filled < count:
        g = rng.standard_normal((count - filled, n))
        g = g[np.linalg.norm(g, axis=1) <= radius]
        out[filled:filled + len(g)] = g
        filled += len(g)
    return out


# --------------------------------------------------------------------------- policies


class OmegaPolicy(Protocol):
    """Choose omega for the next instance (seeing its context), then observe that solve's iteration count."""

    def select(self, context: dict) -> float: ...

    def observe(self, iterations: int) -> None: ...


class FixedOmega:
    """Always the same omega."""

    def __init__(self, omega: float):
        self.omega = float(_check_omega(omega, batch=1)[0])

    def select(self, context: dict) -> float:
        return self.omega

    def observe(self, iterations: int) -> None:
        pass


class InstanceOptimalOmega:
    r"""Young's :math:`\omega^*(\beta_t)` from the instance's Jacobi radius ``context["beta"]``."""

    def select(self, context: dict) -> float:
        return optimal_omega(context["beta"])

    def observe(self, iterations: int) -> None:
        pass


class TsallisINF:
    r"""Tsallis-INF (Zimmert & Seldin 2021): online mirror descent with the 1/2-Tsallis regularizer.

    With cumulative importance-weighted loss estimates :math:`\hat L_{t-1}` and
    learning rate :math:`\eta_t = \eta_0/\sqrt{t}`, the arm probabilities are

    .. math::

        p_{t,i} = 4\,\bigl(\eta_t(\hat L_{t-1,i} - x_t)\bigr)^{-2},

    with the normalizer :math:`x_t < \min_i \hat L_{t-1,i}` found by Newton's
    method so that :math:`\sum_i p_{t,i} = 1`.  After playing arm :math:`I_t` and
    seeing its loss :math:`\ell_t \in [0, 1]`, :math:`\hat L_{t,I_t} \mathrel{+}= \ell_t / p_{t,I_t}`.
    """

    def __init__(self, n_arms: int, rng: np.random.Generator, eta0: float = 2.0):
        if int(n_arms) != n_arms or n_arms < 1:
            raise InvalidParameterError(f"n_arms={n_arms!r} must be a positive integer")
        if not (math.isfinite(eta0) and eta0 > 0):
            raise InvalidParameterError(f"eta0={eta0!r} must be positive")
        self.n_arms, self.rng, self.eta0 = int(n_arms), rng, float(eta0)
        self.cum_loss = np.zeros(self.n_arms)
        self.t = 0
        self.last_arm: int | None = None
        self.last_p: np.ndarray | None = None

    def probabilities(self) -> np.ndarray:
        eta = self.eta0 / math.sqrt(self.t + 1)
        L = self.cum_loss - self.cum_loss.min()
        x = -2.0 / eta  # the best arm alone has weight 1 here, so sum(w) >= 1 and Newton moves left
        for _ in range(100):
            w = 4.0 / (eta * (L - x)) ** 2
            excess = w.sum() - 1.0
            if abs(excess) < 1e-12:
                break
            x -= excess / (eta * np.sum(w**1.5))
        return w / w.sum()

    def select_arm(self) -> int:
        p = self.probabilities()
        self.last_arm = int(self.rng.choice(self.n_arms, p=p))
        self.last_p = p
        return self.last_arm

    def update(self, loss: float) -> None:
        if self.last_arm is None:
            raise PhysinvError("TsallisINF.update called before select_arm")
        if not (0.0 <= loss <= 1.0):
            raise InvalidParameterError(f"loss={loss!r} must lie in [0, 1]")
        self.cum_loss[self.last_arm] += loss / self.last_p[self.last_arm]
        self.t += 1
        self.last_arm = None


class BanditOmega:
    """Tsallis-INF over a grid of omegas; the loss of a solve is ``iterations / maxiter`` in [0, 1]."""

    def __init__(self, rng: np.random.Generator, omegas=OMEGA_GRID, maxiter: int = DEFAULT_MAXITER,
                 eta0: float = 2.0):
        self.omegas = _check_omega(omegas)
        self.maxiter = int(maxiter)
        self.bandit = TsallisINF(self.omegas.size, rng, eta0)

    def select(self, context: dict) -> float:
        return float(self.omegas[self.bandit.select_arm()])

    def observe(self, iterations: int) -> None:
        self.bandit.update(min(iterations, self.maxiter) / self.maxiter)


class ContextualBanditOmega:
    r"""One Tsallis-INF (over the same omega grid) per bin of the shift :math:`c` (``context["c"]``).

    The support :math:`[-0.15, 0.45]` of :math:`c` is cut into ``bins`` equal-width
    bins (values outside go to the end bins); each bin learns from its own instances
    only, with its own time counter.  This is the simple discretized-context
    variant, not the paper's Lipschitz-in-context (ChebCB) algorithm.
    """

    def __init__(self, rng: np.random.Generator, omegas=OMEGA_GRID, bins: int = 5,
                 c_range: tuple[float, float] = (C_OFFSET, C_OFFSET + C_SCALE), maxiter: int = DEFAULT_MAXITER,
                 eta0: float = 2.0):
        if int(bins) != bins or bins < 1:
            raise InvalidParameterError(f"bins={bins!r} must be a positive integer")
        self.omegas = _check_omega(omegas)
        self.edges = np.linspace(c_range[0], c_range[1], int(bins) + 1)
        self.maxiter = int(maxiter)
        self.bandits = [TsallisINF(self.omegas.size, rng, eta0) for _ in range(int(bins))]
        self._active: TsallisINF | None = None

    def bin_of(self, c: float) -> int:
        return int(np.clip(np.searchsorted(self.edges, c, side="right") - 1, 0, len(self.bandits) - 1))

    def select(self, context: dict) -> float:
        self._active = self.bandits[self.bin_of(context["c"])]
        return float(self.omegas[self._active.select_arm()])

    def observe(self, iterations: int) -> None:
        self._active.update(min(iterations, self.maxiter) / self.maxiter)


# --------------------------------------------------------------------------- replay on a precomputed table


@dataclass
class IterationTable:
    """Iteration counts of every instance at every grid omega (and at its omega*), computed once.

    ``grid`` (T, K) holds the counts at ``omegas``; ``optimal`` (T,) the count at
    ``omega_star`` (T,).  A policy replayed on the table sees only the count of the
    omega it picked (bandit feedback): the replay is the same as solving online.
    """

    omegas: np.ndarray
    grid: np.ndarray
    beta: np.ndarray
    omega_star: np.ndarray
    optimal: np.ndarray

    def lookup(self, t: int, omega: float) -> int:
        if np.isclose(omega, self.omega_star[t], rtol=0, atol=1e-12):
            return int(self.optimal[t])
        k = np.flatnonzero(np.isclose(self.omegas, omega, rtol=0, atol=1e-9))
        if k.size == 0:
            raise InvalidParameterError(f"omega={omega} is neither on the table's grid nor instance {t}'s omega*")
        return int(self.grid[t, k[0]])


def build_table(family: ShiftedLaplacianFamily, c: np.ndarray, b: np.ndarray, omegas=OMEGA_GRID, *,
                tol: float = DEFAULT_TOL, maxiter: int = DEFAULT_MAXITER, chunk: int = 2000,
                progress=None) -> IterationTable:
    """Run SOR for every instance at every omega of ``omegas`` and at its omega* (batched)."""
    omegas = _check_omega(omegas)
    T, K = len(c), omegas.size
    beta = family.jacobi_radius(c)
    omega_star = optimal_omega(beta)
    all_w = np.concatenate([np.repeat(omegas[None, :], T, axis=0), omega_star[:, None]], axis=1)  # (T, K+1)
    shift = np.repeat(np.asarray(c)[:, None], K + 1, axis=1)
    rhs = np.repeat(b[:, None, :], K + 1, axis=1)
    flat_w, flat_c, flat_b = all_w.reshape(-1), shift.reshape(-1), rhs.reshape(-1, b.shape[1])
    counts = np.empty(flat_w.size, dtype=np.int64)
    for start in range(0, flat_w.size, chunk):
        sl = slice(start, start + chunk)
        counts[sl] = sor_iterations(family.A0, flat_b[sl], flat_w[sl], shift=flat_c[sl], tol=tol, maxiter=maxiter)
        if progress is not None:
            progress(min(start + chunk, flat_w.size) - start)
    counts = counts.reshape(T, K + 1)
    return IterationTable(omegas=omegas, grid=counts[:, :K], beta=beta, omega_star=omega_star, optimal=counts[:, K])


def replay(policy: OmegaPolicy, table: IterationTable, c: np.ndarray) -> np.ndarray:
    """Run ``policy`` over the sequence; returns the iteration count it incurred on each instance."""
    T = table.grid.shape[0]
    out = np.empty(T, dtype=np.int64)
    for t in range(T):
        omega = policy.select({"c": float(c[t]), "beta": float(table.beta[t]), "t": t})
        out[t] = table.lookup(t, omega)
        policy.observe(int(out[t]))
    return out
