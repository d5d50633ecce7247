r"""PINN for the 1D premixed flame of FlamePINN-1D (case 1), forward and inverse, with deepxde.

Model (:mod:`physinv.problems.flame.model`, the simulator's; see ``docs/problems/flame.md``): on
``x in [0, L]``, ``L = 1.5 mm``,

.. math::

    T_x - \frac{\lambda}{\rho_{in} s_L c_p} T_{xx} - \frac{q_F}{\rho_{in} s_L c_p}\,\omega(T; s_L, E_a) = 0,
    \qquad T(0) = T_{in},\quad T_x(0) = 10^5\ \mathrm{K/m},

with ``u, rho, Y_F, omega`` algebraic in ``T`` and ``s_L``.  The flame speed
``s_L`` is an eigenvalue: a trainable scalar of the PINN.

Scaling.  The network sees ``xi = x / L`` and produces the reduced temperature
``theta = (T - T_in) / (T_max - T_in)``; the residual is the energy equation
multiplied by ``L / (T_max - T_in)``,

.. math::

    r(\xi) = \theta_\xi - \frac{1}{Pe}\,\theta_{\xi\xi} - Da\,\omega,
    \qquad Pe = \frac{\rho_{in} s_L c_p L}{\lambda},\quad Da = \frac{q_F L}{\rho_{in} s_L c_p (T_{max} - T_{in})},

whose terms are O(1)-O(10) across the flame.

Hard constraints.  With ``n(xi)`` the raw tanh MLP output,

.. math::

    \theta(\xi) = 1 - \exp\!\big(-\xi\,(g_0 + \xi\, e^{\,n(\xi)})\big),\qquad g_0 = T_x(0)\,L/(T_{max}-T_{in}),

so ``T`` lies in ``[T_in, T_max)`` for every network (the output is squashed
into the admissible range, as the sigmoid of FlamePINN-1D does), ``T(0) = T_in``
exactly and ``T_x(0) = 10^5`` K/m exactly (``theta_xi(0) = g_0``).  A sigmoid
squash ``theta = sigmoid(n)`` cannot represent the inlet: ``theta = 0`` with a
finite slope needs ``n -> -inf`` there, so the inlet BCs would have to be soft;
with this form no boundary loss is needed and the only loss of the forward
problem is the residual.  The form starts "warm" (``theta(1) ~ 0.6`` for
``n ~ 0``); a cold start (``theta ~ g_0 xi``) lets Adam settle in the no-flame
state.

Trainable physical scalars use log parametrizations around their starting
values, ``s_L = s_L^0 e^{a}``, ``lambda = lambda^0 e^{b}``, ``E_a = E_a^0 e^{c}``
(``a = b = c = 0`` at the start): Adam's step is then a relative change of the
parameter, the same for all three whatever their units.

deepxde configuration.  :func:`load_deepxde` sets ``DDE_BACKEND=pytorch`` in the
process before the first import (so deepxde never reads or writes
``~/.deepxde/config.json``), selects float64, and restores torch's global
default dtype and device that deepxde changes on import.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, PhysinvError
from physinv.core.extras import require
from physinv.problems.flame.model import FlameProblem, algebraic_fields, make_problem, velocity

__all__ = [
    "PINNSettings",
    "FlamePINNResult",
    "check_observations",
    "load_deepxde",
    "flame_residual",
    "reduced_temperature",
    "inlet_slope",
    "train_flame_pinn",
    "INVERTIBLE",
]

#: Physical scalars the PINN can infer, with their default starting values (FlamePINN-1D's).
INVERTIBLE: dict[str, float] = {"sL": 0.4, "lam": 0.03, "Ea": 1.5e5}


# ----------------------------------------------------------------------------------------------
# deepxde, configured by physinv


def load_deepxde():
    """Import deepxde on the torch backend in float64 without touching ``~/.deepxde``.

    Sets ``DDE_BACKEND=pytorch`` before the first import (deepxde otherwise
    reads, or writes, ``~/.deepxde/config.json``), calls
    ``dde.config.set_default_float("float64")`` and restores torch's global
    default dtype and device, which deepxde changes as a side effect (physinv
    passes dtype and device explicitly where it needs them).

    Raises
    ------
    MissingExtraError
        deepxde is not installed (``pip install 'physinv[learn]'``).
    PhysinvError
        deepxde was already imported with another backend in this process.
    """
    import sys

    backend = os.environ.get("DDE_BACKEND")
    if "deepxde" not in sys.modules:
        if backend not in (None, "pytorch"):
            raise PhysinvError(
                f"DDE_BACKEND={backend!r} is set in the environment; physinv's PINNs need the pytorch "
                "backend (unset DDE_BACKEND or set it to pytorch)"
            )
        os.environ["DDE_BACKEND"] = "pytorch"
    dtype, device = torch.get_default_dtype(), torch.get_default_device()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        dde = require("deepxde", "learn", "physics-informed neural networks")
        if dde.backend.backend_name != "pytorch":
            raise PhysinvError(
                f"deepxde is already imported with the {dde.backend.backend_name!r} backend; "
                "physinv's PINNs need pytorch (import physinv.problems.flame.pinn before deepxde, "
                "or set DDE_BACKEND=pytorch)"
            )
        dde.config.set_default_float("float64")
    torch.set_default_dtype(dtype)
    torch.set_default_device(device)
    return dde


# ----------------------------------------------------------------------------------------------
# the residual in the PINN's variables


def flame_residual(theta: torch.Tensor, theta_xi: torch.Tensor, theta_xixi: torch.Tensor, s_L, problem: FlameProblem,
                   lam=None, Ea=None) -> torch.Tensor:
    r"""Scaled energy residual ``r = theta_xi - theta_xixi / Pe - Da omega`` (dimensionless).

    It is the model's energy equation
    (:func:`~physinv.problems.flame.model.energy_residual`, W/m^3) divided by
    ``rho_in s_L c_p (T_max - T_in) / L``, in ``xi = x/L`` and
    ``theta = (T - T_in)/(T_max - T_in)``: the same physics and the same
    closure (:func:`~physinv.problems.flame.model.algebraic_fields`), scaled so
    that the terms of the PINN loss are O(1)-O(10) instead of ~1e9 W/m^3.

    Parameters
    ----------
    theta, theta_xi, theta_xixi
        Reduced temperature and its first and second derivatives in ``xi``, shape ``(n, 1)`` or ``(n,)``.
    s_L
        Flame speed, m/s (float or 0-dim tensor).
    problem
        The :class:`~physinv.problems.flame.model.FlameProblem` (constants, ``T_in``, ``T_max``, ``rho_in``).
    lam, Ea
        Thermal conductivity W/(m K) and activation energy J/mol; default: the problem's.
    """
    pr = problem.params
    lam = pr["lam"] if lam is None else lam
    dT = problem.T_max - problem.T_in
    L = problem.length
    m_cp = problem.rho_in * s_L * pr["cp"]
    T = problem.T_in + dT * theta
    omega = algebraic_fields(T, s_L, problem, None if Ea is None else {"Ea": Ea})["omega"]
    return theta_xi - (lam / (m_cp * L)) * theta_xixi - (pr["qF"] * L / (m_cp * dT)) * omega


def inlet_slope(problem: FlameProblem) -> float:
    """``g_0 = T_x(0) L / (T_max - T_in)``: the inlet gradient in reduced variables."""
    return problem.params["dTdx0"] * problem.length / (problem.T_max - problem.T_in)


def reduced_temperature(xi: torch.Tensor, n: torch.Tensor, g0: float) -> torch.Tensor:
    r"""Hard-constrained ``theta = 1 - exp(-xi (g0 + xi exp(n(xi))))``, in ``[0, 1)`` for ``xi >= 0``.

    ``theta(0) = 0`` and ``theta_xi(0) = g0`` whatever the network output ``n``.
    """
    rate = g0 + xi * torch.exp(torch.clamp(n, max=50.0))
    return -torch.expm1(-xi * rate)


# ----------------------------------------------------------------------------------------------
# settings and results


@dataclass(frozen=True)
class PINNSettings:
    """Network and optimizer settings (defaults: FlamePINN-1D's paper run).

    ``adam_iterations`` Adam steps at ``lr``, multiplied by ``decay_rate`` every
    ``decay_every`` steps, then up to ``lbfgs_iterations`` L-BFGS iterations
    (torch's L-BFGS with strong-Wolfe line search, through deepxde).
    ``data_weight`` multiplies the observation loss (mean squared *relative*
    misfit of ``T`` and ``u``) against the mean squared scaled residual.
    ``input_scale``: the network input is ``input_scale * (2 xi - 1)``.
    """

    hidden: tuple[int, ...] = (64, 64, 64)
    collocation: int = 1001
    adam_iterations: int = 30000
    lr: float = 1e-3
    decay_every: int = 1000
    decay_rate: float = 0.95
    lbfgs_iterations: int = 0
    data_weight: float = 1.0
    input_scale: float = 5.0
    display_every: int = 250

    def __post_init__(self):
        if self.collocation < 10:
            raise InvalidParameterError(f"collocation must be >= 10 points; got {self.collocation}")
        if self.adam_iterations < 0 or self.lbfgs_iterations < 0 or self.adam_iterations + self.lbfgs_iterations < 1:
            raise InvalidParameterError("adam_iterations and lbfgs_iterations must be >= 0, at least one > 0")
        if not (self.lr > 0 and self.data_weight > 0 and self.input_scale > 0):
            raise InvalidParameterError("lr, data_weight and input_scale must be > 0")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise InvalidParameterError(f"hidden layer sizes must be >= 1; got {self.hidden}")


def check_observations(x, T, u, noise: float, length: float = 1.5e-3) -> None:
    """Validate observation arrays (shared by the PINN and the classic fit)."""
    if not (x.size == T.size == u.size):
        raise InvalidParameterError(f"x, T and u must have the same length; got {x.size}, {T.size}, {u.size}")
    if x.size < 3:
        raise InvalidParameterError(f"need at least 3 observation points to infer 3 parameters; got {x.size}")
    for name, a in (("x", x), ("T", T), ("u", u)):
        if not np.all(np.isfinite(a)):
            raise InvalidParameterError(f"observations {name} contain NaN/Inf")
    if np.any(T <= 0) or np.any(u <= 0):
        raise InvalidParameterError("observed T (K) and u (m/s) must be > 0")
    if np.any(x < 0) or np.any(x > length * (1 + 1e-12)):
        raise InvalidParameterError(f"observation points must lie in [0, {length}] m")
    if not (math.isfinite(noise) and 0 <= noise < 1):
        raise InvalidParameterError(f"relative noise level must be in [0, 1); got {noise}")


@dataclass
class FlamePINNResult:
    """A trained flame PINN: inferred scalars, fields, histories."""

    problem: FlameProblem
    params: dict[str, float]
    inferred: tuple[str, ...]
    seconds: float
    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)
    residual_history: list[float] = field(default_factory=list)
    data_history: list[float] = field(default_factory=list)
    param_history: dict[str, list[float]] = field(default_factory=dict)
    _theta: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def s_L(self) -> float:
        return self.params["sL"]

    def fields(self, x) -> dict[str, np.ndarray]:
        """``T, u, rho, Y_F, omega`` (SI) at points ``x`` (m) from the trained network."""
        x = np.asarray(x, dtype=np.float64).ravel()
        prob = self.problem
        T = prob.T_in + (prob.T_max - prob.T_in) * self._theta(x / prob.length)
        Tt = torch.from_numpy(T)
        with torch.no_grad():
            alg = algebraic_fields(Tt, torch.tensor(self.s_L, dtype=torch.float64), self.problem_with(),
                                   {"Ea": torch.tensor(self.params["Ea"], dtype=torch.float64)})
        return {"x": x, "T": T, **{k: v.numpy() for k, v in alg.items()}}

    def problem_with(self) -> FlameProblem:
        """The problem with the inferred ``lambda`` and ``E_a``."""
        prob = self.problem
        return FlameProblem(prob.phi, prob.T_in, prob.p,
                            {**prob.params, "lam": self.params["lam"], "Ea": self.params["Ea"]})


# ----------------------------------------------------------------------------------------------
# training


def _network(dde, settings: PINNSettings, g0: float, dtype):
    """The deepxde network: tanh MLP body ``n`` and the hard-constrained output ``theta``."""

    class FlameNet(dde.nn.NN):
        def __init__(self):
            super().__init__()
            self.body = dde.nn.FNN([1, *settings.hidden, 1], "tanh", "Glorot normal")
            self.scale = settings.input_scale

        def raw(self, xi):
            return self.body(self.scale * (2.0 * xi - 1.0))

        def forward(self, xi):
            return reduced_temperature(xi, self.raw(xi), g0)

    return FlameNet().to(dtype)


class _ObservationBC:
    """Relative misfit of ``T`` or ``u`` at points (a deepxde point-set condition).

    ``error = (q(xi) - q_obs) / q_obs`` with ``q`` computed from the network's
    ``theta`` by ``to_quantity``.
    """

    def __init__(self, xi: np.ndarray, values: np.ndarray, to_quantity):
        self.points = np.asarray(xi, dtype=np.float64).reshape(-1, 1)
        self.values = torch.as_tensor(values, dtype=torch.float64).reshape(-1, 1)
        self.to_quantity = to_quantity

    def __len__(self):
        return self.points.shape[0]

    def collocation_points(self, X):
        return self.points

    def error(self, X, inputs, outputs, beg, end, aux_var=None):
        q = self.to_quantity(outputs[beg:end])
        v = self.values.to(q.device)
        return (q - v) / v


def train_flame_pinn(
    phi: float = 0.46,
    T_in: float = 298.0,
    p_atm: float = 1.0,
    *,
    observations=None,
    infer: Sequence[str] = ("sL",),
    initial: Mapping[str, float] | None = None,
    settings: PINNSettings = PINNSettings(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "PINN",
) -> FlamePINNResult:
    r"""Train the flame PINN (forward: ``infer=("sL",)``; inverse: ``("sL", "lam", "Ea")`` with observations).

    Loss: ``mean(r^2)`` over ``settings.collocation`` uniform points in ``xi``
    plus, with observations, ``data_weight * (mean(((T - T_obs)/T_obs)^2) +
    mean(((u - u_obs)/u_obs)^2))``, where ``u`` follows from ``T`` and the
    trainable ``s_L`` by the model relation.  Inlet BCs are exact (see the
    module docstring).  Parameters not in ``infer`` keep the model's values.

    Parameters
    ----------
    phi, T_in, p_atm
        Equivalence ratio (in :data:`physinv.problems.flame.model.PHI_RANGE`), inlet
        temperature (K, > 0), pressure (atm, > 0).
    observations
        Point data with attributes ``x`` (m), ``T`` (K), ``u`` (m/s) and
        ``noise`` (relative), e.g. :class:`physinv.problems.flame.fit.FlameObservations`;
        required when inferring ``lam`` or ``Ea``.
    infer
        Names among :data:`INVERTIBLE` (``sL`` always: it is the eigenvalue).
    initial
        Starting values (default :data:`INVERTIBLE`: ``s_L = 0.4`` m/s,
        ``lambda = 0.03`` W/(m K), ``E_a = 1.5e5`` J/mol).
    settings
        :class:`PINNSettings`.
    seed
        Seeds torch (network initialization).
    device
        Torch device for training.
    """
    problem = make_problem(phi, T_in, p_atm)  # InvalidParameterError on bad phi, T_in, p
    infer = tuple(infer)
    unknown = [n for n in infer if n not in INVERTIBLE]
    if unknown or "sL" not in infer:
        raise InvalidParameterError(
            f"infer must contain 'sL' (the eigenvalue) and names among {list(INVERTIBLE)}; got {list(infer)}"
        )
    if ({"lam", "Ea"} & set(infer)) and observations is None:
        raise InvalidParameterError("inferring lam or Ea needs observations (x, T, u)")
    if observations is not None:
        obs_x, obs_T, obs_u = (np.asarray(getattr(observations, k), dtype=np.float64).ravel() for k in "xTu")
        check_observations(obs_x, obs_T, obs_u, float(getattr(observations, "noise", 0.0)), problem.length)
    start = dict(INVERTIBLE)
    start.update(initial or {})
    for k, v in start.items():
        if not (math.isfinite(v) and v > 0):
            raise InvalidParameterError(f"initial {k} must be finite and > 0; got {v}")
    dde = load_deepxde()
    device = torch.device(device)
    dtype = torch.float64
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)

    logs = {n: torch.zeros((), dtype=dtype, device=device, requires_grad=True) for n in infer}

    def value(name):
        if name in logs:
            return start[name] * torch.exp(logs[name])
        return problem.params[name]

    dT = problem.T_max - problem.T_in

    def pde(xi, theta):
        theta_xi = dde.grad.jacobian(theta, xi, i=0, j=0)
        theta_xixi = dde.grad.hessian(theta, xi, i=0, j=0)
        return flame_residual(theta, theta_xi, theta_xixi, value("sL"), problem, lam=value("lam"), Ea=value("Ea"))

    conditions = []
    if observations is not None:
        xi_obs = obs_x / problem.length
        conditions.append(_ObservationBC(xi_obs, obs_T, lambda th: problem.T_in + dT * th))
        conditions.append(_ObservationBC(
            xi_obs, obs_u,
            lambda th: velocity(problem.T_in + dT * th, value("sL"), problem.Rg, problem.T_in)))
    geom = dde.geometry.Interval(0.0, 1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        data = dde.data.PDE(geom, pde, conditions, num_domain=settings.collocation - 2, num_boundary=2,
                            train_distribution="uniform", num_test=None)
    net = _network(dde, settings, inlet_slope(problem), dtype).to(device)
    weights = [1.0] + [settings.data_weight] * len(conditions)
    model = dde.Model(data, net)
    variables = list(logs.values())

    result = FlamePINNResult(problem, {}, infer, 0.0, param_history={n: [] for n in INVERTIBLE})
    bar = _ProgressBar(settings.adam_iterations + settings.lbfgs_iterations, desc, progress)

    def record(step: int, losses: np.ndarray):
        result.steps.append(step)
        result.times.append(time.perf_counter() - t0)
        losses = np.asarray(losses, dtype=np.float64).ravel()  # deepxde reports weighted terms
        result.loss_history.append(float(np.sum(losses)))
        result.residual_history.append(float(losses[0]))
        result.data_history.append(float(np.sum(losses[1:])) / settings.data_weight if losses.size > 1 else 0.0)
        for n in INVERTIBLE:
            result.param_history[n].append(float(value(n).detach()) if torch.is_tensor(value(n)) else value(n))
        bar.update(step, result.loss_history[-1], result.param_history["sL"][-1])

    callback = _make_callback(dde, record)
    t0 = time.perf_counter()
    with torch.device(device), _default_dtype(dtype), contextlib.redirect_stdout(io.StringIO()):
        if settings.adam_iterations:
            model.compile("adam", lr=settings.lr, decay=("step", settings.decay_every, settings.decay_rate),
                          loss_weights=weights, external_trainable_variables=variables)
            model.train(iterations=settings.adam_iterations, display_every=settings.display_every,
                        callbacks=[callback], verbose=0)
        if settings.lbfgs_iterations:
            dde.optimizers.config.set_LBFGS_options(maxiter=settings.lbfgs_iterations, gtol=1e-12, ftol=0)
            opts = dde.optimizers.config.LBFGS_options  # report every display_every iterations
            opts["iter_per_step"] = min(settings.display_every, settings.lbfgs_iterations)
            opts["fun_per_step"] = opts["maxfun"] * opts["iter_per_step"] // opts["maxiter"]
            model.compile("L-BFGS", loss_weights=weights, external_trainable_variables=variables)
            model.train(display_every=settings.display_every, callbacks=[callback], verbose=0)
    bar.close()
    result.seconds = time.perf_counter() - t0
    with torch.no_grad():
        result.params = {n: float(value(n)) for n in INVERTIBLE}
    for name, v in result.params.items():
        if not math.isfinite(v):
            raise PhysinvError(f"PINN training diverged: {name} = {v}")
    net.eval()

    def theta_of(xi: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            t = torch.as_tensor(xi, dtype=dtype, device=device).reshape(-1, 1)
            return net(t).reshape(-1).cpu().numpy()

    result._theta = theta_of
    return result


@contextlib.contextmanager
def _default_dtype(dtype):
    """Default dtype for deepxde's tensors; denormals flushed to zero.

    Behind the flame ``1 - theta = exp(-xi rate)`` and with it ``Y_F`` and
    ``omega`` underflow into the subnormal range, where CPU arithmetic is ~10x slower.
    """
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
        torch.set_flush_denormal(False)


def _make_callback(dde, record):
    class Recorder(dde.callbacks.Callback):
        """Records losses and parameters whenever deepxde has evaluated them (every ``display_every`` steps)."""

        def __init__(self):
            super().__init__()
            self.seen = None

        def _maybe_record(self):
            state = self.model.train_state
            if state.loss_train is not None and state.loss_train is not self.seen:
                self.seen = state.loss_train
                record(state.step, state.loss_train)

        def on_epoch_end(self):
            self._maybe_record()

        def on_train_end(self):
            self._maybe_record()

    return Recorder()


class _ProgressBar:
    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, mininterval=1.0)
        self.n = 0

    def update(self, step: int, loss: float, sL: float):
        if self.bar is not None:
            self.bar.update(max(step - self.n, 0))
            self.bar.set_postfix(loss=f"{loss:.3e}", sL=f"{sL:.4f}", refresh=False)
        self.n = max(step, self.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
