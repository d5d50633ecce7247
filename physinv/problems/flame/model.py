r"""The equations of the simplified 1D premixed laminar flame (FlamePINN-1D, case 1).

A freely propagating premixed flame on ``x in [0, L]`` (m), ``L = 1.5 mm``, in
the frame of the flame: fresh gas enters at ``x = 0`` with the flame speed
``s_L`` (m/s).  The energy equation, in flux form with the constant mass flux
``m = rho_in s_L`` (kg/(m^2 s)), is

.. math::

    R(T) = m\,c_p\,T_x - \lambda\,T_{xx} - q_F\,\omega(T; s_L) = 0
    \quad [\mathrm{W/m^3}],

with ``T(0) = T_in`` and ``T_x(0) = dTdx0`` (K/m); ``s_L`` is the eigenvalue
for which the solution burns out monotonically (see
:mod:`physinv.problems.flame.solver`).  The closures make every other field
an algebraic function of ``T`` (K) and ``s_L``:

* velocity (mass and momentum conservation with the ideal gas law), the
  smaller, subsonic root of ``u^2 - c u + R_g T = 0``, ``c = s_L + R_g T_in / s_L``,
  written without cancellation: ``u = 2 R_g T / (c + sqrt(c^2 - 4 R_g T))``
  (m/s; ``u(T_in) = s_L``);
* density ``rho = rho_in s_L / u`` (kg/m^3), so ``rho u = rho_in s_L``;
* fuel mass fraction ``Y_F = Y_F,in + c_p (T_in - T) / q_F``, clipped at 0;
* reaction rate (one step, Arrhenius) ``omega = A exp(-E_a / (R T)) (Y_F rho)^n``
  (kg/(m^3 s)), ``n = 1.6``, zero where ``Y_F = 0``.

Mixture: ``R_g = R / W`` (J/(kg K)), ``Y_F,in = phi / (phi + 4)``,
``rho_in = p / (R_g T_in)`` (kg/m^3), adiabatic ``T_max = T_in + q_F Y_F,in / c_p`` (K).

The closures are written once, for NumPy arrays (the shooting guess, the
analytic Newton Jacobian, the reference scheme) and for torch tensors (the
discrete residual of the simulator, its implicit adjoint, the PINN's
autograd): the array ``T`` picks the library, the constants may be floats
or 0-dim tensors (then they are differentiated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, UnknownNameError

__all__ = [
    "ATM",
    "DEFAULT_PARAMS",
    "DIFFERENTIABLE_PARAMS",
    "PHI_RANGE",
    "FlameProblem",
    "make_problem",
    "constant_tensors",
    "velocity",
    "fuel_mass_fraction",
    "reaction_rate",
    "algebraic_fields",
    "reaction_rate_derivatives",
    "energy_residual",
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

#: Constants that may be passed as tensors to the simulator and get gradients.
DIFFERENTIABLE_PARAMS = ("lam", "cp", "qF", "A", "Ea", "order", "R", "W", "dTdx0")

#: Supported equivalence ratios (see ``docs/problems/flame.md``).  Leaner than 0.30 the
#: flame no longer burns out inside the 1.5 mm domain (at 0.25 T(L) is 2.6 % of
#: the temperature rise short of T_max, at 0.20 there is no eigenvalue); the
#: one-step fuel-limited model (``Y_F,in = phi / (phi + 4)``, products without
#: fuel) describes lean mixtures only, hence at most 1.
PHI_RANGE = (0.30, 1.00)


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
        """Domain length ``L``, m."""
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


def constant_tensors(problem: FlameProblem, dtype=torch.float64, device=None,
                     overrides: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The model constants (all but ``length``) as 0-dim tensors, ``overrides`` (tensors) replacing some."""
    constants = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in problem.params.items() if k != "length"}
    constants.update(overrides or {})
    return constants


# ----------------------------------------------------------------------------------------------
# closures: NumPy arrays or torch tensors, chosen by T


def _at_least(a, lower: float):
    return torch.clamp(a, min=lower) if torch.is_tensor(a) else np.maximum(a, lower)


def velocity(T, s_L, Rg, T_in: float):
    r"""Gas velocity ``u`` (m/s): the subsonic root of ``u^2 - (s_L + R_g T_in / s_L) u + R_g T = 0``.

    ``u = 2 R_g T / (c + sqrt(c^2 - 4 R_g T))``, ``c = s_L + R_g T_in / s_L``
    (the discriminant clipped at 0, so never NaN); ``T`` in K, ``s_L`` in m/s,
    ``R_g`` in J/(kg K).
    """
    xp = torch if torch.is_tensor(T) else np
    c = s_L + Rg * T_in / s_L
    disc = _at_least(c * c - 4.0 * Rg * T, 0.0)
    return 2.0 * Rg * T / (c + xp.sqrt(disc))


