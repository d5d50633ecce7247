r"""An evolution problem written as the UFL residual of one time step, as a differentiable simulator.

The user writes the residual of one step of a one-step scheme,

.. math::

    F_k(u_k, u_{k-1}, m; v) = 0 \quad \forall v, \qquad u_k = g \text{ on the Dirichlet dofs},
    \qquad k = 1, \dots, N, \qquad u_0 \text{ given},

at the times ``t_k = t_0 + k dt`` (``F_k`` may depend on ``t_k`` through the
``dolfinx.fem.Constant`` ``t`` the residual receives).  :func:`theta_scheme`
builds ``F_k`` for ``du/dt + A(u, m, t) = 0`` (implicit Euler ``theta = 1``,
Crank-Nicolson ``theta = 1/2``).  :class:`TimeSteppingFormSimulator` maps the
control ``m`` to observations of chosen steps, ``obs_j = P u_{k_j}``:

* **forward**: step by step, Newton's method on ``F_k(., u_{k-1}, m) = 0`` from
  ``u_{k-1}``, or one linear solve when ``F_k`` is affine in ``u_k``.  The step
  Jacobian ``J_k = dF_k/du_k`` is factorized once for the whole trajectory (and for
  every control) when its form depends on none of ``u_k``, ``u_{k-1}``, ``t`` and
  ``m``; once per control when it depends on ``m`` only; per step otherwise.  All
  states ``u_0 .. u_N`` are stored (``(N + 1) n_u`` floats per control);
* **reverse mode** (the gradient): ONE adjoint sweep backward over the steps,

  .. math::

      J_k^T \lambda_k = P^T g_k - B_{k+1}^T \lambda_{k+1}, \quad k = N, \dots, 1,
      \qquad \lambda_{N+1} = 0, \qquad \lambda_k = 0 \text{ on the Dirichlet dofs},

      \nabla_m = -\sum_{k=1}^{N} D_k^T \lambda_k,

  with ``B_k = dF_k/du_{k-1}``, ``D_k = dF_k/dm`` (assembled at the stored
  states) and ``g_k`` the upstream gradient of the observation of step ``k``
  (zero for unobserved steps); the sweep starts at the last observed step;
* **forward mode** (``J dm``): one tangent sweep forward,
  ``J_k du_k = -D_k dm - B_k du_{k-1}``, ``du_0 = 0``, ``du_k = 0`` on the
  Dirichlet dofs, ``d obs_j = P du_{k_j}``.

``B_k`` and ``D_k`` are assembled once when their forms depend on none of
``u_k, u_{k-1}, t`` (then ``\nabla_m = -D^T \sum_k \lambda_k``).  Gradients are
exact to round-off in float64; no Newton iteration is unrolled.

Example
-------
>>> import dolfinx, torch, ufl
>>> from mpi4py import MPI
>>> msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 8, 8)
>>> V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
>>> M = dolfinx.fem.functionspace(msh, ("DG", 0))          # the source m(x), one value per cell
>>> def spatial(u, m, v, t):                               # du/dt - div(0.1 grad u) = m
...     return 0.1 * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - m * v * ufl.dx
>>> sim = TimeSteppingFormSimulator(V, M, theta_scheme(spatial, dt=0.05, theta=0.5), u0=0.0, n_steps=20,
...                                 dt=0.05, bcs=[("boundary", 0.0)], observe=[[0.3, 0.4], [0.7, 0.5]])
>>> m = torch.ones(sim.num_controls, dtype=torch.float64)
>>> sim(m).shape                                           # (n_steps, n_points): every step observed
torch.Size([20, 2])

DOLFINx is imported when a simulator is built; importing this module does not import it.

Limits: serial meshes; float64; Dirichlet values constant in time and not
controls; ``u_0`` is data, not a control; point or state observations.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.fem.dolfinx import import_dolfinx
from physinv.fem.form_base import FormSimulatorBase
from physinv.fem.form_control import assemble_control_derivative, control_derivative
from physinv.fem.form_solve import (
    NewtonError,
    assemble_vector,
    destroy,
    dirichlet_bcs,
    dirichlet_dofs,
    factorize,
    newton,
)

__all__ = ["TimeSteppingFormSimulator", "theta_scheme"]


def _call(fn: Callable, args: tuple, name: str, signature: str):
    """``fn(*args)``, or ``fn(*args[:-1])`` when ``fn`` does not take the last argument (the time)."""
    if not callable(fn):
        raise InvalidParameterError(f"{name} must be a callable {signature}")
    try:
        signature_of = inspect.signature(fn)
    except ValueError:  # no signature (a builtin): the full call
        return fn(*args)
    for given in (args, args[:-1]):
        try:
            signature_of.bind(*given)
        except TypeError:
            continue
        return fn(*given)
    raise InvalidParameterError(f"{name} must be a callable {signature} (the last argument optional)")


def theta_scheme(spatial: Callable[..., Any], dt: float, theta: float = 1.0) -> Callable[..., Any]:
    r"""The residual of one theta-scheme step of ``du/dt + A(u, m, t) = 0``, for :class:`TimeSteppingFormSimulator`.

    .. math::

        F_k(u_k, u_{k-1}, m; v) = \int_\Omega \frac{u_k - u_{k-1}}{\Delta t} \cdot v \, dx
            + \theta\, A(u_k, m, t_k; v) + (1 - \theta)\, A(u_{k-1}, m, t_k - \Delta t; v),

    implicit Euler for ``theta = 1``, Crank-Nicolson for ``theta = 1/2`` (both
    A-stable), explicit Euler for ``theta = 0`` (stable only under a step
    restriction the scheme does not check).

    Parameters
    ----------
    spatial
        ``spatial(u, m, v, t) -> ufl.Form``: the weak spatial operator with the sources
        moved to the left, e.g. ``D inner(grad u, grad v) dx - f v dx`` for
        ``du/dt - div(D grad u) = f``; ``t`` is a UFL expression of the time (s) and may
        be left out of the signature (``spatial(u, m, v)``).
    dt
        Time step (s), > 0; the same ``dt`` the simulator is given.
    theta
        In ``[0, 1]``.

    Returns
    -------
    callable
        ``step(u, u_old, m, v, t)`` for :class:`TimeSteppingFormSimulator`.
    """
    if not (np.isfinite(dt) and dt > 0):
        raise InvalidParameterError(f"dt must be finite and > 0; got {dt}")
    if not (0.0 <= theta <= 1.0):
        raise InvalidParameterError(f"theta must lie in [0, 1] (1: implicit Euler, 0.5: Crank-Nicolson); got {theta}")
    signature = "spatial(u, m, v, t) -> ufl.Form"

    def step(u, u_old, m, v, t):
        import ufl
        from dolfinx import fem

        # dt and theta as Constants: the compiled kernels do not depend on their values
        msh = u.function_space.mesh
        k, th = fem.Constant(msh, float(dt)), fem.Constant(msh, float(theta))
        form = ufl.inner(u - u_old, v) / k * ufl.dx
        if theta > 0:
            form = form + th * _call(spatial, (u, m, v, t), "spatial", signature)
        if theta < 1:
            form = form + (1 - th) * _call(spatial, (u_old, m, v, t - k), "spatial", signature)
        return form

    return step


class _Operator:
    """A derivative of the step residual, compiled once, with what its value depends on.

    ``policy`` is ``"global"`` (depends on none of ``u_k, u_{k-1}, t, m``: assembled once),
    ``"control"`` (on ``m`` only: once per control) or ``"step"`` (at every step).
    """

    def __init__(self, compiled, ufl_forms, sim: "TimeSteppingFormSimulator"):
        self.compiled = compiled
        coefficients, constants = set(), set()
        for form in ufl_forms:
            coefficients.update(form.coefficients())
            constants.update(form.constants())
        on_step = sim.u in coefficients or sim.u_old in coefficients or sim.t in constants
        on_m = (sim.m in coefficients) if sim.M is not None else (sim._control.constant in constants)
        self.policy = "step" if on_step else ("control" if on_m else "global")
        self.empty = not ufl_forms


class _Point:
    """The trajectory at one control ``m``: all states and the control-dependent operators."""

    def __init__(self, m: np.ndarray, states: np.ndarray):
        self.m = m
        self.states = states  # (n_steps + 1, n_u)
        self.cached: dict = {}  # operator name -> value (policy "control")



class TimeSteppingFormSimulator(FormSimulatorBase):
    r"""``m -> (P u_{k_1}, ..., P u_{k_J})`` for the steps ``F_k(u_k, u_{k-1}, m; v) = 0``, differentiable.

    Forward: ``n_steps`` steps from ``u0`` (Newton, or one linear solve per step
    with a factorization reused as long as the step Jacobian allows);
    gradient: one adjoint sweep backward; ``J dm``: one tangent sweep forward
    (module docstring for the equations).

    Parameters
    ----------
    V
        DOLFINx function space of the state (serial mesh; scalar or vector elements).
    control
        A DOLFINx function space ``M`` (``m`` a ``Function`` on it: a source or coefficient
        field) or an ``int`` ``k`` (``m`` a vector of ``k`` constants, ``m[0]`` ...).
    step_residual
        ``step_residual(u, u_old, m, v, t) -> ufl.Form``: the residual of one step, linear
        in ``v``; ``u`` is the new state ``u_k``, ``u_old`` is ``u_{k-1}``, ``t`` a
        ``dolfinx.fem.Constant`` holding the new time ``t_k`` (s) (may be left out of the
        signature).  :func:`theta_scheme` builds it from a spatial operator.
    u0
        Initial state ``u_0``: a number, a callable ``x -> values`` (interpolated), a
        ``Function`` on ``V`` or a dof array ``(n_u,)``.  Data, not a control.
    n_steps
        Number of steps ``N >= 1``.
    dt
        Time step (s), > 0; ``t_k = t0 + k dt``.
    bcs
        Dirichlet conditions, as for :class:`~physinv.fem.FormSimulator`
        (``[("boundary", 0.0)]``, ``[(marker, value)]``, ``DirichletBC`` objects); their
        values hold at every step ``k >= 1``.
    observe
        ``"state"`` (the dof vector of ``u_k``) or sensor points ``(n_points, gdim)`` (m).
    observe_steps, observe_times
        Which steps are observed: step indices in ``0..N`` (increasing), or times (s) that
        must be step times ``t0 + k dt``.  Default: every step ``1..N``.
    t0
        Initial time (s).
    linear
        ``None``: detected symbolically (``F_k`` affine in ``u_k``); ``True``/``False`` as
        in :class:`~physinv.fem.FormSimulator`.
    petsc_options, rtol, atol, max_it, divergence_factor
        Linear solver (MUMPS LU by default) and Newton settings of each step, as in
        :class:`~physinv.fem.FormSimulator`.
    cache_size
        Trajectories of this many recent controls are kept (each ``(N + 1) n_u`` floats):
        the adjoint and tangent sweeps of one iterate reuse its forward run.

    Shapes
    ------
    ``forward(m)``: ``m`` ``(n_m,)`` or ``(batch, n_m)`` float64 ->
    ``(batch?, n_observed_steps, *obs_shape)``, ``obs_shape`` ``(n_u,)``, ``(n_points,)`` or
    ``(n_points, bs)`` for a vector ``V``.

    Attributes
    ----------
    u, u_old, m, v, t
        The new state, the previous state, the control, the test function and the time
        ``Constant`` the residual is built on.
    times
        ``(N + 1,)`` step times ``t_0 .. t_N`` (s).
    observe_steps
        The observed step indices.
    linear
        Whether the step residual is affine in ``u_k``.
    operator_policy
        For ``"jacobian"``, ``"coupling"`` (``dF/du_old``) and ``"control"`` (``dF/dm``):
        ``"global"`` (assembled once), ``"control"`` (once per control) or ``"step"``.
    calls
        Counters: ``steps``, ``newton_iterations``, ``factorizations``, ``solves``.
    """

    _display_name = "TimeSteppingFormSimulator"

    def __init__(
        self,
        V,
        control,
        step_residual: Callable[..., Any],
        u0,
        n_steps: int,
        dt: float,
        bcs: Sequence = (),
        observe: str | np.ndarray | Sequence = "state",
        *,
        observe_steps: Sequence[int] | None = None,
        observe_times: Sequence[float] | None = None,
        t0: float = 0.0,
        linear: bool | None = None,
        petsc_options: dict | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-12,
        max_it: int = 50,
        divergence_factor: float = 1e8,
        cache_size: int = 4,
    ):
        super().__init__()
        import_dolfinx("TimeSteppingFormSimulator (time-dependent DOLFINx forms as simulators)")
        import ufl
        from dolfinx import fem
        from ufl.algorithms import expand_derivatives

        msh = V.mesh
        self._check_serial(msh)
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise InvalidParameterError(f"n_steps must be an int >= 1; got {n_steps!r}")
        for name, value in (("dt", dt), ("t0", t0)):
            if not np.isfinite(value):
                raise InvalidParameterError(f"{name} must be finite; got {value}")
        if not dt > 0:
            raise InvalidParameterError(f"dt must be > 0 (s); got {dt}")
        self._check_newton_settings(rtol, atol, max_it, divergence_factor)
        if int(cache_size) < 1:
            raise InvalidParameterError(f"cache_size must be >= 1; got {cache_size}")
        self._init_solver(V, petsc_options, rtol, atol, max_it, divergence_factor, cache_size)
        self.n_steps, self.dt, self.t0 = int(n_steps), float(dt), float(t0)
        self.times = self.t0 + self.dt * np.arange(self.n_steps + 1)
        self._global: dict = {}
        self.calls = {"steps": 0, "newton_iterations": 0, "factorizations": 0, "solves": 0}

        self._init_state_and_control(V, control)
        self.u_old = fem.Function(V, name="u_old")
        self.t = fem.Constant(msh, self.t0 + self.dt)

        F = _call(step_residual, (self.u, self.u_old, self.m, self.v, self.t), "step_residual",
                  "step_residual(u, u_old, m, v, t) -> ufl.Form")
        # J, B and D integrated by F's rule: exact discrete derivatives
        F = self._checked_residual(F, "step_residual", "step residual",
                                   "(u - u_old) / dt * v * dx + inner(grad(u), grad(v)) * dx - m * v * dx")
        J, affine = self._state_jacobian(F, ufl.TrialFunction(V), "step residual", "new state u")
        if linear and not affine:
            warnings.warn("linear=True, but the step residual is not affine in u: one Newton step will not solve "
                          "it; leave linear=None to detect it", stacklevel=2)
        self.linear = bool(affine if linear is None else linear)
        B = expand_derivatives(ufl.derivative(F, self.u_old, ufl.TrialFunction(V)))
        dFdm, dFdm_forms, empty = control_derivative(F, self._control)
        if empty:
            raise InvalidParameterError(
                "the step residual does not depend on the control m: dF/dm is an empty form; use the m the residual "
                "callable receives (e.g. - m * v * dx for a source), not a Function of your own")
        self._F = fem.form(F)
        self._J = _Operator(fem.form(J), [J], self)
        self._B = _Operator(None if B.empty() else fem.form(B), [] if B.empty() else [B], self)
        self._D = _Operator(dFdm, dFdm_forms, self)
        self.operator_policy = {"jacobian": self._J.policy, "coupling": self._B.policy, "control": self._D.policy}

        self.bcs = dirichlet_bcs(V, bcs)
        self._bc_dofs = dirichlet_dofs(self.bcs)
        self._free = np.ones(self.num_states, dtype=bool)
        self._free[self._bc_dofs] = False
        self._u0 = self._initial_state(u0)
        self._set_observation(observe, observe_steps, observe_times)

    # ------------------------------------------------------------------ setup

    def _initial_state(self, u0) -> np.ndarray:
        from dolfinx import fem

        if isinstance(u0, fem.Function):
            if u0.function_space != self.V:
                raise InvalidParameterError("u0 must be a Function on the state space V")
            arr = u0.x.array[: self.num_states].copy()
        elif callable(u0):
            fn = fem.Function(self.V)
            fn.interpolate(u0)
            arr = fn.x.array[: self.num_states].copy()
        elif np.ndim(u0) == 0:
            arr = np.full(self.num_states, float(u0))
        else:
            arr = np.asarray(u0.detach().cpu() if torch.is_tensor(u0) else u0, dtype=np.float64).ravel()
            if arr.shape != (self.num_states,):
                raise ShapeMismatchError(f"u0 must hold the {self.num_states} dofs of V; got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InvalidParameterError("u0 contains NaN/Inf values")
        return arr

    def _set_observation(self, observe, observe_steps, observe_times) -> None:
        if observe_steps is not None and observe_times is not None:
            raise InvalidParameterError("give observe_steps or observe_times, not both")
        if observe_times is not None:
            times = np.atleast_1d(np.asarray(observe_times, dtype=np.float64))
            steps = np.rint((times - self.t0) / self.dt).astype(np.int64)
            off = np.abs(self.t0 + steps * self.dt - times) > 1e-9 * max(self.dt, abs(self.t0))
            if off.any() or times.size == 0:
                raise InvalidParameterError(
                    f"observe_times must be step times t0 + k dt (t0={self.t0:g} s, dt={self.dt:g} s); "
                    f"{times[off][:5].tolist() if off.any() else 'none given'} are not")
        elif observe_steps is None:
            steps = np.arange(1, self.n_steps + 1)
        else:
            steps = np.atleast_1d(np.asarray(observe_steps))
            if not np.issubdtype(steps.dtype, np.integer):
                raise InvalidParameterError(f"observe_steps must be integers in 0..{self.n_steps}; got {steps}")
        if steps.size == 0 or steps.min() < 0 or steps.max() > self.n_steps or np.any(np.diff(steps) <= 0):
            raise InvalidParameterError(
                f"observed steps must be increasing indices in 0..n_steps={self.n_steps} (times t0 .. t0 + n_steps "
                f"dt); got {steps.tolist()}")
        self.observe_steps = steps.astype(np.int64)
        self._P = None
        if callable(observe):
            raise InvalidParameterError("TimeSteppingFormSimulator observes 'state' or sensor points, "
                                        "not functionals")
        self._observe_state_or_points(observe, "'state' or sensor points")

    # ------------------------------------------------------------------ public helpers

    def clear_cache(self) -> None:
        """Forget stored trajectories and factorizations (after changing a Function or Constant of your own)."""
        self._cache.clear()
        self._global.clear()

    @property
    def stored_state_bytes(self) -> int:
        """Bytes of the stored trajectories (all cached controls): ``(N + 1) n_u`` float64 each."""
        return int(sum(p.states.nbytes for p in self._cache.values()))

    def trajectory(self, m: torch.Tensor) -> torch.Tensor:
        """All states ``(N + 1, n_u)`` (``u_0 .. u_N``) at the control ``m`` ``(n_m,)`` (not differentiable)."""
        self.check_parameters(m)
        if m.ndim != 1:
            raise ShapeMismatchError(f"trajectory takes one control (n_m,); got shape {tuple(m.shape)}")
        return torch.from_numpy(self._solve_point(m.detach().cpu().numpy()).states.copy())

    # ------------------------------------------------------------------ numerics

    def _load(self, point: _Point, k: int) -> None:
        """Load ``u_k``, ``u_{k-1}`` and ``t_k`` (the control is loaded by the caller)."""
        self._set_state(point.states[k])
        self.u_old.x.array[: self.num_states] = point.states[k - 1]
        self.u_old.x.scatter_forward()
        self.t.value = self.times[k]

    def _factorize(self):
        solver = factorize(self._J.compiled, self.bcs, self.mesh.comm, self.petsc_options, name="time_step")
        self.calls["factorizations"] += 1
        return solver

    def _shared_solver(self, point: _Point):
        """The factorized ``J`` when its policy is ``global`` or ``control`` (kept), else ``None``."""
        if self._J.policy == "global":
            if "jacobian" not in self._global:
                self._global["jacobian"] = self._factorize()
            return self._global["jacobian"]
        if self._J.policy == "control":
            if "jacobian" not in point.cached:
                point.cached["jacobian"] = self._factorize()
            return point.cached["jacobian"]
        return None

    def _matrix(self, op: _Operator, name: str, point: _Point):
        """``B`` or ``D`` at the loaded step (kept when its policy allows)."""
        if op.empty:
            return None
        store = self._global if op.policy == "global" else point.cached if op.policy == "control" else None
        if store is not None and name in store:
            return store[name]
        if name == "coupling":
            from dolfinx import fem

            value = fem.assemble_matrix(op.compiled).to_scipy().tocsr()[: self.num_states, : self.num_states]
        else:
            value = assemble_control_derivative(op.compiled, self._control, self.num_states)
        if store is not None:
            store[name] = value
        return value

    def _compute_point(self, m: np.ndarray) -> _Point:
        """The trajectory at ``m``, step by step (uncached; :meth:`_solve_point` caches)."""
        states = np.empty((self.n_steps + 1, self.num_states))
        states[0] = self._u0
        point = _Point(m.copy(), states)
        self._set_control(m)
        shared = self._shared_solver(point) if self.linear else None
        for k in range(1, self.n_steps + 1):
            self.u_old.x.array[: self.num_states] = states[k - 1]
            self.u_old.x.scatter_forward()
            self.u.x.array[: self.num_states] = states[k - 1]
            for bc in self.bcs:
                bc.set(self.u.x.array)
            self.u.x.scatter_forward()
            self.t.value = self.times[k]
            step_solver = None

            def jacobian_solve(rhs: np.ndarray) -> np.ndarray:
                nonlocal step_solver
                self.calls["newton_iterations"] += 1
                if shared is not None:
                    return self._solve(shared, rhs)
                if self.linear:  # one factorization for the step's one linear solve
                    step_solver = self._factorize()
                    return self._solve(step_solver, rhs)
                solver = self._factorize()
                try:
                    return self._solve(solver, rhs)
                finally:
                    destroy(solver)

            try:
                newton(self.u, self.num_states, lambda: assemble_vector(self._F, self.num_states), jacobian_solve,
                       self._free, linear=self.linear, rtol=self.rtol, atol=self.atol, max_it=self.max_it,
                       divergence_factor=self.divergence_factor)
            except NewtonError as exc:
                raise NewtonError(f"time step {k} (t = {self.times[k]:.6g} s): {exc}", exc.history) from exc
            finally:
                if step_solver is not None:
                    destroy(step_solver)
            states[k] = self.u.x.array[: self.num_states]
            self.calls["steps"] += 1
        return point

    def _observe(self, point: _Point) -> np.ndarray:
        if self._P is None:
            return point.states[self.observe_steps]  # a copy (fancy indexing): the output itself
        return np.stack([self._P @ point.states[k] for k in self.observe_steps])  # no copy of the states

    def _step_operators(self, point: _Point, k: int, need_coupling: bool):
        """``(solver of J_k, owned, B_k or None, D_k)``; ``u_k, u_{k-1}, t_k`` are loaded when an operator
        of policy ``"step"`` needs them (the others depend on the loaded control only)."""
        if (self._J.policy == "step" or self._D.policy == "step"
                or (need_coupling and self._B.policy == "step")):
            self._load(point, k)
        solver = self._shared_solver(point)
        owned = solver is None
        if owned:
            solver = self._factorize()
        B = self._matrix(self._B, "coupling", point) if need_coupling else None
        return solver, owned, B, self._matrix(self._D, "control", point)

    def _adjoint_sweep(self, point: _Point, g: np.ndarray) -> np.ndarray:
        r"""``grad_m = -sum_k D_k^T lam_k``, ``J_k^T lam_k = P^T g_k - B_{k+1}^T lam_{k+1}`` (one sweep back)."""
        g = np.asarray(g, dtype=np.float64).reshape(len(self.observe_steps), -1)
        observed = {int(k): j for j, k in enumerate(self.observe_steps) if np.any(g[j]) and k > 0}
        grad = np.zeros(self.num_controls)
        if not observed:
            return grad
        self._set_control(point.m)
        lam_sum = np.zeros(self.num_states)
        lam_next = None  # lam_{k+1}, with B_{k+1} applied: B_{k+1}^T lam_{k+1}
        for k in range(max(observed), 0, -1):
            if k in observed:  # P^T g_k, formed here: no n_steps x n_u array besides the states
                j = observed[k]
                rhs = g[j].copy() if self._P is None else np.asarray(self._P.T @ g[j]).ravel()
            else:
                rhs = np.zeros(self.num_states)
            if lam_next is not None:
                rhs -= lam_next
            if not np.any(rhs):
                lam_next = None
                continue
            rhs[self._bc_dofs] = 0.0
            solver, owned, _, D = self._step_operators(point, k, need_coupling=False)
            try:
                lam = self._solve(solver, rhs, transpose=True)
            finally:
                if owned:
                    destroy(solver)
            lam[self._bc_dofs] = 0.0
            if self._D.policy == "step":
                grad -= np.asarray(D.T @ lam).ravel()
            else:
                lam_sum += lam
            # B_k^T lam_k for step k - 1 (B_k evaluated at step k's states)
            if k > 1 and not self._B.empty:
                if self._B.policy == "step":
                    self._load(point, k)
                B = self._matrix(self._B, "coupling", point)
                lam_next = np.asarray(B.T @ lam).ravel()
            else:
                lam_next = None
        if self._D.policy != "step":  # D depends on the loaded control only: grad = -D^T sum_k lam_k
            grad -= np.asarray(self._matrix(self._D, "control", point).T @ lam_sum).ravel()
        return grad

    def _tangent_sweep(self, point: _Point, dm: np.ndarray) -> np.ndarray:
        """``J_k du_k = -D_k dm - B_k du_{k-1}``, ``du_0 = 0``; returns ``P du_k`` at the observed steps."""
        out = np.zeros((len(self.observe_steps), int(np.prod(self.obs_shape))))
        last = int(self.observe_steps.max())
        if last == 0 or not np.any(dm):
            return out
        self._set_control(point.m)
        du = np.zeros(self.num_states)
        Ddm = None
        for k in range(1, last + 1):
            solver, owned, B, D = self._step_operators(point, k, need_coupling=k > 1)
            try:
                if Ddm is None or self._D.policy == "step":
                    Ddm = np.asarray(D @ dm).ravel()
                rhs = -Ddm.copy()
                if B is not None and np.any(du):
                    rhs -= np.asarray(B @ du).ravel()
                rhs[self._bc_dofs] = 0.0
                du = self._solve(solver, rhs) if np.any(rhs) else np.zeros(self.num_states)
            finally:
                if owned:
                    destroy(solver)
            du[self._bc_dofs] = 0.0
            for j in np.flatnonzero(self.observe_steps == k):
                out[j] = du if self._P is None else self._P @ du
        return out

    # ------------------------------------------------------------------ torch interface

    def _point_output(self, point: _Point) -> np.ndarray:
        return self._observe(point)

    def _point_vjp(self, point: _Point, g: np.ndarray) -> np.ndarray:
        return self._adjoint_sweep(point, g)

    def _point_jvp(self, point: _Point, dm: np.ndarray) -> np.ndarray:
        return self._tangent_sweep(point, dm)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """Observations ``(batch?, n_observed_steps, *obs_shape)`` (class docstring)."""
        return self._apply(m, (len(self.observe_steps),) + self.obs_shape)

    def extra_repr(self) -> str:
        return (f"n_u={self.num_states}, n_m={self.num_controls}, n_steps={self.n_steps}, dt={self.dt:g}, "
                f"observe={self.observe_kind}, observed_steps={len(self.observe_steps)}, linear={self.linear}, "
                f"operators={self.operator_policy}")
