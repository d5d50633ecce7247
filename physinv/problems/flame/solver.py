r"""The flame-speed eigenvalue problem, discretized and solved by Newton (NumPy/SciPy; no autograd).

Boundary-value problem
----------------------
Unknowns: ``T_1..T_N`` (K) at the nodes ``0 = x_0 < ... < x_N = L`` (m) and
``s_L`` (m/s).  With ``m = rho_in s_L`` (kg/(m^2 s)) and the closures of
:mod:`physinv.problems.flame.model`, the ``N + 1`` equations (W/m^3) are

.. math::

    F_0 &= m c_p\,(D^+_0 T - T_x^0) = 0,\qquad T_0 = T_{in}\ \text{(eliminated)},\\
    F_i &= m c_p\,(D_1 T)_i - \lambda\,(D_2 T)_i - q_F\,\omega(T_i; s_L) = 0,\quad i = 1..N-1,\\
    F_N &= m c_p\,(D^-_N T) - q_F\,\omega(T_N; s_L) = 0,

with second-order central differences ``D_1, D_2`` on a possibly non-uniform
grid and second-order one-sided ``D^+_0, D^-_N``.  ``F_N`` is the outflow
condition ``T_xx(L) = 0`` (the energy equation without diffusion): it selects
the trajectory without the exponentially growing mode ``exp(k x)``,
``k = m c_p / lambda``, of the burnt equilibrium ``(T, T_x) = (T_max, 0)``
(its other eigenvalue, 0, is the fuel-depletion direction,
``T_max - T ~ x^(-5/3)`` for ``n = 1.6``).  ``s_L`` is the unique speed for
which the flame from ``x = 0`` burns out monotonically; imposing
``T_x(L) = 0`` instead moves it by a relative ``~exp(-k (L - x_flame))``,
below 1e-6 here.

The reference solver of FlamePINN-1D shoots from ``x = 0`` with the same two
inlet conditions and bisects on ``s_L`` (too small: ``T_x`` turns negative,
the flame falls back; too large: ``T`` overshoots ``T_max``).

Method
------
Damped Newton (error-oriented, Deuflhard-style monotonicity test) with a
sparse LU of the exact Jacobian, assembled analytically (banded ``T``
columns plus the dense ``s_L`` column), started from a vectorized RK4
shooting solution (bisection on ``s_L``).  ``s_L`` converges as ``h^2`` (the
FlamePINN-1D shooting reference as ``h``; its 10,000-point values lie about
0.06 % above the limit, see ``docs/problems/flame.md``).  The LU factors of the last
Newton step are kept on the :class:`FlameSolution` for the implicit adjoint
of :mod:`physinv.problems.flame.simulator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from physinv.core.errors import ConvergenceError, InvalidParameterError
from physinv.problems.flame.model import (
    DEFAULT_PARAMS,
    FlameProblem,
    algebraic_fields,
    constant_tensors,
    energy_residual,
    make_problem,
    reaction_rate_derivatives,
)

__all__ = [
    "DEFAULT_NODES",
    "BURNOUT_TOL",
    "FlameConvergenceError",
    "FlameSolution",
    "Stencils",
    "make_grid",
    "discrete_residual",
    "jacobian",
    "shoot",
    "solve_discrete",
    "solve_flame",
    "flame_speed",
    "interpolation_weights",
]

#: Default number of grid nodes (uniform): s_L to ~1e-5 relative (see docs).
DEFAULT_NODES = 1501

#: Largest accepted ``(T_max - T(L)) / (T_max - T_in)``: the flame must have burnt out.
BURNOUT_TOL = 0.05


class FlameConvergenceError(ConvergenceError):
    """The flame solve failed; the message names the cause (no bracket, Newton, unphysical)."""


def make_grid(grid=None, length: float = DEFAULT_PARAMS["length"]) -> np.ndarray:
    """Grid nodes ``x_0 = 0 < x_1 < ... < x_N = L`` (m).

    ``grid`` is a node count (uniform grid; >= 5, default :data:`DEFAULT_NODES`)
    or an increasing array of nodes from 0 to ``length``.
    """
    if grid is None:
        grid = DEFAULT_NODES
    if isinstance(grid, (int, np.integer)):
        if grid < 5:
            raise InvalidParameterError(f"a flame grid needs at least 5 nodes; got {grid}")
        return np.linspace(0.0, length, int(grid))
    x = np.asarray(grid.detach().cpu() if torch.is_tensor(grid) else grid, dtype=np.float64).ravel()
    if x.size < 5:
        raise InvalidParameterError(f"a flame grid needs at least 5 nodes; got {x.size}")
    if not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
        raise InvalidParameterError("grid nodes must be finite and strictly increasing")
    if abs(x[0]) > 1e-12 * length or abs(x[-1] - length) > 1e-9 * length:
        raise InvalidParameterError(f"grid must span [0, {length}] m; got [{x[0]}, {x[-1]}]")
    x = x.copy()
    x[0], x[-1] = 0.0, length
    return x


# ----------------------------------------------------------------------------------------------
# discretization


class Stencils:
    """Second-order finite-difference weights on a (non-uniform) grid ``x``."""

    def __init__(self, x: np.ndarray):
        self.x = x
        n = x.size - 1  # N: index of the last node
        self.N = n
        hm, hp = x[1:-1] - x[:-2], x[2:] - x[1:-1]  # interior nodes 1..N-1
        s = hm + hp
        # T_x at interior nodes (derivative of the quadratic through 3 nodes)
        self.d1 = np.stack([-hp / (hm * s), (hp - hm) / (hm * hp), hm / (hp * s)], axis=1)
        # T_xx at interior nodes
        self.d2 = np.stack([2.0 / (hm * s), -2.0 / (hm * hp), 2.0 / (hp * s)], axis=1)
        h1, h2 = x[1] - x[0], x[2] - x[1]
        self.left = np.array([-(2 * h1 + h2) / (h1 * (h1 + h2)), (h1 + h2) / (h1 * h2), -h1 / (h2 * (h1 + h2))])
        a, b = x[-1] - x[-2], x[-2] - x[-3]
        self.right = np.array([a / (b * (a + b)), -(a + b) / (a * b), (2 * a + b) / (a * (a + b))])  # T_{N-2..N}
        self._torch: dict = {}

    def tensors(self, dtype=torch.float64, device=None) -> dict:
        key = (dtype, str(device))
        if key not in self._torch:
            t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
            self._torch[key] = {"d1": t(self.d1), "d2": t(self.d2), "left": t(self.left), "right": t(self.right)}
        return self._torch[key]


def discrete_residual(Tu: torch.Tensor, s: torch.Tensor, prob: FlameProblem, st: Stencils, constants) -> torch.Tensor:
    """``F(T_1..T_N, s_L)`` (N + 1 rows, W/m^3): inlet gradient, energy balance, outflow (torch, differentiable).

    ``constants``: :func:`~physinv.problems.flame.model.constant_tensors`, possibly with tensors to differentiate.
    """
    w = st.tensors(Tu.dtype, Tu.device)
    T0 = torch.full((1,), prob.T_in, dtype=Tu.dtype, device=Tu.device)
    T = torch.cat([T0, Tu])
    Tx = w["d1"][:, 0] * T[:-2] + w["d1"][:, 1] * T[1:-1] + w["d1"][:, 2] * T[2:]
    Txx = w["d2"][:, 0] * T[:-2] + w["d2"][:, 1] * T[1:-1] + w["d2"][:, 2] * T[2:]
    TxL = (w["right"] * T[-3:]).sum()
    # nodes 1..N: the energy equation, at x_N with T_xx(L) = 0 (the outflow condition)
    energy = energy_residual(Tu, torch.cat([Tx, TxL.reshape(1)]), torch.cat([Txx, Txx.new_zeros(1)]),
                             s, prob, constants)
    rho_in = prob.p / (constants["R"] / constants["W"] * prob.T_in)
    Tx0 = (w["left"] * T[:3]).sum()
    inlet = rho_in * s * constants["cp"] * (Tx0 - constants["dTdx0"])
    return torch.cat([inlet.reshape(1), energy])


# ----------------------------------------------------------------------------------------------
# initial guess: vectorized RK4 shooting


def shoot(prob: FlameProblem, s: np.ndarray, n_steps: int, record: bool = False):
    """Integrate ``T' = G, G' = (m c_p G - q_F omega) / lambda`` from ``x = 0`` for each ``s``.

    Returns the status per candidate (-1: ``T_x < 0``, falls back, s too small;
    +1: ``T > T_max``, s too large; 0: neither within the domain) and, with
    ``record``, the temperature path (clipped at ``T_max`` after a failure).
    """
    pr = prob.params
    Tin, Tmax = prob.T_in, prob.T_max
    k = prob.rho_in * s * pr["cp"] / pr["lam"]

    def rhs(T, G):
        omega = algebraic_fields(np.clip(T, 1.0, Tmax), s, prob)["omega"]
        return G, k * G - pr["qF"] * omega / pr["lam"]

    h = prob.length / n_steps
    T = np.full(s.shape, Tin)
    G = np.full(s.shape, pr["dTdx0"])
    status = np.zeros(s.shape, dtype=int)
    path = [T.copy()] if record else None
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(n_steps):
            k1 = rhs(T, G)
            k2 = rhs(T + 0.5 * h * k1[0], G + 0.5 * h * k1[1])
            k3 = rhs(T + 0.5 * h * k2[0], G + 0.5 * h * k2[1])
            k4 = rhs(T + h * k3[0], G + h * k3[1])
            T = T + h / 6.0 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            G = G + h / 6.0 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            alive = status == 0
            status[alive & (G < 0)] = -1
            status[alive & (G >= 0) & ((T > Tmax) | ~np.isfinite(T))] = 1
            G = np.where(status == 0, G, 0.0)
            T = np.where(np.isfinite(T), np.minimum(T, Tmax), Tmax)
            if record:
                path.append(np.maximum(T, path[-1]))
            if not record and np.all(status != 0):
                break
    return status, (np.array(path) if record else None)


def _shooting_guess(prob: FlameProblem, n_steps: int = 240, candidates: int = 12, sweeps: int = 12,
                    rtol: float = 1e-5):
    """Bracket ``s_L`` by shooting; returns ``(s_guess, x_path, T_path)``."""
    lo, hi = 1e-3, 30.0
    s = np.geomspace(lo, hi, 4 * candidates)
    for sweep in range(sweeps):
        status, _ = shoot(prob, s, n_steps)
        small, large = s[status == -1], s[status == 1]
        if sweep == 0 and (small.size == 0 or large.size == 0):
            why = ("every trial speed falls back (T_x < 0)" if large.size == 0 else
                   f"no trial speed makes the flame fall back (T_x < 0) within the {prob.length * 1e3:g} mm domain: "
                   "the flame is too slow/thick for the domain (use a longer domain or a larger phi)")
            raise FlameConvergenceError(
                f"no flame-speed bracket in [{lo}, {hi}] m/s by shooting (phi={prob.phi}, T_in={prob.T_in} K): {why}"
            )
        lo = small.max() if small.size else lo
        hi = large.min() if large.size else hi
        undecided = (status == 0) & (s > lo) & (s < hi)  # survives the whole domain: as close as shooting gets
        if np.any(undecided) or (hi - lo) <= rtol * hi:
            break
        s = np.linspace(lo, hi, candidates + 2)[1:-1]
    s_guess = 0.5 * (lo + hi)
    _, path = shoot(prob, np.array([s_guess]), n_steps, record=True)
    return s_guess, np.linspace(0.0, prob.length, n_steps + 1), path[:, 0]


def jacobian(Tu: np.ndarray, s: float, prob: FlameProblem, st: Stencils) -> sp.csc_matrix:
    """Exact sparse Jacobian ``dF/d(T_1..T_N, s_L)`` of :func:`discrete_residual` (analytic).

    Rows as in :func:`discrete_residual`; columns ``T_1..T_N`` then ``s_L``.  Checked
    against autograd in the tests.
    """
    pr = prob.params
    N = st.N
    T = np.concatenate([[prob.T_in], Tu])
    mcp = prob.rho_in * s * pr["cp"]
    dmcp = prob.rho_in * pr["cp"]
    omega, w_T, w_s = reaction_rate_derivatives(T, s, prob)
    qF, lam = pr["qF"], pr["lam"]
    rows, cols, vals = [], [], []
    # row 0: mcp (left . T_{0..2} - dTdx0)
    Tx0 = st.left @ T[:3]
    rows += [0, 0]
    cols += [0, 1]
    vals += [mcp * st.left[1], mcp * st.left[2]]
    # interior rows i = 1..N-1: mcp d1 . T - lam d2 . T - qF omega_i
    i = np.arange(1, N)
    coef = mcp * st.d1 - lam * st.d2  # (N-1, 3) for nodes i-1, i, i+1
    coef[:, 1] -= qF * w_T[1:-1]
    for k, off in enumerate((-1, 0, 1)):
        node = i + off
        keep = node >= 1  # node 0 is the fixed inlet temperature
        rows.append(i[keep])
        cols.append(node[keep] - 1)
        vals.append(coef[keep, k])
    Tx = st.d1[:, 0] * T[:-2] + st.d1[:, 1] * T[1:-1] + st.d1[:, 2] * T[2:]
    # row N: mcp right . T_{N-2..N} - qF omega_N
    cr = mcp * st.right
    cr[2] -= qF * w_T[-1]
    rows.append(np.full(3, N))
    cols.append(np.arange(N - 3, N))
    vals.append(cr)
    # s column
    col_s = np.concatenate([[dmcp * (Tx0 - pr["dTdx0"])], dmcp * Tx - qF * w_s[1:-1],
                            [dmcp * (st.right @ T[-3:]) - qF * w_s[-1]]])
    rows.append(np.arange(N + 1))
    cols.append(np.full(N + 1, N))
    vals.append(col_s)
    rows = np.concatenate([np.atleast_1d(np.asarray(r)) for r in rows])
    cols = np.concatenate([np.atleast_1d(np.asarray(c)) for c in cols])
    vals = np.concatenate([np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in vals])
    return sp.csc_matrix((vals, (rows, cols)), shape=(N + 1, N + 1))


def _newton(prob: FlameProblem, st: Stencils, T_guess: np.ndarray, s_guess: float, *, tol: float, max_iter: int):
    """Damped Newton (error-oriented, Deuflhard-style monotonicity test) on ``F = 0``.

    Returns ``(Tu, s, lu, iterations, step_norm)``; ``lu`` factors the Jacobian at
    the returned point.  Raises :class:`FlameConvergenceError`.
    """
    constants = constant_tensors(prob)
    dT_scale = prob.T_max - prob.T_in
    z = np.concatenate([T_guess[1:], [s_guess]])

    def scaled(dz):
        return max(np.max(np.abs(dz[:-1])) / dT_scale, abs(dz[-1]) / abs(z[-1]))

    def F(zz):
        with torch.no_grad():
            r = discrete_residual(torch.from_numpy(zz[:-1]), torch.tensor(zz[-1], dtype=torch.float64), prob, st,
                                  constants)
        return r.numpy()

    def factor(zz):
        J = jacobian(zz[:-1], float(zz[-1]), prob, st)
        try:
            with np.errstate(all="ignore"):
                return spla.splu(J)
        except RuntimeError as exc:  # exactly singular
            raise FlameConvergenceError(f"flame Newton: singular Jacobian ({exc})") from None

    lam_damp = 1.0
    norm = np.inf
    for it in range(1, max_iter + 1):
        lu = factor(z)
        dz = -lu.solve(F(z))
        if not np.all(np.isfinite(dz)):
            raise FlameConvergenceError(f"flame Newton: non-finite Newton step at iteration {it}")
        norm = scaled(dz)
        if norm <= tol:
            z = z + dz
            return z[:-1], z[-1], factor(z), it, norm
        lam_damp = min(1.0, 2.0 * lam_damp)
        while True:
            trial = z + lam_damp * dz
            ok = trial[-1] > 0 and np.all(trial[:-1] > 0)
            if ok:
                dz_bar = -lu.solve(F(trial))
                ok = np.all(np.isfinite(dz_bar)) and scaled(dz_bar) <= (1.0 - 0.25 * lam_damp) * norm
            if ok:
                z = trial
                break
            lam_damp *= 0.5
            if lam_damp < 1e-6:
                raise FlameConvergenceError(
                    f"flame Newton: damping factor fell below 1e-6 at iteration {it} "
                    f"(scaled step {norm:.3e}); the initial guess is too far from a flame solution"
                )
    raise FlameConvergenceError(
        f"flame Newton: no convergence in {max_iter} iterations (last scaled step {norm:.3e} > tol {tol:g})"
    )


# ----------------------------------------------------------------------------------------------
# solutions


@dataclass
class FlameSolution:
    """A converged flame on grid ``x``.

    Attributes
    ----------
    problem
        The :class:`FlameProblem`.
    x
        Nodes, m, shape ``(n,)``.
    T, u, rho, Y_F, omega
        Temperature (K), velocity (m/s), density (kg/m^3), fuel mass fraction,
        reaction rate (kg/(m^3 s)) at the nodes.
    s_L
        Laminar flame speed, m/s.
    iterations
        Newton iterations; ``step_norm`` the last scaled Newton step.
    jacobian_lu
        Sparse LU factors (``scipy.sparse.linalg.splu``) of the Jacobian
        ``F_z`` at the solution, for the implicit adjoint.
    """

    problem: FlameProblem
    x: np.ndarray
    T: np.ndarray
    u: np.ndarray
    rho: np.ndarray
    Y_F: np.ndarray
    omega: np.ndarray
    s_L: float
    iterations: int
    step_norm: float
    jacobian_lu: object = field(default=None, repr=False)

    @property
    def mass_flux(self) -> np.ndarray:
        """``rho u`` at the nodes, kg/(m^2 s): constant ``rho_in s_L``."""
        return self.rho * self.u

    def at(self, x_obs) -> dict:
        """Fields at points ``x_obs`` (m): ``T`` by quadratic interpolation, the rest from ``T``."""
        idx, wts = interpolation_weights(self.x, x_obs)
        T = np.sum(wts * self.T[idx], axis=1)
        alg = algebraic_fields(torch.from_numpy(T), torch.tensor(self.s_L, dtype=torch.float64), self.problem,
                               constant_tensors(self.problem))
        return {"x": np.asarray(x_obs, dtype=np.float64).ravel(), "T": T,
                **{k: v.numpy() for k, v in alg.items()}}


def interpolation_weights(x_nodes: np.ndarray, x_obs) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic Lagrange interpolation on the 3 nodes nearest each point.

    Returns ``(idx, weights)``, both ``(m, 3)``: ``f(x_obs) ~ sum(weights * f[idx], 1)``
    (third-order accurate, so it does not spoil the scheme's second order).
    """
    x_nodes = np.asarray(x_nodes, dtype=np.float64)
    xq = np.asarray(x_obs.detach().cpu() if torch.is_tensor(x_obs) else x_obs, dtype=np.float64).ravel()
    if not np.all(np.isfinite(xq)):
        raise InvalidParameterError("observation points must be finite")
    lo, hi = x_nodes[0], x_nodes[-1]
    if np.any(xq < lo - 1e-12 * hi) or np.any(xq > hi * (1 + 1e-12)):
        raise InvalidParameterError(f"observation points must lie in [{lo}, {hi}] m; got [{xq.min()}, {xq.max()}]")
    j = np.clip(np.searchsorted(x_nodes, xq) - 1, 0, x_nodes.size - 3)  # interval [x_j, x_j+1]
    near_right = (j + 2 < x_nodes.size) & (np.abs(xq - x_nodes[j + 1]) < np.abs(xq - x_nodes[j]))
    start = np.clip(np.where(near_right, j, j - 1), 0, x_nodes.size - 3)
    idx = start[:, None] + np.arange(3)[None, :]
    xs = x_nodes[idx]
    w = np.empty_like(xs)
    for a in range(3):
        b, c = [k for k in range(3) if k != a]
        w[:, a] = (xq - xs[:, b]) * (xq - xs[:, c]) / ((xs[:, a] - xs[:, b]) * (xs[:, a] - xs[:, c]))
    return idx, w


