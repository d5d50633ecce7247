r"""Learning to relax (Khodak et al. 2024): choosing the SOR parameter online for a sequence of systems.

A sequence of shifted Laplacian systems :math:`(A_0 + c_t I) x = b_t`
(:class:`ShiftedLaplacianFamily`) is solved by SOR (:mod:`physinv.linalg.sor`),
and the relaxation parameter for instance ``t`` is chosen from the iteration
counts of the earlier instances: a fixed omega, a Tsallis-INF bandit over a
grid of omegas, a contextual Tsallis-INF that sees :math:`c_t`, and the
instance-optimal :math:`\omega^*(\beta(c_t))` of Young's formula.  Policies are
replayed against a precomputed table of iteration counts (:func:`build_table`,
:func:`replay`), so every policy sees the same instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.linalg.sor import DEFAULT_MAXITER, DEFAULT_TOL, check_omega, optimal_omega, sor_iterations

#: The 20 relaxation parameters the bandits choose from: evenly spaced in [1, 1.95].
OMEGA_GRID = np.linspace(1.0, 1.95, 20)
#: c = C_OFFSET + C_SCALE * Beta(a, b); the support of c is [C_OFFSET, C_OFFSET + C_SCALE].
C_OFFSET, C_SCALE = -0.15, 0.6
BETA_PARAMETERS = {"high": (0.5, 1.5), "low": (2.0, 6.0)}


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
        self.omega = float(check_omega(omega, batch=1)[0])

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
        self.omegas = check_omega(omegas)
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
        self.omegas = check_omega(omegas)
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
    omegas = check_omega(omegas)
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
