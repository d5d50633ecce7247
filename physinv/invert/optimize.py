"""Classic PDE-constrained solvers: adjoint-gradient L-BFGS and Gauss-Newton.

Both minimize ``J(m) = 1/2 ||M (F(p(m)) - d)/sigma||^2 + beta R(m)`` of an
:class:`~physinv.invert.problem.InverseProblem` at a fixed weight ``beta``.
Gradients come from one forward and one adjoint solve (reverse-mode AD through
the implicitly differentiated simulator).  Gauss-Newton linearizes the
weighted residual in one of two ways:

* ``linearization="jvp"`` (matrix-free, inexact Gauss-Newton-CG): products
  ``H v = J^T J v + beta R'' v`` from one linearized forward solve (forward-mode
  AD, which repeats the primal solve with the cached factorization) and one
  adjoint solve through a forward graph kept for the whole outer iteration;
  CG to the Eisenstat-Walker tolerance.
* ``linearization="dense"``: the Jacobian ``J`` itself (the problem's
  ``jacobian``, e.g. a simulator's adjoint Jacobian, or autograd), and
  ``(J^T J + beta H_R) p = -g`` solved by Cholesky, with ``H_R`` the
  regularizer's model Hessian (lagged diffusivity for TV).  For parameters of
  a few thousand entries and many data (EIT), where ``J`` costs one adjoint
  solve per measurement functional.

Steps are globalized by Armijo backtracking, optionally capped at
``max|p| <= max_step`` (a factor ``exp(max_step)`` per step for ``m = log kappa``).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import scipy.optimize
import torch

from physinv.core.autodiff import hvp, jvp
from physinv.core.errors import InvalidParameterError, UnknownNameError
from physinv.invert.problem import InverseProblem
from physinv.invert.result import OptimizationResult
from physinv.linalg.cg import cg

LINEARIZATIONS = ("jvp", "dense")
_ARMIJO = 1e-4
_BACKTRACKS = 20


def _evaluate(problem: InverseProblem, m: torch.Tensor, beta: float) -> tuple[float, float, torch.Tensor]:
    """Objective, misfit ratio and gradient at ``m`` from one forward and one adjoint solve."""
    m = m.detach().clone().requires_grad_(True)
    residual = problem.weighted_residual(m)
    value = 0.5 * (residual**2).sum()
    if beta > 0:
        value = value + beta * problem.regularizer(m)
    (g,) = torch.autograd.grad(value, m)
    problem.calls.adjoint += 1
    value = float(value.detach())
    if not math.isfinite(value):
        raise FloatingPointError("the objective became non-finite during the optimization")
    return value, problem.misfit_ratio(residual), g


def _check_start(m0: torch.Tensor, beta: float) -> None:
    if not bool(torch.isfinite(m0).all()):
        raise InvalidParameterError("the initial guess m0 contains NaN/Inf")
    if not (beta >= 0 and math.isfinite(beta)):
        raise InvalidParameterError(f"regularization weight beta must be finite and >= 0; got {beta}")


def _check_bounds(bounds: tuple[float, float] | None, m0: torch.Tensor) -> scipy.optimize.Bounds | None:
    if bounds is None:
        return None
    lower, upper = (float(b) for b in bounds)
    if not lower < upper:
        raise InvalidParameterError(f"bounds must be (lower, upper) with lower < upper; got {bounds}")
    lo, hi = float(m0.min()), float(m0.max())
    if lo < lower or hi > upper:
        raise InvalidParameterError(f"the initial guess m0 spans [{lo:g}, {hi:g}], outside the bounds [{lower:g}, {upper:g}]")
    return scipy.optimize.Bounds(lower, upper)


def _start_result(problem: InverseProblem, m: torch.Tensor, method: str, beta: float) -> OptimizationResult:
    return OptimizationResult(m, method, beta, num_data=problem.num_data, calls=problem.calls.copy())


def _finish(result: OptimizationResult, problem: InverseProblem, start: float) -> OptimizationResult:
    result.misfit_ratio = result.misfit_ratio_history[-1]
    result.beta_path = [(result.beta, result.misfit_ratio, result.iterations)]
    result.calls = problem.calls - result.calls
    result.wall_time = time.perf_counter() - start
    return result


def minimize_lbfgs(
    problem: InverseProblem,
    m0: torch.Tensor,
    beta: float,
    maxiter: int = 500,
    gtol: float = 1e-6,
    memory: int = 20,
    callback: Callable[[int, float, float], None] | None = None,
    bounds: tuple[float, float] | None = None,
) -> OptimizationResult:
    """Adjoint-gradient L-BFGS (scipy's L-BFGS-B) on ``J``.

    ``bounds = (lower, upper)`` keeps every entry of ``m`` in that box (projected
    L-BFGS-B; ``m0`` must lie inside); None leaves ``m`` free.  Stops when the
    (projected) gradient's max-norm falls below ``gtol`` times its initial value,
    on scipy's relative-reduction test, or after ``maxiter`` iterations.
    ``callback(iteration, objective, misfit_ratio)`` reports progress.
    """
    start = time.perf_counter()
    _check_start(m0, beta)
    box = _check_bounds(bounds, m0)
    shape, dtype, device = m0.shape, m0.dtype, m0.device
    last: dict[str, object] = {}
    result = _start_result(problem, m0, "lbfgs", beta)

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        result.evaluations += 1
        m = torch.from_numpy(x).to(dtype=dtype, device=device).reshape(shape)
        value, ratio, g = _evaluate(problem, m, beta)
        grad = g.detach().cpu().to(torch.float64).numpy().ravel()
        last.update(x=x.copy(), ratio=ratio, gmax=float(np.abs(grad).max()))
        return value, grad

    x0 = m0.detach().cpu().to(torch.float64).numpy().ravel()
    j0, g0 = fun(x0)
    result.objective_history.append(j0)
    result.misfit_ratio_history.append(last["ratio"])
    result.grad_norm_history.append(last["gmax"])

    def record(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        x = intermediate_result.x
        if not np.array_equal(x, last["x"]):  # the accepted point is normally the last evaluated
            fun(x)
        result.objective_history.append(float(intermediate_result.fun))
        result.misfit_ratio_history.append(last["ratio"])
        result.grad_norm_history.append(last["gmax"])
        if callback is not None:
            callback(len(result.objective_history) - 1, result.objective_history[-1],
                     result.misfit_ratio_history[-1])

    out = scipy.optimize.minimize(
        fun, x0, jac=True, method="L-BFGS-B", callback=record,
        bounds=box, options={"maxiter": maxiter, "gtol": gtol * max(float(np.abs(g0).max()), 1e-300),
                             "ftol": 1e-12, "maxcor": memory},
    )
    result.m = torch.from_numpy(out.x).to(dtype=dtype, device=device).reshape(shape)
    result.iterations = int(out.nit)
    result.converged = bool(out.success)
    result.message = str(out.message)
    if not np.array_equal(out.x, last["x"]):
        fun(out.x)
    result.misfit_ratio_history[-1:] = [last["ratio"]]
    result.grad_norm_history[-1:] = [last["gmax"]]
    return _finish(result, problem, start)


def _regularizer_gradient(problem: InverseProblem, m: torch.Tensor) -> torch.Tensor:
    reg = problem.regularizer
    if hasattr(reg, "gradient"):
        return reg.gradient(m).reshape(-1)
    m = m.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(reg(m), m)
    return g.reshape(-1)


def _regularizer_hessian(problem: InverseProblem, m: torch.Tensor) -> torch.Tensor:
    reg = problem.regularizer
    if hasattr(reg, "hessian"):
        return reg.hessian(m)
    return torch.autograd.functional.hessian(lambda v: reg(v.reshape(m.shape)), m.detach().reshape(-1))


def _solve_spd(h: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``h^{-1} rhs`` by Cholesky; least squares where ``h`` is only semidefinite."""
    chol, info = torch.linalg.cholesky_ex(h)
    if int(info) == 0:
        return torch.cholesky_solve(rhs[:, None], chol)[:, 0]
    return torch.linalg.lstsq(h, rhs[:, None]).solution[:, 0]


def _value(problem: InverseProblem, m: torch.Tensor, beta: float) -> tuple[float, torch.Tensor]:
    """``J(m)`` and the weighted residual at ``m`` (one forward solve, no graph)."""
    with torch.no_grad():
        r = problem.weighted_residual(m)
        value = 0.5 * float((r**2).sum())
        if beta > 0:
            value += beta * float(problem.regularizer(m))
    return value, r


class _DenseModel:
    """Gradient and Gauss-Newton step of ``J`` from the dense Jacobian."""

    def __init__(self, problem: InverseProblem, beta: float):
        self.problem, self.beta = problem, beta

    def gradient_and_step(self, m: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        jw = self.problem.weighted_jacobian(m)
        r = r.reshape(-1)
        g, h = jw.T @ r, jw.T @ jw
        if self.beta > 0:
            g = g + self.beta * _regularizer_gradient(self.problem, m)
            h = h + self.beta * _regularizer_hessian(self.problem, m)
        return g.reshape(m.shape), -_solve_spd(h, g).reshape(m.shape)


class _MatrixFreeModel:
    """Adjoint gradient and inexact Gauss-Newton-CG step of ``J``."""

    def __init__(self, problem: InverseProblem, beta: float, max_cg: int):
        self.problem, self.beta, self.max_cg = problem, beta, max_cg
        self.g0_l2 = None
        self.inner_iterations = 0

    def gradient_and_step(self, m: torch.Tensor, _r) -> tuple[torch.Tensor, torch.Tensor]:
        problem, beta = self.problem, self.beta
        _, _, g = _evaluate(problem, m, beta)
        if self.g0_l2 is None:
            self.g0_l2 = float(g.norm())
        # one forward pass per outer iteration, kept for the J^T products of all CG steps
        m_graph = m.detach().clone().requires_grad_(True)
        residual = problem.weighted_residual(m_graph)

        def hessian(v: torch.Tensor) -> torch.Tensor:
            problem.calls.linearized += 1
            problem.calls.adjoint += 1
            jv = jvp(problem.weighted_residual, m, v)
            (out,) = torch.autograd.grad(residual, m_graph, grad_outputs=jv, retain_graph=True)
            if beta > 0:
                out = out + beta * hvp(problem.regularizer, m, v)
            return out

        eta = min(0.5, math.sqrt(float(g.norm()) / max(self.g0_l2, 1e-300)))
        step = cg(hessian, -g, rtol=eta, maxiter=self.max_cg)
        self.inner_iterations += step.iterations
        return g, step.x


def minimize_gauss_newton(
    problem: InverseProblem,
    m0: torch.Tensor,
    beta: float,
    maxiter: int = 50,
    gtol: float = 1e-6,
    rtol: float = 0.0,
    max_step: float | None = None,
    linearization: str = "jvp",
    max_cg: int = 100,
    callback: Callable[[int, float, float], None] | None = None,
) -> OptimizationResult:
    """Gauss-Newton with Armijo backtracking (module doc for the two linearizations).

    Stops when ``max|g| <= gtol max|g_0|`` (the test :func:`minimize_lbfgs` uses), when an
    accepted step lowers ``J`` by less than ``rtol J``, when no step along the Gauss-Newton
    direction lowers ``J`` (stationary to rounding), or after ``maxiter`` steps.  Steps are
    scaled to ``max|p| <= max_step`` when given.  ``grad_norm_history`` holds ``max|g|`` at every
    iterate whose gradient was formed (with ``"dense"``, not at the last one when ``maxiter``
    ends the run: forming it would cost a Jacobian).  ``callback(iteration, objective,
    misfit_ratio)`` reports progress.
    """
    start = time.perf_counter()
    _check_start(m0, beta)
    if linearization not in LINEARIZATIONS:
        raise UnknownNameError(f"unknown linearization {linearization!r}; allowed: {', '.join(LINEARIZATIONS)}")
    if max_step is not None and not (math.isfinite(max_step) and max_step > 0):
        raise InvalidParameterError(f"max_step must be finite and > 0; got {max_step}")
    model = _DenseModel(problem, beta) if linearization == "dense" else _MatrixFreeModel(problem, beta, max_cg)
    method = "gauss-newton" if linearization == "dense" else "gauss-newton-cg"
    result = _start_result(problem, m0, method, beta)
    m = m0.detach().clone()
    value, r = _value(problem, m, beta)
    result.evaluations = 1
    result.objective_history.append(value)
    result.misfit_ratio_history.append(problem.misfit_ratio(r))
    result.message = "maximum iterations reached"
    g0_norm = None
    for k in range(1, maxiter + 1):
        g, p = model.gradient_and_step(m, r)
        g_norm = float(g.abs().max())
        g0_norm = g_norm if g0_norm is None else g0_norm
        result.grad_norm_history.append(g_norm)
        if g_norm <= gtol * g0_norm:
            result.converged, result.message = True, "gradient tolerance reached"
            break
        biggest = float(p.abs().max())
        if max_step is not None and biggest > max_step:
            p = p * (max_step / biggest)
        slope = float((g * p).sum())
        if slope >= 0:  # not a descent direction (should not happen for SPD H): fall back
            p, slope = -g, -float(g.norm()) ** 2
        t, accepted = 1.0, False
        for _ in range(_BACKTRACKS):
            trial_value, trial_r = _value(problem, m + t * p, beta)
            result.evaluations += 1
            if math.isfinite(trial_value) and trial_value <= value + _ARMIJO * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            result.converged = True
            result.message = "no decrease along the Gauss-Newton step: stationary to rounding"
            break
        decrease = value - trial_value
        m, value, r = (m + t * p).detach(), trial_value, trial_r
        result.iterations = k
        result.objective_history.append(value)
        result.misfit_ratio_history.append(problem.misfit_ratio(r))
        if callback is not None:
            callback(k, value, result.misfit_ratio_history[-1])
        if decrease <= rtol * value:
            result.converged, result.message = True, f"objective decrease below rtol = {rtol:g}"
            break
    else:
        if linearization == "jvp":  # the adjoint gradient is cheap: test the last iterate too
            g = _evaluate(problem, m, beta)[2]
            result.grad_norm_history.append(float(g.abs().max()))
            result.converged = float(g.abs().max()) <= gtol * g0_norm
    if isinstance(model, _MatrixFreeModel):
        result.inner_iterations = model.inner_iterations
    result.m = m
    return _finish(result, problem, start)