def _check_solution(prob: FlameProblem, T: np.ndarray, s: float, u: np.ndarray) -> None:
    dT = prob.T_max - prob.T_in
    if not (np.all(np.isfinite(T)) and math.isfinite(s)) or s <= 0:
        raise FlameConvergenceError(f"flame solve produced a non-physical speed s_L = {s}")
    if s * s >= prob.Rg * prob.T_in or np.any(u <= 0):
        raise FlameConvergenceError(f"flame solve left the subsonic branch (s_L = {s} m/s)")
    if np.min(np.diff(T)) < -1e-6 * dT or T.max() > prob.T_max + 1e-6 * dT:
        raise FlameConvergenceError(
            "flame solve converged to a non-monotone temperature profile "
            f"(min dT = {np.min(np.diff(T)):.3g} K, max T - T_max = {T.max() - prob.T_max:.3g} K)"
        )
    burnt = (prob.T_max - T[-1]) / dT
    if burnt > BURNOUT_TOL:
        raise FlameConvergenceError(
            f"the flame does not burn out inside the {prob.length * 1e3:g} mm domain: T(L) is "
            f"{100 * burnt:.1f}% of (T_max - T_in) below T_max (allowed {100 * BURNOUT_TOL:g}%); "
            "use a longer domain (length=...) or a phi closer to stoichiometry"
        )


