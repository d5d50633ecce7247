r"""Any DOLFINx variational problem as a differentiable physinv simulator.

The user writes the residual of a (possibly nonlinear) PDE in UFL,

.. math::

    F(u, m; v) = 0 \quad \forall v \in V_0, \qquad u = g \text{ on the Dirichlet dofs},

with the state ``u`` in a DOLFINx function space ``V`` and the control ``m``
in a space ``M`` (DG0, P1, any DOLFINx space) or a vector of ``k`` real
constants.  :class:`FormSimulator` turns ``m -> obs(u(m), m)`` into a
:class:`torch.nn.Module` that torch differentiates in both modes, exactly (to
round-off) and without unrolling Newton iterations:

* **forward**: Newton's method on ``F(u, m) = 0`` with the Jacobian
  ``J_u = dF/du`` assembled from ``ufl.derivative(F, u)``; a residual that is
  affine in ``u`` is detected symbolically and solved by one linear solve.
  Linear systems are solved with PETSc (MUMPS LU by default);
* **reverse mode** (the gradient): one adjoint solve per experiment,

  .. math::

      J_u^T \lambda = \Big(\frac{\partial\,\mathrm{obs}}{\partial u}\Big)^T g,
      \qquad \lambda = 0 \text{ on the Dirichlet dofs},

      \nabla_m = -\Big(\frac{\partial F}{\partial m}\Big)^T \lambda
                 + \Big(\frac{\partial\,\mathrm{obs}}{\partial m}\Big)^T g,

  ``g`` the upstream gradient of the observation; the transposed solve
  reuses the factorization of ``J_u``;
* **forward mode** (``J dm``, what the Gauss-Newton-CG of
  :mod:`physinv.invert` uses through :func:`torch.autograd.forward_ad`):
  one tangent solve ``J_u du = -(dF/dm) dm`` (``du = 0`` on the Dirichlet
  dofs), then ``d obs = (d obs/du) du + (d obs/dm) dm``.

``dF/dm`` is assembled as the sparse matrix of
``ufl.derivative(F, m, TrialFunction(M))`` once per linearization point and
serves both modes (for a vector of constants, ``m`` is a ``ufl.variable`` and
its columns are the vectors of ``ufl.diff``).  Dirichlet data do not depend on
``m``: with the Dirichlet rows of the discrete system written as
``u_D - g = 0``, the adjoint and tangent systems are ``J_u`` with those rows and
columns replaced by the identity and zero right-hand side there, which is what
the code assembles.

Example
-------
>>> import dolfinx, torch, ufl
>>> from mpi4py import MPI
>>> msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 16, 16)
>>> V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
>>> M = dolfinx.fem.functionspace(msh, ("DG", 0))           # m: one value per cell
>>> def residual(u, m, v):                                  # -div(e^m (1 + u^2) grad u) = 1
...     return ufl.exp(m) * (1 + u**2) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - v * ufl.dx
>>> sim = FormSimulator(V, M, residual, bcs=[("boundary", 0.0)], observe=[[0.3, 0.4], [0.7, 0.5]])
>>> m = torch.zeros(sim.num_controls, dtype=torch.float64, requires_grad=True)
>>> sim(m).sum().backward()                                 # one Newton solve, one adjoint solve
>>> m.grad.shape
torch.Size([512])

DOLFINx is imported when a simulator is built (:func:`~physinv.fem.dolfinx.import_dolfinx`):
importing this module does not import it, and a missing DOLFINx raises
:class:`~physinv.core.errors.MissingExtraError` naming ``physinv[fem]``.

Limits: serial meshes only (``comm.size == 1``; the mesh may live on
``MPI.COMM_WORLD`` of a one-process run); real float64 only; Dirichlet
values fixed (not controls).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.fem.dolfinx import import_dolfinx
from physinv.fem.form_base import FormSimulatorBase
from physinv.fem.form_control import assemble_control_derivative, control_derivative, diff_constant
from physinv.fem.form_solve import (
    NewtonError,
    assemble_vector,
    destroy,
    dirichlet_bcs,
    dirichlet_dofs,
    factorize,
    newton,
    same_form,
)
from physinv.fem.quadrature import pin_quadrature_degree

__all__ = ["FormSimulator", "NewtonError"]


class _Experiment:
    """Compiled forms and Dirichlet data of one experiment."""

    def __init__(self, F, J, J_form, dFdm, bcs, bc_dofs, linear):
        self.F, self.J, self.J_form, self.dFdm = F, J, J_form, dFdm
        self.bcs, self.bc_dofs, self.linear = bcs, bc_dofs, linear
        self.operator_key = None  # experiments with equal keys share J_u (linear problems)


class _Point:
    """The solution at one control ``m``: states of every experiment and, lazily, their linearizations."""

    def __init__(self, m: np.ndarray):
        self.m = m
        self.states: list[np.ndarray] = []
        self.obs: list[np.ndarray] = []
        self.solvers: dict = {}  # key -> (A, ksp): factorized J_u
        self.dFdm: dict = {}  # experiment -> (n_u, n_m) sensitivity matrix
        self.obs_grads: dict = {}  # experiment -> (dObs/du, dObs/dm)




class FormSimulator(FormSimulatorBase):
    r"""A DOLFINx variational problem ``F(u, m; v) = 0`` as a differentiable map ``m -> obs(u(m), m)``.

    The simulator creates the state ``u`` (a ``dolfinx.fem.Function`` on
    ``V``), the control ``m`` and the test function ``v``, and calls the
    user's ``residual(u, m, v)`` once per experiment to get the UFL form of

    .. math::

        F(u, m; v) = 0 \quad \forall v, \qquad u = g \text{ on the Dirichlet dofs}.

    Calling the module solves it (Newton, or one linear solve when ``F`` is
    affine in ``u``) and returns the observation; gradients come from one
    adjoint solve ``J_u^T \lambda = (\partial obs/\partial u)^T g`` and
    ``\nabla_m = -(\partial F/\partial m)^T \lambda + (\partial obs/\partial m)^T g``,
    Jacobian-vector products from one tangent solve
    ``J_u\,du = -(\partial F/\partial m)\,dm`` (module docstring).

    Parameters
    ----------
    V
        DOLFINx function space of the state ``u`` (any element; the mesh must be
        serial).
    control
        Where ``m`` lives: a DOLFINx function space ``M`` (e.g.
        ``functionspace(msh, ("DG", 0))`` for one value per cell, ``("Lagrange", 1)``
        for nodal values), so that ``m`` is a ``Function`` on ``M`` with
        ``n_m = M``'s number of dofs; or an ``int`` ``k``: ``m`` is then a vector of
        ``k`` real constants (index it as ``m[0]``, ``m[1]`` ... in the residual).
    residual
        ``residual(u, m, v) -> ufl.Form``, linear in ``v``; with ``experiments``,
        ``residual(u, m, v, s)`` where ``s`` is the experiment's entry (a source
        term, a load factor, anything UFL accepts).
    bcs
        Dirichlet conditions: a list whose entries are ``dolfinx.fem.DirichletBC``
        objects or pairs ``(where, value)``.  ``where`` is ``"boundary"`` (the whole
        exterior boundary), an array of dof indices of ``V``, or a marker
        ``x -> bool array`` (facets whose vertices all satisfy it); ``value`` is a
        number, a function ``x -> values`` (interpolated) or a ``Function`` on ``V``.
        With ``experiments``, also a callable ``s -> list``.  The tangent and
        adjoint problems use the same dofs with homogeneous values.
    observe
        What the simulator returns for each experiment:

        * ``"state"`` (default): the dof vector of ``u``, ``(n_u,)`` in DOLFINx's dof order
          (:attr:`state_coordinates` gives the dof positions);
        * an array of sensor points ``(n_points, gdim)``: ``u`` at the points,
          ``(n_points,)`` (``(n_points, bs)`` for a vector ``V``), through a sparse
          matrix of basis values built once (:func:`point_evaluation_matrix`);
          points outside the mesh are refused;
        * a callable ``observe(u, m) -> ufl.Form`` (a scalar functional ``J(u, m)``,
          output shape ``()``) or a list of such forms (output ``(n_forms,)``).
    experiments
        Optional sequence of per-experiment data ``s`` passed to ``residual`` (and
        to ``bcs`` when callable).  The output gets an experiment axis.  Each
        experiment is one nonlinear solve; for a linear problem whose Jacobian form
        and Dirichlet dofs are the same for all experiments (e.g. only the source
        differs), one factorization of ``J_u`` serves every experiment's forward,
        tangent and adjoint solves.
    linear
        ``None`` (default): detected symbolically (``F`` affine in ``u`` iff the
        second derivative ``d^2F/du^2`` is an empty form); ``True``: solve by one
        Newton step (exact for affine ``F``; a warning if the detection disagrees);
        ``False``: Newton iterations with the convergence test even for affine ``F``.
    petsc_options
        PETSc options of the linear solves, laid over MUMPS LU
        (``{"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}``).
        The adjoint solve is a transposed solve (``KSPSolveTranspose``).
    rtol, atol, max_it
        Newton stops when ``||F(u_k)|| <= max(atol, rtol ||F(u_0)||)`` (Euclidean norm
        over the free dofs); :class:`NewtonError` (with the residual history) after
        ``max_it`` iterations, or when the residual turns non-finite or grows by
        ``divergence_factor`` over its start.
    divergence_factor
        See above (default ``1e8``).
    initial_guess
        Newton's start: ``None`` (zero, with the Dirichlet values set) or a callable
        ``x -> values`` interpolated into ``V``.  Every solve starts from it, so
        repeated calls give identical results.
    warm_start
        If True, Newton starts instead from the last state this simulator solved for the
        same experiment (continuation along an optimization path, as pyadjoint's replay
        does): fewer iterations, and results that depend on the call history at the level
        of the Newton tolerance.
    cache_size
        Solutions (states, factorizations, ``dF/dm``) of this many recent controls are kept,
        keyed by the bytes of ``m``: the tangent and adjoint solves of one iterate, and a
        repeated forward at the same ``m``, reuse them.  After changing a ``Function`` or
        ``Constant`` of your own that the residual uses, call :meth:`clear_cache`.

    Shapes and dtypes
    -----------------
    ``forward(m)`` takes ``m`` of shape ``(n_m,)`` or a batch ``(batch, n_m)``
    (one solve per member) and returns ``(batch?, n_experiments?, *obs_shape)``.
    Computation is float64 (DOLFINx's PETSc is real double): float32 controls are
    refused rather than silently promoted; a CUDA tensor is moved to the CPU for the
    FEM solves and the result moved back (the solves themselves run on the CPU).

    Attributes
    ----------
    u, m, v
        The DOLFINx state Function, the control (Function or ``ufl.variable`` of a
        Constant) and the test function the forms are built on.
    num_controls, num_states
        ``n_m`` and ``n_u``.
    linear
        Whether the residual is affine in ``u`` (per the detection or the user).
    num_operators
        Number of distinct Jacobians ``J_u`` among the experiments of a linear problem
        (1 when all share one factorization per control); the number of experiments
        for a nonlinear one.
    M
        The control's function space (``None`` for a vector of constants).
    calls
        ``{"newton_iterations": ..., "factorizations": ..., "solves": ...}`` counters.
    """

    _display_name = "FormSimulator"
    _tensor_hint = " (convert with torch.as_tensor(..., dtype=torch.float64))"

    def __init__(
        self,
        V,
        control,
        residual: Callable[..., Any],
        bcs: Sequence | Callable[[Any], Sequence] = (),
        observe: str | np.ndarray | Sequence | Callable[..., Any] = "state",
        *,
        experiments: Sequence[Any] | None = None,
        linear: bool | None = None,
        petsc_options: dict | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-12,
        max_it: int = 50,
        divergence_factor: float = 1e8,
        initial_guess: Callable | None = None,
        warm_start: bool = False,
        cache_size: int = 8,
    ):
        super().__init__()
        import_dolfinx("FormSimulator (DOLFINx variational problems as simulators)")
        import ufl
        from dolfinx import fem

        self._check_serial(V.mesh)
        self._check_newton_settings(rtol, atol, max_it, divergence_factor)
        self._init_solver(V, petsc_options, rtol, atol, max_it, divergence_factor, cache_size)
        self.calls = {"newton_iterations": 0, "factorizations": 0, "solves": 0}

        # state, test function, control
        self._init_state_and_control(V, control)
        self._du = ufl.TrialFunction(V)
        self._constant = self._control.constant

        # experiments
        self._with_experiments = experiments is not None
        items = list(experiments) if experiments is not None else [None]
        if not items:
            raise InvalidParameterError("experiments must hold at least one entry")
        self._initial = None
        self.warm_start, self._last_states = bool(warm_start), {}
        if initial_guess is not None:
            guess = fem.Function(V)
            guess.interpolate(initial_guess)
            self._initial = guess.x.array.copy()
        self._experiments = [self._compile(residual, bcs, s, linear) for s in items]
        self.linear = all(e.linear for e in self._experiments)
        keys: list[int] = []
        for i, exp in enumerate(self._experiments):
            exp.operator_key = i
            if exp.linear:
                for j in range(i):
                    other = self._experiments[j]
                    if (other.linear and other.operator_key == j and same_form(exp.J, other.J)
                            and np.array_equal(exp.bc_dofs, other.bc_dofs)):
                        exp.operator_key = j
                        break
            keys.append(exp.operator_key)
        self.num_operators = len(set(keys))
        self._compile_observation(observe)

    # ------------------------------------------------------------------ setup

    def _call_residual(self, residual, s):
        if not callable(residual):
            raise InvalidParameterError("residual must be a callable residual(u, m, v) -> ufl.Form")
        if self._with_experiments:
            return residual(self.u, self.m, self.v, s)
        return residual(self.u, self.m, self.v)

    def _compile(self, residual, bcs, s, linear) -> _Experiment:
        from dolfinx import fem

        F = self._call_residual(residual, s)
        # J_u and dF/dm integrated by F's rule: exact discrete derivatives
        F = self._checked_residual(F, "residual", "residual", "inner(grad(u), grad(v)) * dx - f * v * dx")
        J, affine = self._state_jacobian(F, self._du, "residual", "state u")
        if linear and not affine:
            warnings.warn("linear=True, but the residual is not affine in u (d^2F/du^2 is not an empty form): "
                          "one Newton step will not solve it; leave linear=None to detect it", stacklevel=3)
        linear = affine if linear is None else linear
        # dF/dm: a bilinear form (test V, trial M), or k linear forms for k constants
        dFdm_forms, _, empty = control_derivative(F, self._control)
        if empty:
            raise InvalidParameterError(
                "the residual does not depend on the control m: dF/dm is an empty form; use the m the residual "
                "callable receives (e.g. exp(m) * inner(grad(u), grad(v)) * dx), not a Function of your own")
        bc_list = bcs(s) if callable(bcs) else bcs
        bc_objects = self._make_bcs(bc_list)
        bc_dofs = dirichlet_dofs(bc_objects)
        return _Experiment(fem.form(F), J, fem.form(J), dFdm_forms, bc_objects, bc_dofs, bool(linear))

    def _diff_constant(self, form, i: int):
        """``d form / d m_i`` for the constant control (``ufl.diff`` on the integrands); ``None`` if empty."""
        return diff_constant(form, self.m, i)

    def _make_bcs(self, entries) -> list:
        return dirichlet_bcs(self.V, entries)

    def _compile_observation(self, observe) -> None:
        import ufl
        from dolfinx import fem
        from ufl.algorithms import expand_derivatives

        self._functionals = None
        self._P = None
        if callable(observe):
            forms = observe(self.u, self.m)
            single = isinstance(forms, ufl.Form)
            forms = [forms] if single else list(forms)
            compiled = []
            for J in forms:
                if not isinstance(J, ufl.Form) or len(J.arguments()) != 0:
                    raise InvalidParameterError(
                        "observe(u, m) must return a scalar ufl.Form (no test or trial functions), or a list of them")
                J = pin_quadrature_degree(J)
                dJdu = expand_derivatives(ufl.derivative(J, self.u, self.v))
                if self.M is not None:
                    dJdm = expand_derivatives(ufl.derivative(J, self.m, ufl.TestFunction(self.M)))
                    dJdm = None if dJdm.empty() else fem.form(dJdm)
                else:
                    parts = [self._diff_constant(J, i) for i in range(self.num_controls)]
                    dJdm = [None if p is None else fem.form(p) for p in parts]
                compiled.append((fem.form(J), None if dJdu.empty() else fem.form(dJdu), dJdm))
            self._functionals = compiled
            self.observe_kind = "functional"
            self.obs_shape = () if single else (len(compiled),)
            return
        self._observe_state_or_points(observe, "'state', sensor points or a functional")

    # ------------------------------------------------------------------ coordinates and helpers

    def clear_cache(self) -> None:
        """Forget the cached solutions and factorizations.

        The simulator keeps the solutions of the last ``cache_size`` controls (so that the
        jvp and adjoint solves of one iterate reuse its Newton solve and factorization).
        Call this after changing a ``Function`` or ``Constant`` of your own that the residual
        uses (a source, a load factor): the cache is keyed by ``m`` only.  Also forgets the
        states a ``warm_start`` continues from.
        """
        self._cache.clear()
        self._last_states.clear()

    # ------------------------------------------------------------------ numerics

    def _vector(self, form) -> np.ndarray:
        return assemble_vector(form, self.num_states)

    def _factorize(self, exp: _Experiment):
        """Assemble ``J_u`` at the loaded ``(u, m)`` (Dirichlet rows and columns identity) and set up its solver."""
        solver = factorize(exp.J_form, exp.bcs, self.mesh.comm, self.petsc_options)
        self.calls["factorizations"] += 1
        return solver

    def _newton(self, exp: _Experiment, point: _Point, index: int) -> np.ndarray:
        """Solve ``F(u, m) = 0`` for the loaded ``m``; returns the dof vector of ``u``."""
        if self.warm_start and index in self._last_states:
            u = self._last_states[index].copy()
        else:
            u = np.zeros(self.num_states) if self._initial is None else self._initial[: self.num_states].copy()
        self._set_state(u)
        for bc in exp.bcs:
            bc.set(self.u.x.array)
        self.u.x.scatter_forward()
        free = np.ones(self.num_states, dtype=bool)
        free[exp.bc_dofs] = False

        def jacobian_solve(rhs: np.ndarray) -> np.ndarray:
            if exp.linear:
                key = exp.operator_key
                if key not in point.solvers:
                    point.solvers[key] = self._factorize(exp)
                du = self._solve(point.solvers[key], rhs)
            else:
                solver = self._factorize(exp)
                try:
                    du = self._solve(solver, rhs)
                finally:
                    destroy(solver)
            self.calls["newton_iterations"] += 1
            return du

        newton(self.u, self.num_states, lambda: self._vector(exp.F), jacobian_solve, free, linear=exp.linear,
               rtol=self.rtol, atol=self.atol, max_it=self.max_it, divergence_factor=self.divergence_factor)
        state = self.u.x.array[: self.num_states].copy()
        if self.warm_start:
            self._last_states[index] = state
        return state

    def _observe(self, exp_index: int, u: np.ndarray) -> np.ndarray:
        from dolfinx import fem

        if self.observe_kind == "state":
            return u.copy()
        if self.observe_kind == "points":
            return self._P @ u
        return np.array([fem.assemble_scalar(J) for J, _, _ in self._functionals], dtype=np.float64)

    def _compute_point(self, m: np.ndarray) -> _Point:
        """Solve every experiment at ``m`` (uncached; :meth:`_solve_point` caches)."""
        point = _Point(m.copy())
        self._set_control(m)
        for i, exp in enumerate(self._experiments):
            u = self._newton(exp, point, i)
            point.states.append(u)
            point.obs.append(self._observe(i, u))
        return point

    def _linearization(self, point: _Point, e: int):
        """``(solver of J_u, dF/dm, dObs/du, dObs/dm)`` at the point's state of experiment ``e`` (cached)."""
        import scipy.sparse as sp
        from dolfinx import fem

        exp = self._experiments[e]
        key = exp.operator_key if exp.linear else ("state", e)
        need = key not in point.solvers or e not in point.dFdm or e not in point.obs_grads
        if need:
            self._set_control(point.m)
            self._set_state(point.states[e])
        if key not in point.solvers:
            point.solvers[key] = self._factorize(exp)
        if e not in point.dFdm:
            point.dFdm[e] = assemble_control_derivative(exp.dFdm, self._control, self.num_states)
        if e not in point.obs_grads:
            if self.observe_kind == "state":
                point.obs_grads[e] = (sp.identity(self.num_states, format="csr"), None)
            elif self.observe_kind == "points":
                point.obs_grads[e] = (self._P, None)
            else:
                du_rows, dm_rows = [], []
                for _, dJdu, dJdm in self._functionals:
                    du_rows.append(np.zeros(self.num_states) if dJdu is None else self._vector(dJdu))
                    dm_rows.append(self._functional_dm(dJdm))
                point.obs_grads[e] = (np.stack(du_rows), np.stack(dm_rows))
        return point.solvers[key], point.dFdm[e], *point.obs_grads[e]

    def _functional_dm(self, dJdm) -> np.ndarray:
        from dolfinx import fem, la

        if self.M is None:
            return np.array([0.0 if f is None else fem.assemble_scalar(f) for f in dJdm])
        if dJdm is None:
            return np.zeros(self.num_controls)
        vec = fem.assemble_vector(dJdm)
        vec.scatter_reverse(la.InsertMode.add)
        return vec.array[: self.num_controls].copy()

    def _vjp(self, point: _Point, e: int, g: np.ndarray) -> np.ndarray:
        """``grad_m = -(dF/dm)^T lam + (dObs/dm)^T g`` with ``J_u^T lam = (dObs/du)^T g``, ``lam = 0`` on the
        Dirichlet dofs."""
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if not np.any(g):
            return np.zeros(self.num_controls)
        solver, dFdm, dobs_du, dobs_dm = self._linearization(point, e)
        rhs = np.asarray(dobs_du.T @ g).ravel()
        rhs[self._experiments[e].bc_dofs] = 0.0
        lam = self._solve(solver, rhs, transpose=True)
        lam[self._experiments[e].bc_dofs] = 0.0
        grad = -np.asarray(dFdm.T @ lam).ravel()
        if dobs_dm is not None:
            grad = grad + dobs_dm.T @ g
        return grad

    def _jvp(self, point: _Point, e: int, dm: np.ndarray) -> np.ndarray:
        """``dObs = (dObs/du) du + (dObs/dm) dm`` with ``J_u du = -(dF/dm) dm``, ``du = 0`` on Dirichlet dofs."""
        solver, dFdm, dobs_du, dobs_dm = self._linearization(point, e)
        rhs = -np.asarray(dFdm @ dm).ravel()
        rhs[self._experiments[e].bc_dofs] = 0.0
        du = self._solve(solver, rhs) if np.any(rhs) else np.zeros(self.num_states)
        du[self._experiments[e].bc_dofs] = 0.0
        out = np.asarray(dobs_du @ du).ravel()
        if dobs_dm is not None:
            out = out + dobs_dm @ dm
        return out

    # ------------------------------------------------------------------ torch interface

    def _shape_hint(self) -> str:
        what = f"{self.num_controls} constants" if self.M is None else f"{self.num_controls} dofs of the control space"
        return f": the control has {what}"

    def _point_output(self, point: _Point) -> np.ndarray:
        return np.stack(point.obs)  # (n_experiments, n_obs)

    def _point_vjp(self, point: _Point, g: np.ndarray) -> np.ndarray:
        return sum(self._vjp(point, e, g[e]) for e in range(g.shape[0]))

    def _point_jvp(self, point: _Point, dm: np.ndarray) -> np.ndarray:
        return np.array([self._jvp(point, e, dm) for e in range(len(self._experiments))], dtype=np.float64)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """``obs(u(m), m)``: shape ``(batch?, n_experiments?, *obs_shape)`` (class docstring)."""
        experiments = (len(self._experiments),) if self._with_experiments else ()
        return self._apply(m, experiments + self.obs_shape)

    def extra_repr(self) -> str:
        return (f"n_u={self.num_states}, n_m={self.num_controls}, observe={self.observe_kind}, "
                f"experiments={len(self._experiments)}, linear={self.linear}")
