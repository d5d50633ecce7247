"""What :class:`~physinv.fem.FormSimulator` and :class:`~physinv.fem.TimeSteppingFormSimulator` share.

:class:`FormSimulatorBase` holds the plumbing both DOLFINx simulators have in
common: the serial-mesh and Newton-setting checks, the state ``u``, test function
``v`` and control ``m`` (:func:`~physinv.fem.form_control.make_control`), state or
point observations, the coordinates of the state and control dofs, interpolation
into the control space, loading ``m`` and ``u``, counted PETSc solves, the cache of
solutions keyed by the bytes of ``m``, the parameter checks and the torch side of
``forward`` (float64 rows on the CPU, one solve per row, the result moved back to
the device of ``m``).  :class:`_PointFunction` is the :class:`torch.autograd.Function`
of both: forward, adjoint backward and tangent jvp, per control, delegated to the
simulator.

DOLFINx is imported by the subclasses' constructors; importing this module does not
import it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError
from physinv.core.simulator import Simulator
from physinv.fem.form_control import make_control
from physinv.fem.form_solve import DEFAULT_PETSC_OPTIONS, solve
from physinv.fem.point_evaluation import point_evaluation_matrix

__all__ = ["FormSimulatorBase"]


def _float64_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a float64 NumPy array on the CPU (detached)."""
    return t.detach().cpu().to(torch.float64).numpy()


class _PointFunction(torch.autograd.Function):
    """``(batch, n_m) -> (batch, *sample_shape)``: one solve per row, adjoint backward and tangent jvp.

    The simulator ``sim`` provides ``_solve_point(m) -> point``, ``_point_output(point)``,
    ``_point_vjp(point, g)`` and ``_point_jvp(point, dm)`` (NumPy arrays, one control).
    """

    @staticmethod
    def forward(ctx, m, sim):
        points = [sim._solve_point(row) for row in m.detach().numpy()]
        ctx.sim, ctx.points = sim, points
        return torch.from_numpy(np.stack([sim._point_output(p) for p in points]))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        g = _float64_numpy(grad_out)
        return torch.from_numpy(np.stack([ctx.sim._point_vjp(p, g[b]) for b, p in enumerate(ctx.points)])), None

    @staticmethod
    def jvp(ctx, m_t, _sim_t):
        dm = _float64_numpy(m_t)
        return torch.from_numpy(np.stack([ctx.sim._point_jvp(p, dm[b]) for b, p in enumerate(ctx.points)]))