def fuel_mass_fraction(T, Y_in: float, T_in: float, cp, qF):
    """``Y_F = Y_F,in + c_p (T_in - T) / q_F`` clipped at 0 (``c_p`` J/(kg K), ``q_F`` J/kg, ``T`` K)."""
    return _at_least(Y_in + cp * (T_in - T) / qF, 0.0)


def reaction_rate(T, Y_F, rho, A, Ea, R, order):
    r"""``omega = A exp(-E_a / (R T)) (Y_F rho)^n`` (kg/(m^3 s)), 0 where ``Y_F rho = 0``.

    ``T`` (K) is clipped at 1 K in the exponential and the power is taken
    only where its base is positive, so the value and its derivatives are
    finite everywhere.
    """
    xp = torch if torch.is_tensor(T) else np
    base = Y_F * rho
    positive = base > 0
    safe = xp.where(positive, base, xp.ones_like(base))
    power = xp.where(positive, safe ** order, xp.zeros_like(base))
    return A * xp.exp(-Ea / (R * _at_least(T, 1.0))) * power


def algebraic_fields(T, s_L, problem: FlameProblem, constants: Mapping | None = None) -> dict:
    """``u`` (m/s), ``rho`` (kg/m^3), ``Y_F``, ``omega`` (kg/(m^3 s)) from ``T`` (K) and ``s_L`` (m/s).

    Parameters
    ----------
    T
        Temperature, any shape (NumPy array or torch tensor).
    s_L
        Flame speed, m/s (float, array broadcasting with ``T``, or tensor).
    problem
        The :class:`FlameProblem` (inlet state and constants).
    constants
        Constants replacing the problem's (floats or tensors), e.g.
        :func:`constant_tensors` to differentiate with respect to them, or a
        trainable ``{"Ea": ...}``.
    """
    k = problem.params if not constants else {**problem.params, **constants}
    Rg = k["R"] / k["W"]
    rho_in = problem.p / (Rg * problem.T_in)
    u = velocity(T, s_L, Rg, problem.T_in)
    rho = rho_in * s_L / u
    Y = fuel_mass_fraction(T, problem.Y_in, problem.T_in, k["cp"], k["qF"])
    omega = reaction_rate(T, Y, rho, k["A"], k["Ea"], k["R"], k["order"])
    return {"u": u, "rho": rho, "Y_F": Y, "omega": omega}


def reaction_rate_derivatives(T: np.ndarray, s_L: float, problem: FlameProblem):
    r"""``omega`` and its partial derivatives ``d omega/dT`` and ``d omega/ds_L`` (NumPy, float constants).

    With ``c = s + R_g T_in / s`` and ``sqrt(c^2 - 4 R_g T) = c - 2u``:
    ``u_T = R_g / (c - 2u)``, ``u_s = -(1 - R_g T_in / s^2) u / (c - 2u)``;
    ``omega = A exp(-E_a/(R T)) (Y rho)^n``, ``rho = rho_in s / u``, gives
    ``omega_T = omega (E_a/(R T^2) + n (Y_T / Y - u_T / u))`` with
    ``Y_T = -c_p / q_F`` and ``omega_s = n omega (1/s - u_s / u)``.
    """
    pr = problem.params
    Rg = problem.Rg
    fields = algebraic_fields(T, s_L, problem)
    u, omega = fields["u"], fields["omega"]
    root = s_L + Rg * problem.T_in / s_L - 2.0 * u
    Y = np.where(fields["Y_F"] > 0, fields["Y_F"], 1.0)
    u_T = Rg / root
    u_s = -(1.0 - Rg * problem.T_in / (s_L * s_L)) * u / root
    n = pr["order"]
    d_T = omega * (pr["Ea"] / (pr["R"] * np.maximum(T, 1.0) ** 2) + n * (-pr["cp"] / pr["qF"] / Y - u_T / u))
    d_s = n * omega * (1.0 / s_L - u_s / u)
    return omega, d_T, d_s


def energy_residual(T, T_x, T_xx, s_L, problem: FlameProblem, constants: Mapping | None = None):
    r"""The energy equation ``m c_p T_x - lambda T_xx - q_F omega`` (W/m^3), ``m = rho_in s_L``.

    ``T`` (K), ``T_x`` (K/m), ``T_xx`` (K/m^2) at the same points;
    ``constants`` as in :func:`algebraic_fields`.  Zero on a solution.
    """
    k = problem.params if not constants else {**problem.params, **constants}
    rho_in = problem.p / (k["R"] / k["W"] * problem.T_in)
    omega = algebraic_fields(T, s_L, problem, constants)["omega"]
    return rho_in * s_L * k["cp"] * T_x - k["lam"] * T_xx - k["qF"] * omega
