r"""The differentiable 1D flame: model constants -> ``s_L`` and fields, by implicit differentiation.

:func:`flame_fields` and :class:`FlameSimulator` (registered as ``flame-1d``)
accept model constants (:data:`~physinv.problems.flame.model.DIFFERENTIABLE_PARAMS`:
``lambda`` W/(m K), ``E_a`` J/mol, ``A``, ...) as tensors.  ``T`` (K) at the
nodes and ``s_L`` (m/s) come from the Newton solve of
:mod:`physinv.problems.flame.solver`, wrapped in a
:class:`torch.autograd.Function` that differentiates the converged discrete
system ``F(z, theta) = 0``, ``z = (T_1..T_N, s_L)``, implicitly:

.. math::

    \frac{dz}{d\theta} = -F_z^{-1} F_\theta \quad (\text{forward mode, } jvp),\qquad
    \nabla_\theta = -F_\theta^T F_z^{-T} \nabla_z \quad (\text{reverse mode}),

one adjoint (or tangent) solve with the LU factors kept from the last Newton
step; ``F_theta`` comes from autograd through the torch residual
:func:`~physinv.problems.flame.solver.discrete_residual`.  No iteration is
unrolled.  The other fields (``u`` m/s, ``rho`` kg/m^3, ``Y_F``) follow from
``T`` and ``s_L`` by the model's closures
(:func:`~physinv.problems.flame.model.algebraic_fields`).
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.simulator import Simulator, SimulatorExample, register_simulator
from physinv.problems.flame.model import (
    ATM,
    DEFAULT_PARAMS,
    DIFFERENTIABLE_PARAMS,
    FlameProblem,
    algebraic_fields,
    constant_tensors,
    make_problem,
)
from physinv.problems.flame.solver import (
    FlameSolution,
    Stencils,
    discrete_residual,
    interpolation_weights,
    make_grid,
    solve_discrete,
)

__all__ = ["FlameSimulator", "flame_fields"]


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
        sol = solve_discrete(prob_v, x, initial)
        holder["solution"] = sol
        ctx.sol, ctx.names, ctx.st = sol, names, Stencils(x)
        ctx.values = tuple(v.detach() for v in values)
        dtype, device = values[0].dtype, values[0].device
        return (torch.as_tensor(sol.T, dtype=dtype, device=device),
                torch.as_tensor(sol.s_L, dtype=dtype, device=device))

    @staticmethod
    def _residual_of_theta(ctx):
        sol = ctx.sol
        z_T = torch.from_numpy(sol.T[1:])
        z_s = torch.tensor(sol.s_L, dtype=torch.float64)
        def res(*vals):
            constants = constant_tensors(sol.problem, overrides=dict(zip(ctx.names, vals)))
            return discrete_residual(z_T, z_s, sol.problem, ctx.st, constants)

        return res

    @staticmethod
    def backward(ctx, gT, gs):
        g = np.zeros(ctx.sol.T.size)
        if gT is not None:
            g[:-1] = gT.detach().cpu().double().numpy()[1:]
        if gs is not None:
            g[-1] = float(gs)
        adj = torch.from_numpy(ctx.sol.jacobian_lu.solve(g, trans="T"))
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
        dz = -ctx.sol.jacobian_lu.solve(dF.numpy())
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
        As in :func:`~physinv.problems.flame.solver.solve_flame`.
    initial
        Optional previous :class:`~physinv.problems.flame.solver.FlameSolution` to warm-start Newton.
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
    constants = constant_tensors(prob, dtype, device, overrides=dict(zip(names, values)))
    if x_obs is None:
        T, xq = T_nodes, x
    else:
        idx, wts = interpolation_weights(x, x_obs)
        T = (torch.as_tensor(wts, dtype=dtype, device=device) * T_nodes[torch.as_tensor(idx, device=device)]).sum(1)
        xq = np.asarray(x_obs.detach().cpu() if torch.is_tensor(x_obs) else x_obs, dtype=np.float64).ravel()
    alg = algebraic_fields(T, s, prob, constants)
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
        Node count or node array (see :func:`~physinv.problems.flame.solver.solve_flame`).
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