def solve_discrete(prob: FlameProblem, x: np.ndarray, initial=None, tol: float = 1e-11,
                   max_iter: int = 60) -> FlameSolution:
    """Solve ``F = 0`` on nodes ``x`` (m) for a checked problem (see :func:`solve_flame`).

    Newton starts from ``initial = (x0, T0, s0)`` (nodes, K, m/s) if given,
    falling back to shooting when that fails, else from shooting.
    """
    st = Stencils(x)
    constants = constant_tensors(prob)

    def finish(out):
        Tu, s, lu, iterations, norm = out
        T = np.concatenate([[prob.T_in], Tu])
        with torch.no_grad():
            alg = algebraic_fields(torch.from_numpy(T), torch.tensor(s, dtype=torch.float64), prob, constants)
        fields = {k: v.numpy() for k, v in alg.items()}
        _check_solution(prob, T, s, fields["u"])
        return FlameSolution(prob, x, T, s_L=float(s), iterations=iterations, step_norm=norm, jacobian_lu=lu,
                             **fields)

    if initial is not None:
        x0, T0, s0 = initial
        try:
            return finish(_newton(prob, st, np.interp(x, x0, T0), s0, tol=tol, max_iter=max_iter))
        except FlameConvergenceError:
            pass  # a warm start too far away: start again from shooting
    s0, xs, Ts = _shooting_guess(prob)
    return finish(_newton(prob, st, np.interp(x, xs, Ts), s0, tol=tol, max_iter=max_iter))


