r"""Differentiable 1D laminar premixed flame (FlamePINN-1D, case 1): ``s_L`` as an eigenvalue.

Model
-----
A freely propagating, simplified premixed flame on ``x in [0, L]``, ``L = 1.5 mm``,
in the frame of the flame: fresh gas enters at ``x = 0`` with the flame speed
``s_L`` (m/s).  The energy equation is

.. math::

    T_x - \frac{\lambda}{\rho_{in} s_L c_p} T_{xx}
        - \frac{q_F}{\rho_{in} s_L c_p}\,\omega = 0,

written here in flux form, ``m c_p T_x - lambda T_xx - q_F omega = 0`` with the
constant mass flux ``m = rho_in s_L`` (kg/(m^2 s)).  The other fields are
algebraic functions of ``T`` and ``s_L``:

* velocity: ``u`` (m/s) is the smaller (subsonic) root of
  ``u^2 - (s_L + R_g T_in / s_L) u + R_g T = 0``, evaluated without
  cancellation as ``u = 2 R_g T / (c + sqrt(c^2 - 4 R_g T))``,
  ``c = s_L + R_g T_in / s_L`` (mass and momentum conservation with the ideal
  gas law; ``u(T_in) = s_L``);
* density: ``rho = rho_in s_L / u`` (kg/m^3), so ``rho u = rho_in s_L``;
* fuel mass fraction: ``Y_F = Y_F,in + c_p (T_in - T) / q_F``, clipped at 0
  (``Y_F = 0`` exactly at the adiabatic temperature ``T_max``);
* reaction rate: ``omega = A exp(-E_a / (R T)) (Y_F rho)^n`` (kg/(m^3 s)),
  reaction order ``n = 1.6``.

Mixture as the FlamePINN-1D code takes it: ``R = 8.3145`` J/(mol K),
``W = 28.97e-3`` kg/mol, ``R_g = R / W``, ``Y_F,in = phi / (phi + 4)``,
``rho_in = p / (R_g T_in)``, ``T_max = T_in + q_F Y_F,in / c_p``.

Boundary conditions and the eigenvalue
--------------------------------------
The reference solver of FlamePINN-1D shoots from ``x = 0`` with *two* conditions
there, ``T(0) = T_in`` and ``T_x(0) = 1e5`` K/m, and bisects on ``s_L``: too small
an ``s_L`` makes ``T_x`` turn negative (the flame falls back), too large a one
makes ``T`` overshoot ``T_max``.  The burnt state ``(T, T_x) = (T_max, 0)`` is an
equilibrium of the ODE whose linearization has the eigenvalues ``0`` (the
fuel-depletion direction, ``T_max - T ~ x^(-5/3)`` for ``n = 1.6``) and
``k = m c_p / lambda > 0`` (an exponentially growing mode).  ``s_L`` is the unique
value for which the trajectory from ``x = 0`` carries no growing mode, i.e.
approaches ``T_max`` monotonically.

This module solves the same eigenvalue problem as a boundary-value problem:
unknowns ``T_1..T_N`` and ``s_L``; equations

* ``T_0 = T_in`` (eliminated) and ``T_x(0) = dTdx0`` (second-order one-sided);
* the energy equation at the interior nodes (second-order central differences
  on a possibly non-uniform grid);
* the outflow condition ``T_xx(L) = 0``, i.e. ``m c_p T_x(L) = q_F omega(L)``,
  which selects the trajectory without the growing mode (it is the energy
  equation without diffusion; imposing ``T_x(L) = 0`` instead changes ``s_L`` by
  a relative ``~exp(-k (L - x_flame))``, below 1e-6 here).

The square nonlinear system is solved by damped Newton (sparse LU of the
exact Jacobian, assembled analytically: banded ``T`` columns plus the dense
``s_L`` column), started from a vectorized RK4 shooting solution.  The discretization is second-order: ``s_L`` converges
as ``h^2`` (the FlamePINN-1D shooting reference converges as ``h``; its
10,000-point values lie about 0.06 % above the limit, see ``docs/flame.md``).

Differentiation
---------------
:func:`flame_fields` (and :class:`FlameSimulator`) accept model constants as
tensors; ``T`` at the nodes and ``s_L`` are returned by a
:class:`torch.autograd.Function` that differentiates the converged discrete
system implicitly: with ``F(z, theta) = 0``, ``z = (T_1..T_N, s_L)``,
``dz/dtheta = -F_z^{-1} F_theta`` (forward mode, ``jvp``) and
``grad_theta = -F_theta^T F_z^{-T} grad_z`` (reverse mode, one adjoint solve with
the LU factors kept from the last Newton step).  No iteration is unrolled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from physinv.core.errors import ConvergenceError, InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.simulator import Simulator, SimulatorExample, register_simulator

__all__ = [
    "ATM",
    "DEFAULT_PARAMS",
    "DIFFERENTIABLE_PARAMS",
    "PHI_RANGE",
    "DEFAULT_NODES",
    "FlameConvergenceError",
    "FlameProblem",
    "FlameSolution",
    "FlameSimulator",
    "make_problem",
    "make_grid",
    "solve_flame",
    "flame_speed",
    "flame_fields",
    "interpolation_weights",
]

#: One standard atmosphere, Pa.
ATM = 101325.0

#: Model constants (SI) and their meaning; any of them can be overridden by keyword.
DEFAULT_PARAMS: dict[str, float] = {
    "lam": 0.026,  # thermal conductivity lambda, W/(m K)
    "cp": 1000.0,  # heat capacity c_p, J/(kg K)
    "qF": 5.0e7,  # fuel heating value q_F, J/kg
    "A": 1.4e8,  # pre-exponential factor, (kg/m^3)^(1-n) / s
    "Ea": 1.214172e5,  # activation energy E_a, J/mol
    "order": 1.6,  # reaction order n
    "R": 8.3145,  # universal gas constant, J/(mol K)
    "W": 28.97e-3,  # molar mass of the mixture, kg/mol
    "dTdx0": 1.0e5,  # inlet temperature gradient T_x(0), K/m
    "length": 1.5e-3,  # domain length L, m
}

PARAM_DOC = {
    "lam": "thermal conductivity, W/(m K)",
    "cp": "heat capacity, J/(kg K)",
    "qF": "fuel heating value, J/kg",
    "A": "pre-exponential factor",
    "Ea": "activation energy, J/mol",
    "order": "reaction order",
    "R": "universal gas constant, J/(mol K)",
    "W": "molar mass, kg/mol",
    "dTdx0": "inlet temperature gradient, K/m",
    "length": "domain length, m",
}

#: Constants that may be passed as tensors to :func:`flame_fields` and get gradients.
DIFFERENTIABLE_PARAMS = ("lam", "cp", "qF", "A", "Ea", "order", "R", "W", "dTdx0")

#: Supported equivalence ratios (see ``docs/flame.md``).  Leaner than 0.30 the
#: flame no longer burns out inside the 1.5 mm domain (at 0.25 T(L) is 2.6 % of
#: the temperature rise short of T_max, at 0.20 there is no eigenvalue); the
#: one-step fuel-limited model (``Y_F,in = phi / (phi + 4)``, products without
#: fuel) describes lean mixtures only, hence at most 1.
PHI_RANGE = (0.30, 1.00)

#: Default number of grid nodes (uniform): s_L to ~1e-5 relative (see docs).
DEFAULT_NODES = 1501

#: Largest accepted ``(T_max - T(L)) / (T_max - T_in)``: the flame must have burnt out.
BURNOUT_TOL = 0.05


class FlameConvergenceError(ConvergenceError):
    """The flame solve failed; the message names the cause (no bracket, Newton, unphysical)."""


# ----------------------------------------------------------------------------------------------
# problem definition and input checks


def _check_number(name: str, value, *, positive: bool = True) -> float:
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise InvalidParameterError(f"{name} must be a scalar; got a tensor of shape {tuple(value.shape)}")
        value = float(value.detach())
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a real number; got {value!r}") from None
    if not math.isfinite(v):
        raise InvalidParameterError(f"{name} must be finite; got {v}")
    if positive and v <= 0.0:
        raise InvalidParameterError(f"{name} must be > 0; got {v}")
    return v


@dataclass(frozen=True)
class FlameProblem:
    """A checked flame problem: inlet state and model constants (floats, SI).

    Build it with :func:`make_problem`.  Derived quantities are properties.
    """

    phi: float
    T_in: float
    p: float
    params: Mapping[str, float]

    @property
    def Rg(self) -> float:
        """Specific gas constant ``R / W``, J/(kg K)."""
        return self.params["R"] / self.params["W"]

    @property
    def Y_in(self) -> float:
        """Inlet fuel mass fraction ``phi / (phi + 4)``."""
        return self.phi / (self.phi + 4.0)

    @property
    def rho_in(self) -> float:
        """Inlet density ``p / (R_g T_in)``, kg/m^3."""
        return self.p / (self.Rg * self.T_in)

    @property
    def T_max(self) -> float:
        """Adiabatic flame temperature ``T_in + q_F Y_F,in / c_p``, K."""
        return self.T_in + self.params["qF"] * self.Y_in / self.params["cp"]

    @property
    def length(self) -> float:
        return self.params["length"]


def make_problem(phi, T_in=298.0, p_atm=1.0, *, check_phi: bool = True, **params) -> FlameProblem:
    """Check inputs and build a :class:`FlameProblem`.

    Parameters
    ----------
    phi
        Equivalence ratio, within :data:`PHI_RANGE` (unless ``check_phi=False``).
    T_in
        Inlet temperature, K (> 0).
    p_atm
        Pressure in atmospheres (> 0; 1 atm = 101325 Pa).
    **params
        Overrides of :data:`DEFAULT_PARAMS` (``lam, cp, qF, A, Ea, order, R, W,
        dTdx0, length``); all finite and > 0.

    Raises
    ------
    InvalidParameterError
        NaN/Inf or non-positive values, ``phi`` outside :data:`PHI_RANGE`.
    UnknownNameError
        A parameter name not in :data:`DEFAULT_PARAMS`.
    """
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise UnknownNameError(
            f"unknown flame parameter(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(DEFAULT_PARAMS)}"
        )
    phi = _check_number("phi (equivalence ratio)", phi)
    if check_phi and not (PHI_RANGE[0] <= phi <= PHI_RANGE[1]):
        raise InvalidParameterError(
            f"phi = {phi} is outside the supported range [{PHI_RANGE[0]}, {PHI_RANGE[1]}] of the "
            "simplified flame model on its 1.5 mm domain"
        )
    T_in = _check_number("T_in (inlet temperature, K)", T_in)
    p = _check_number("p_atm (pressure, atm)", p_atm) * ATM
    merged = dict(DEFAULT_PARAMS)
    for name, value in params.items():
        merged[name] = _check_number(f"{name} ({PARAM_DOC[name]})", value)
    return FlameProblem(phi=phi, T_in=T_in, p=p, params=merged)


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


class _Stencils:
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


def _theta(prob: FlameProblem, overrides: Mapping[str, torch.Tensor] | None, dtype, device) -> dict:
    th = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in prob.params.items() if k != "length"}
    if overrides:
        th.update(overrides)
    return th


def _algebraic(T: torch.Tensor, s: torch.Tensor, prob: FlameProblem, th: Mapping[str, torch.Tensor]) -> dict:
    """``u, rho, Y_F, omega`` as functions of ``T`` and ``s_L`` (differentiable, NaN-free)."""
    Rg = th["R"] / th["W"]
    rho_in = prob.p / (Rg * prob.T_in)
    c = s + Rg * prob.T_in / s
    disc = torch.clamp(c * c - 4.0 * Rg * T, min=0.0)
    u = 2.0 * Rg * T / (c + torch.sqrt(disc))
    rho = rho_in * s / u
    Y = torch.clamp(prob.Y_in + th["cp"] * (prob.T_in - T) / th["qF"], min=0.0)
    base = Y * rho
    positive = base > 0
    safe = torch.where(positive, base, torch.ones_like(base))
    power = torch.where(positive, safe ** th["order"], torch.zeros_like(base))
    Tpos = torch.clamp(T, min=1.0)
    omega = th["A"] * torch.exp(-th["Ea"] / (th["R"] * Tpos)) * power
    return {"u": u, "rho": rho, "Y_F": Y, "omega": omega, "rho_in": rho_in}


def _residual(Tu: torch.Tensor, s: torch.Tensor, prob: FlameProblem, st: _Stencils, th) -> torch.Tensor:
    """``F(T_1..T_N, s_L)`` (N + 1 rows, W/m^3): inlet gradient, energy balance, outflow."""
    w = st.tensors(Tu.dtype, Tu.device)
    T0 = torch.full((1,), prob.T_in, dtype=Tu.dtype, device=Tu.device)
    T = torch.cat([T0, Tu])
    alg = _algebraic(T, s, prob, th)
    mcp = alg["rho_in"] * s * th["cp"]
    q_omega = th["qF"] * alg["omega"]
    Tx = w["d1"][:, 0] * T[:-2] + w["d1"][:, 1] * T[1:-1] + w["d1"][:, 2] * T[2:]
    Txx = w["d2"][:, 0] * T[:-2] + w["d2"][:, 1] * T[1:-1] + w["d2"][:, 2] * T[2:]
    interior = mcp * Tx - th["lam"] * Txx - q_omega[1:-1]
    Tx0 = (w["left"] * T[:3]).sum()
    TxL = (w["right"] * T[-3:]).sum()
    first = mcp * (Tx0 - th["dTdx0"])
    last = mcp * TxL - q_omega[-1]
    return torch.cat([first.reshape(1), interior, last.reshape(1)])


# ----------------------------------------------------------------------------------------------
# initial guess: vectorized RK4 shooting


def _shoot(prob: FlameProblem, s: np.ndarray, n_steps: int, record: bool = False):
    """Integrate ``T' = G, G' = (m c_p G - q_F omega) / lambda`` from ``x = 0`` for each ``s``.

    Returns the status per candidate (-1: ``T_x < 0``, falls back, s too small;
    +1: ``T > T_max``, s too large; 0: neither within the domain) and, with
    ``record``, the temperature path (clipped at ``T_max`` after a failure).
    """
    pr = prob.params
    Rg, Tin, Tmax = prob.Rg, prob.T_in, prob.T_max
    k = prob.rho_in * s * pr["cp"] / pr["lam"]
    c = s + Rg * Tin / s
    m = prob.rho_in * s

    def rhs(T, G):
        Tc = np.clip(T, 1.0, Tmax)
        disc = np.maximum(c * c - 4.0 * Rg * Tc, 0.0)
        u = 2.0 * Rg * Tc / (c + np.sqrt(disc))
        base = np.maximum(prob.Y_in + pr["cp"] * (Tin - Tc) / pr["qF"], 0.0) * m / u
        om = pr["A"] * np.exp(-pr["Ea"] / (pr["R"] * Tc)) * base ** pr["order"]
        return G, k * G - pr["qF"] * om / pr["lam"]

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
        status, _ = _shoot(prob, s, n_steps)
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
    _, path = _shoot(prob, np.array([s_guess]), n_steps, record=True)
    return s_guess, np.linspace(0.0, prob.length, n_steps + 1), path[:, 0]


# ----------------------------------------------------------------------------------------------
# Newton


def _omega_and_derivatives(T: np.ndarray, s: float, prob: FlameProblem):
    """``omega`` and its partial derivatives ``d omega/dT``, ``d omega/ds_L`` (NumPy).

    With ``c = s + R_g T_in / s`` and ``sqrt(c^2 - 4 R_g T) = c - 2u``:
    ``u_T = R_g / (c - 2u)``, ``u_s = -(1 - R_g T_in / s^2) u / (c - 2u)``,
    ``rho = rho_in s / u``; ``omega = A exp(-E_a/(R T)) (Y rho)^n`` gives
    ``omega_T = omega (E_a/(R T^2) + n (Y_T / Y - u_T / u))`` with
    ``Y_T = -c_p / q_F`` and ``omega_s = n omega (1/s - u_s / u)``.
    """
    pr = prob.params
    Rg, Tin = prob.Rg, prob.T_in
    c = s + Rg * Tin / s
    root = np.sqrt(np.maximum(c * c - 4.0 * Rg * T, 0.0))
    u = 2.0 * Rg * T / (c + root)
    rho = prob.rho_in * s / u
    Y = np.maximum(prob.Y_in + pr["cp"] * (Tin - T) / pr["qF"], 0.0)
    burning = Y > 0
    Ys = np.where(burning, Y, 1.0)
    Tpos = np.maximum(T, 1.0)
    omega = np.where(burning, pr["A"] * np.exp(-pr["Ea"] / (pr["R"] * Tpos)) * (Ys * rho) ** pr["order"], 0.0)
    u_T = Rg / root
    u_s = -(1.0 - Rg * Tin / (s * s)) * u / root
    n = pr["order"]
    d_T = omega * (pr["Ea"] / (pr["R"] * Tpos**2) + n * (-pr["cp"] / pr["qF"] / Ys - u_T / u))
    d_s = n * omega * (1.0 / s - u_s / u)
    return omega, d_T, d_s


def _jacobian(Tu: np.ndarray, s: float, prob: FlameProblem, st: _Stencils) -> sp.csc_matrix:
    """Exact sparse Jacobian ``dF/d(T_1..T_N, s_L)`` of :func:`_residual` (analytic).

    Rows as in :func:`_residual`; columns ``T_1..T_N`` then ``s_L``.  Checked
    against autograd in the tests.
    """
    pr = prob.params
    N = st.N
    T = np.concatenate([[prob.T_in], Tu])
    mcp = prob.rho_in * s * pr["cp"]
    dmcp = prob.rho_in * pr["cp"]
    omega, w_T, w_s = _omega_and_derivatives(T, s, prob)
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


def _newton(prob: FlameProblem, st: _Stencils, T_guess: np.ndarray, s_guess: float, *, tol: float, max_iter: int):
    """Damped Newton (error-oriented, Deuflhard-style monotonicity test) on ``F = 0``.

    Returns ``(Tu, s, lu, iterations, step_norm)``; ``lu`` factors the Jacobian at
    the returned point.  Raises :class:`FlameConvergenceError`.
    """
    th = _theta(prob, None, torch.float64, None)
    dT_scale = prob.T_max - prob.T_in
    z = np.concatenate([T_guess[1:], [s_guess]])

    def scaled(dz):
        return max(np.max(np.abs(dz[:-1])) / dT_scale, abs(dz[-1]) / abs(z[-1]))

    def F(zz):
        with torch.no_grad():
            r = _residual(torch.from_numpy(zz[:-1]), torch.tensor(zz[-1], dtype=torch.float64), prob, st, th)
        return r.numpy()

    def factor(zz):
        J = _jacobian(zz[:-1], float(zz[-1]), prob, st)
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
    _lu: object = field(default=None, repr=False)

    @property
    def mass_flux(self) -> np.ndarray:
        """``rho u`` at the nodes, kg/(m^2 s): constant ``rho_in s_L``."""
        return self.rho * self.u

    def at(self, x_obs) -> dict:
        """Fields at points ``x_obs`` (m): ``T`` by quadratic interpolation, the rest from ``T``."""
        idx, wts = interpolation_weights(self.x, x_obs)
        T = np.sum(wts * self.T[idx], axis=1)
        th = _theta(self.problem, None, torch.float64, None)
        alg = _algebraic(torch.from_numpy(T), torch.tensor(self.s_L, dtype=torch.float64), self.problem, th)
        return {"x": np.asarray(x_obs, dtype=np.float64).ravel(), "T": T,
                **{k: alg[k].numpy() for k in ("u", "rho", "Y_F", "omega")}}


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


def _validate_solution(prob: FlameProblem, x: np.ndarray, T: np.ndarray, s: float, u: np.ndarray) -> None:
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


def _solve(prob: FlameProblem, x: np.ndarray, initial=None, tol: float = 1e-11, max_iter: int = 60):
    """Newton from ``initial = (x0, T0, s0)`` if given (falling back on failure), else from shooting."""
    st = _Stencils(x)
    th = _theta(prob, None, torch.float64, None)

    def finish(out):
        Tu, s, lu, iterations, norm = out
        T = np.concatenate([[prob.T_in], Tu])
        with torch.no_grad():
            alg = _algebraic(torch.from_numpy(T), torch.tensor(s, dtype=torch.float64), prob, th)
        fields = {k: alg[k].numpy() for k in ("u", "rho", "Y_F", "omega")}
        _validate_solution(prob, x, T, s, fields["u"])
        return FlameSolution(prob, x, T, s_L=float(s), iterations=iterations, step_norm=norm, _lu=lu, **fields)

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
    return _solve(prob, x, init, tol=tol, max_iter=max_iter)


def flame_speed(phi, T_in: float = 298.0, p_atm: float = 1.0, *, grid=None, **params) -> float:
    """Laminar flame speed ``s_L`` (m/s) of the simplified model.

    Examples
    --------
    >>> round(flame_speed(0.46), 4)  # doctest: +SKIP
    0.3433
    """
    return solve_flame(phi, T_in, p_atm, grid=grid, **params).s_L


# ----------------------------------------------------------------------------------------------
# implicit differentiation


class _FlameSolve(torch.autograd.Function):
    """``theta -> (T at the nodes, s_L)`` with implicit forward- and reverse-mode derivatives.

    ``F(z, theta) = 0`` at the converged ``z = (T_1..T_N, s_L)``, so
    ``dz = -F_z^{-1} F_theta dtheta`` (:meth:`jvp`) and
    ``grad_theta = -F_theta^T F_z^{-T} grad_z`` (:meth:`backward`), with the LU
    factors of ``F_z`` kept from the solve.  Once differentiable.
    """

    @staticmethod
    def forward(ctx, prob, x, names, initial, holder, *values):
        overrides = {n: float(v.detach()) for n, v in zip(names, values)}
        prob_v = FlameProblem(prob.phi, prob.T_in, prob.p, {**prob.params, **overrides})
        sol = _solve(prob_v, x, initial)
        holder["solution"] = sol
        ctx.sol, ctx.names, ctx.st = sol, names, _Stencils(x)
        ctx.values = tuple(v.detach() for v in values)
        dtype, device = values[0].dtype, values[0].device
        return (torch.as_tensor(sol.T, dtype=dtype, device=device),
                torch.as_tensor(sol.s_L, dtype=dtype, device=device))

    @staticmethod
    def _residual_of_theta(ctx):
        sol = ctx.sol
        z_T = torch.from_numpy(sol.T[1:])
        z_s = torch.tensor(sol.s_L, dtype=torch.float64)
        th0 = _theta(sol.problem, None, torch.float64, None)

        def res(*vals):
            th = dict(th0)
            th.update(zip(ctx.names, vals))
            return _residual(z_T, z_s, sol.problem, ctx.st, th)

        return res

    @staticmethod
    def backward(ctx, gT, gs):
        g = np.zeros(ctx.sol.T.size)
        if gT is not None:
            g[:-1] = gT.detach().cpu().double().numpy()[1:]
        if gs is not None:
            g[-1] = float(gs)
        adj = torch.from_numpy(ctx.sol._lu.solve(g, trans="T"))
        with torch.enable_grad():
            leaves = [v.to(torch.float64).cpu().requires_grad_(True) for v in ctx.values]
            r = _FlameSolve._residual_of_theta(ctx)(*leaves)
            grads = torch.autograd.grad(r, leaves, grad_outputs=-adj, allow_unused=True)
        out = [torch.zeros_like(v) if gr is None else gr.to(dtype=v.dtype, device=v.device).reshape(v.shape)
               for gr, v in zip(grads, ctx.values)]
        return (None, None, None, None, None, *out)

    @staticmethod
    def jvp(ctx, _prob, _x, _names, _initial, _holder, *tangents):
        prim = tuple(v.to(torch.float64).cpu() for v in ctx.values)
        tang = tuple(torch.zeros_like(p) if t is None else t.detach().to(torch.float64).cpu().reshape(p.shape)
                     for p, t in zip(prim, tangents))
        with torch.enable_grad():  # double-backward product: works inside an outer forward-AD level
            dF = torch.autograd.functional.jvp(_FlameSolve._residual_of_theta(ctx), prim, tang)[1]
        dz = -ctx.sol._lu.solve(dF.numpy())
        v0 = ctx.values[0]
        dT = torch.from_numpy(np.concatenate([[0.0], dz[:-1]])).to(dtype=v0.dtype, device=v0.device)
        return dT, torch.tensor(dz[-1], dtype=v0.dtype, device=v0.device)


def flame_fields(phi, x_obs=None, *, T_in=298.0, p_atm=1.0, grid=None, initial: FlameSolution | None = None,
                 **params) -> dict:
    """Differentiable flame: model constants (floats or tensors) -> ``s_L`` and fields.

    Parameters
    ----------
    phi, T_in, p_atm
        Equivalence ratio, inlet temperature (K), pressure (atm); not differentiated.
    x_obs
        Optional observation points (m), shape ``(m,)``; fields are returned there
        (quadratic interpolation of ``T``; ``u, rho, Y_F`` from ``T``).  Without it,
        at the grid nodes.
    grid
        As in :func:`solve_flame`.
    initial
        Optional previous :class:`FlameSolution` to warm-start Newton.
    **params
        Model constants (:data:`DEFAULT_PARAMS`).  Tensors (scalar, any float
        dtype/device) among :data:`DIFFERENTIABLE_PARAMS` are differentiated,
        e.g. ``lam``, ``Ea``, ``A``; others are constants.

    Returns
    -------
    dict
        ``s_L`` (0-dim tensor, m/s), ``x`` (m), ``T`` (K), ``u`` (m/s), ``rho``
        (kg/m^3), ``Y_F`` (shape ``(m,)`` or ``(n,)``) and ``solution``
        (the :class:`FlameSolution`, for warm starts).  Derivatives come from
        the implicit function theorem on the converged discrete system (one
        adjoint solve per backward, one tangent solve per forward-mode direction).
    """
    tensors = {k: v for k, v in params.items() if torch.is_tensor(v)}
    for name, v in tensors.items():
        if name not in DIFFERENTIABLE_PARAMS and name in DEFAULT_PARAMS:
            raise InvalidParameterError(
                f"{name} cannot be a tensor (not differentiable); differentiable: {', '.join(DIFFERENTIABLE_PARAMS)}"
            )
    prob = make_problem(phi, T_in, p_atm, **params)  # checks every value, tensors included
    x = make_grid(grid, prob.length)
    names = tuple(tensors)
    if names:
        values = [tensors[n].reshape(()) for n in names]
        dtype = values[0].dtype if values[0].is_floating_point() else torch.float64
        device = values[0].device
        values = [v.to(dtype) for v in values]
    else:
        dtype, device = torch.float64, torch.device("cpu")
        names, values = ("lam",), [torch.tensor(prob.params["lam"], dtype=dtype)]
    init = None if initial is None else (initial.x, initial.T, initial.s_L)
    holder: dict = {}
    T_nodes, s = _FlameSolve.apply(prob, x, names, init, holder, *values)
    th = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in prob.params.items() if k != "length"}
    th.update({n: v for n, v in zip(names, values)})
    if x_obs is None:
        T, xq = T_nodes, x
    else:
        idx, wts = interpolation_weights(x, x_obs)
        T = (torch.as_tensor(wts, dtype=dtype, device=device) * T_nodes[torch.as_tensor(idx, device=device)]).sum(1)
        xq = np.asarray(x_obs.detach().cpu() if torch.is_tensor(x_obs) else x_obs, dtype=np.float64).ravel()
    alg = _algebraic(T, s, prob, th)
    return {"s_L": s, "x": torch.as_tensor(xq, dtype=dtype, device=device), "T": T,
            "u": alg["u"], "rho": alg["rho"], "Y_F": alg["Y_F"],
            "solution": holder["solution"]}


# ----------------------------------------------------------------------------------------------
# simulator protocol


class FlameSimulator(Simulator):
    """Kinetic/transport constants -> flame speed and point observations of ``T`` and ``u``.

    ``forward(m)`` with ``m = (theta_1 / theta_1,ref, ...)`` (dimensionless
    multipliers of the constants named in ``names``, default
    ``("lam", "Ea", "A")`` with references from :data:`DEFAULT_PARAMS`) returns
    ``[s_L, T(x_obs), u(x_obs)]``, shape ``(1 + 2 m_obs,)``: m/s, K, m/s.
    Derivatives are implicit (:func:`flame_fields`); each call warm-starts
    Newton from the previous solution.

    Parameters
    ----------
    phi, T_in, p_atm
        Equivalence ratio, inlet temperature (K), pressure (atm).
    x_obs
        Observation points, m (default: 10 points, ``(k + 1/2) L / 10``).
    grid
        Node count or node array (see :func:`solve_flame`).
    names
        Constants in ``m`` (from :data:`DIFFERENTIABLE_PARAMS`).
    **params
        Other constants (floats) overriding :data:`DEFAULT_PARAMS`; a name in
        ``names`` given here sets its reference value.
    """

    def __init__(self, phi: float = 0.46, x_obs=None, *, T_in: float = 298.0, p_atm: float = 1.0, grid=None,
                 names: tuple[str, ...] = ("lam", "Ea", "A"), **params):
        super().__init__()
        bad = [n for n in names if n not in DIFFERENTIABLE_PARAMS]
        if bad or not names:
            raise UnknownNameError(
                f"cannot invert for {bad or 'no constants'}; choose from {', '.join(DIFFERENTIABLE_PARAMS)}"
            )
        self.problem = make_problem(phi, T_in, p_atm, **params)
        self.names = tuple(names)
        self.reference = {n: self.problem.params[n] for n in self.names}
        self.x = make_grid(grid, self.problem.length)
        L = self.problem.length
        self.x_obs = (np.arange(10) + 0.5) * L / 10 if x_obs is None else np.asarray(x_obs, dtype=np.float64).ravel()
        interpolation_weights(self.x, self.x_obs)  # checks the points
        self.parameter_shape = (len(self.names),)
        self._fixed = {k: v for k, v in self.problem.params.items() if k not in self.names}
        self.last_solution: FlameSolution | None = None

    def physical(self, m: torch.Tensor) -> dict:
        """Physical constants ``{name: m_i * reference_i}``."""
        return {n: m[i] * self.reference[n] for i, n in enumerate(self.names)}

    def check_parameters(self, m: torch.Tensor) -> None:
        if not torch.is_tensor(m):
            raise InvalidParameterError(f"m must be a torch.Tensor; got {type(m).__name__}")
        if tuple(m.shape) != self.parameter_shape:
            raise ShapeMismatchError(f"m has shape {tuple(m.shape)}; expected {self.parameter_shape} ({self.names})")
        if not bool(torch.isfinite(m.detach()).all()) or bool((m.detach() <= 0).any()):
            raise InvalidParameterError(f"m (multipliers of {self.names}) must be finite and > 0; got {m.tolist()}")

    def fields(self, m: torch.Tensor, x_obs=None) -> dict:
        """:func:`flame_fields` at ``m`` (at ``x_obs`` or, with ``None``, at the grid nodes)."""
        self.check_parameters(m)
        prob = self.problem
        out = flame_fields(prob.phi, x_obs, T_in=prob.T_in, p_atm=prob.p / ATM, grid=self.x,
                           initial=self.last_solution, **self._fixed, **self.physical(m))
        self.last_solution = out["solution"]
        return out

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        out = self.fields(m, self.x_obs)
        return torch.cat([out["s_L"].reshape(1), out["T"], out["u"]])


@register_simulator("flame-1d", "1D premixed flame (FlamePINN-1D case 1): (lambda, E_a, A) -> s_L, T, u at 10 points")
def _example_flame(dtype, device) -> SimulatorExample:
    sim = FlameSimulator(0.46, grid=201)
    return SimulatorExample(sim, torch.ones(3, dtype=dtype, device=device))