class FormSimulatorBase(Simulator):
    """Common base of the DOLFINx form simulators (not used on its own).

    Subclasses call, in their constructor, :meth:`_check_serial`,
    :meth:`_check_newton_settings`, :meth:`_init_solver` and
    :meth:`_init_state_and_control`, then set ``observe_kind``, ``obs_shape`` and
    ``_P`` (e.g. through :meth:`_observe_state_or_points`); they implement
    ``_compute_point(m)`` (the solution at one control, cached by :meth:`_solve_point`),
    ``_point_output``, ``_point_vjp`` and ``_point_jvp`` (for :class:`_PointFunction`),
    and ``forward`` through :meth:`_apply`.

    Attributes
    ----------
    V, mesh
        The state's function space and its (serial) mesh.
    u, v, m
        The DOLFINx state Function, the test function and the control (Function or
        ``ufl.variable`` of a Constant) the forms are built on.
    M
        The control's function space (``None`` for a vector of constants).
    num_controls, num_states
        ``n_m`` and ``n_u``.
    rtol, atol, max_it, divergence_factor, petsc_options, cache_size
        Newton and linear-solver settings, and how many solutions are cached.
    """

    #: the class name the error messages use
    _display_name = "FormSimulatorBase"
    #: appended to the error for an ``m`` that is not a tensor
    _tensor_hint = ""

    # ------------------------------------------------------------------ setup

    def _check_serial(self, msh) -> None:
        """Raise :class:`PhysinvError` unless ``msh`` lives on one process."""
        if msh.comm.size != 1:
            raise PhysinvError(
                f"{self._display_name} runs on serial meshes; this mesh is distributed over {msh.comm.size} "
                "processes (create it on MPI.COMM_SELF)")

    @staticmethod
    def _check_newton_settings(rtol: float, atol: float, max_it: int, divergence_factor: float) -> None:
        """Raise :class:`InvalidParameterError` unless the Newton tolerances and limits are admissible."""
        for name, value in (("rtol", rtol), ("atol", atol)):
            if not (np.isfinite(value) and value >= 0):
                raise InvalidParameterError(f"{name} must be finite and >= 0; got {value}")
        if not divergence_factor > 1:
            raise InvalidParameterError(f"divergence_factor must be > 1; got {divergence_factor}")
        if int(max_it) < 1:
            raise InvalidParameterError(f"max_it must be >= 1; got {max_it}")

    def _init_solver(self, V, petsc_options: dict | None, rtol: float, atol: float, max_it: int,
                     divergence_factor: float, cache_size: int) -> None:
        """Store ``V``, its mesh, the Newton and PETSc settings, and an empty solution cache."""
        self.V, self.mesh = V, V.mesh
        self.rtol, self.atol, self.max_it = float(rtol), float(atol), int(max_it)
        self.divergence_factor = float(divergence_factor)
        self.petsc_options = {**DEFAULT_PETSC_OPTIONS, **(petsc_options or {})}
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[bytes, Any] = OrderedDict()

    def _init_state_and_control(self, V, control) -> None:
        """Create the state ``u``, the test function ``v`` and the control ``m`` (a space ``M`` or ``k`` constants)."""
        import ufl
        from dolfinx import fem

        self.u = fem.Function(V, name="u")
        self.v = ufl.TestFunction(V)
        self.num_states = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
        self._control = make_control(V.mesh, control)
        self.M, self.m = self._control.M, self._control.symbol
        self.num_controls = self._control.size
        self.parameter_shape = (self.num_controls,)

    def _observe_state_or_points(self, observe, allowed: str) -> None:
        """Set ``observe_kind``, ``obs_shape`` and ``_P`` for ``observe="state"`` or sensor points.

        ``allowed`` names the accepted kinds in the error for another string.
        """
        self._P = None
        if isinstance(observe, str):
            if observe != "state":
                raise InvalidParameterError(f"observe must be {allowed}; got {observe!r}")
            self.observe_kind, self.obs_shape = "state", (self.num_states,)
            return
        self._P = point_evaluation_matrix(self.V, observe)
        bs = self.V.dofmap.bs
        n_points = self._P.shape[0] // bs
        self.observe_kind = "points"
        self.obs_shape = (n_points,) if bs == 1 else (n_points, bs)

    def _checked_residual(self, F, name: str, what: str, example: str):
        """``F`` with its quadrature degree pinned, after checking it is a rank-1 ``ufl.Form`` in ``v``.

        ``name`` (the argument), ``what`` (the residual, in prose) and ``example`` (a valid form)
        go into the error messages.
        """
        import ufl

        from physinv.fem.quadrature import pin_quadrature_degree

        if not isinstance(F, ufl.Form):
            raise InvalidParameterError(f"{name} must return a ufl.Form (e.g. {example}); got {type(F).__name__}")
        if len(F.arguments()) != 1 or F.arguments()[0] != self.v:
            raise InvalidParameterError(
                f"the {what} must be linear in the test function v it is given (a rank-1 form in v), with no "
                f"TrialFunction; got a form with arguments {F.arguments()}")
        return pin_quadrature_degree(F)  # derivatives integrated by F's rule: exact discrete derivatives

    def _state_jacobian(self, F, du, what: str, state: str):
        """``(J, affine)``: ``J = dF/du`` in the direction ``du`` and whether ``F`` is affine in ``u``
        (``d^2F/du^2`` an empty form); raises when ``F`` does not depend on ``u``."""
        import ufl
        from ufl.algorithms import expand_derivatives

        J = expand_derivatives(ufl.derivative(F, self.u, du))
        if J.empty():
            raise InvalidParameterError(f"the {what} does not depend on the {state}; nothing to solve for")
        return J, expand_derivatives(ufl.derivative(J, self.u, ufl.TrialFunction(self.V))).empty()

    # ------------------------------------------------------------------ coordinates and helpers

    @property
    def observation_matrix(self):
        """The sparse point-evaluation matrix ``(n_points * bs, n_u)`` of ``observe=points``, else ``None``."""
        return self._P

    @property
    def state_coordinates(self) -> np.ndarray:
        """``(n_u / bs, gdim)`` coordinates of the state dofs (the order of ``observe="state"``)."""
        return self.V.tabulate_dof_coordinates()[:, : self.mesh.geometry.dim]

    @property
    def control_coordinates(self) -> np.ndarray:
        """``(n_m, gdim)`` coordinates of the control dofs (cell midpoints for DG0)."""
        if self.M is None:
            raise InvalidParameterError("the control is a vector of constants; it has no coordinates")
        return self.M.tabulate_dof_coordinates()[:, : self.mesh.geometry.dim]

    def interpolate_control(self, f: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
        """``f`` interpolated into the control space, as a float64 tensor ``(n_m,)``.

        ``f(x)`` receives the points ``x`` of shape ``(3, n)`` and returns ``(n,)`` values
        (DOLFINx's interpolation convention).
        """
        from dolfinx import fem

        if self.M is None:
            raise InvalidParameterError("the control is a vector of constants; pass its values directly")
        fn = fem.Function(self.M)
        fn.interpolate(f)
        return torch.from_numpy(fn.x.array[: self.num_controls].copy())

    # ------------------------------------------------------------------ numerics

    def _set_control(self, m: np.ndarray) -> None:
        self._control.set(m)

    def _set_state(self, u: np.ndarray) -> None:
        self.u.x.array[: self.num_states] = u
        self.u.x.scatter_forward()

    def _solve(self, solver, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        """Solve with the factorized ``solver`` (``transpose``: the adjoint solve), counted in ``calls``."""
        out = solve(solver, rhs, self.petsc_options, transpose)
        self.calls["solves"] += 1
        return out

    def _solve_point(self, m: np.ndarray):
        """The solution at the control ``m`` (NumPy ``(n_m,)``): from the cache, or ``_compute_point(m)``."""
        key = m.tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        point = self._compute_point(m)
        self._cache[key] = point
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)  # PETSc objects go when the last autograd graph using them goes
        return point

    # ------------------------------------------------------------------ torch interface

    def _shape_hint(self) -> str:
        """Appended to the error for an ``m`` of the wrong shape."""
        return ""

    def check_parameters(self, m: torch.Tensor) -> None:
        """Raise unless ``m`` is a finite float64 tensor of shape ``(n_m,)`` or ``(batch, n_m)``."""
        if not torch.is_tensor(m):
            raise InvalidParameterError(
                f"m must be a torch.Tensor of shape ({self.num_controls},) or (batch, {self.num_controls}); got "
                f"{type(m).__name__}{self._tensor_hint}")
        if m.dtype != torch.float64:
            raise InvalidParameterError(
                f"{self._display_name} computes in float64 (DOLFINx's PETSc is real double); got m of dtype "
                f"{m.dtype}: convert with m.double()")
        if m.ndim not in (1, 2) or m.shape[-1] != self.num_controls:
            raise ShapeMismatchError(
                f"m has shape {tuple(m.shape)}; expected ({self.num_controls},) or (batch, {self.num_controls})"
                f"{self._shape_hint()}")
        if not bool(torch.isfinite(m.detach()).all()):
            raise InvalidParameterError(f"m contains {int((~torch.isfinite(m.detach())).sum())} NaN/Inf value(s)")

    def _apply(self, m: torch.Tensor, sample_shape: tuple) -> torch.Tensor:
        """Check ``m``, solve for each of its rows on the CPU (:class:`_PointFunction`) and return
        ``(batch?, *sample_shape)`` on the device of ``m``."""
        self.check_parameters(m)
        batched = m.ndim == 2
        device = m.device
        rows = (m if batched else m.unsqueeze(0)).cpu()
        out = _PointFunction.apply(rows, self)  # (batch, ...)
        shape = ((rows.shape[0],) if batched else ()) + tuple(sample_shape)
        return out.reshape(shape).to(device)