def solve_flame(phi, T_in=298.0, p_atm=1.0, *, grid=None, initial: FlameSolution | None = None,
                tol: float = 1e-11, max_iter: int = 60, **params) -> FlameSolution:
    """Solve the flame eigenvalue problem; returns fields and ``s_L`` (no autograd).

    Parameters
    ----------
    phi, T_in, p_atm, **params
        As in :func:`make_problem` (equivalence ratio, K, atm, model constants).
    grid
        Node count of a uniform grid (default :data:`DEFAULT_NODES`) or an array
        of increasing nodes spanning ``[0, length]`` m.
    initial
        A previous solution to start Newton from (falls back to shooting).
    tol
        Newton stops when the scaled step ``max(|dT| / (T_max - T_in), |ds| / s)``
        is below ``tol``.
    max_iter
        Newton iteration limit.

    Raises
    ------
    InvalidParameterError, UnknownNameError
        Bad inputs (see :func:`make_problem`).
    FlameConvergenceError
        No shooting bracket, Newton failure, or a converged but unphysical
        solution (non-monotone ``T``, no burnout in the domain); never NaN.
    """
    prob = make_problem(phi, T_in, p_atm, **params)
    x = make_grid(grid, prob.length)
    init = None if initial is None else (initial.x, initial.T, initial.s_L)
    return solve_discrete(prob, x, init, tol=tol, max_iter=max_iter)


def flame_speed(phi, T_in: float = 298.0, p_atm: float = 1.0, *, grid=None, **params) -> float:
    """Laminar flame speed ``s_L`` (m/s) of the simplified model.

    Examples
    --------
    >>> round(flame_speed(0.46), 4)
    0.3433
    """
    return solve_flame(phi, T_in, p_atm, grid=grid, **params).s_L


