"""Classic PDE-constrained solvers: adjoint-gradient L-BFGS and inexact Gauss-Newton-CG.

Both minimize ``J(m) = 1/2 ||(F(p(m)) - d)/sigma||^2 + beta R(m)`` of an
:class:`~physinv.invert.problem.InverseProblem`.  Gradients come from one
forward and one adjoint solve (reverse-mode AD through the implicitly
differentiated simulator).  Gauss-Newton products ``H v = J^T J v + beta R'' v``
use one linearized forward solve (forward-mode AD, which repeats the primal
solve with the cached factorization) and one adjoint solve through a forward
graph kept for the whole outer iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.optimize
import torch

from physinv.core.autodiff import hvp, jvp
from physinv.core.errors import InvalidParameterError
from physinv.invert.problem import InverseProblem
from physinv.linalg.cg import cg


@dataclass
class OptimizationResult:
    """Outcome of a minimization; histories hold one entry per outer iteration (the start included)."""

    m: torch.Tensor
    method: str
    beta: float
    iterations: int
    converged: bool
    message: str
    evaluations: int = 0
    inner_iterations: int = 0
    objective_history: list[float] = field(default_factory=list)
    misfit_ratio_history: list[float] = field(default_factory=list)
    grad_norm_history: list[float] = field(default_factory=list)


def _evaluate(problem: InverseProblem, m: torch.Tensor, beta: float) -> tuple[float, float, torch.Tensor]:
    """Objective, misfit/noise ratio and gradient at ``m`` from one forward and one adjoint solve."""
    m = m.detach().clone().requires_grad_(True)
    misfit = problem.misfit(m)
    value = misfit + beta * problem.regularizer(m) if beta > 0 else misfit
    (g,) = torch.autograd.grad(value, m)
    value, misfit = float(value.detach()), float(misfit.detach())
    if not math.isfinite(value):
        raise FloatingPointError("the objective became non-finite during the optimization")
    return value, math.sqrt(2 * misfit / problem.num_data), g


def _check_start(m0: torch.Tensor, beta: float) -> None:
    if not bool(torch.isfinite(m0).all()):
        raise InvalidParameterError("the initial guess m0 contains NaN/Inf")
    if not (beta >= 0 and math.isfinite(beta)):
        raise InvalidParameterError(f"regularization weight beta must be finite and >= 0; got {beta}")


def minimize_lbfgs(
    problem: InverseProblem,
    m0: torch.Tensor,
    beta: float,
    maxiter: int = 500,
    gtol: float = 1e-6,
    memory: int = 20,
    callback: Callable[[int, float, float], None] | None = None,
) -> OptimizationResult:
    """Adjoint-gradient L-BFGS (scipy's L-BFGS-B, no bounds) on ``J``.

    Stops when the gradient's max-norm falls below ``gtol`` times its initial
    value, on scipy's relative-reduction test, or after ``maxiter`` iterations.
    ``callback(iteration, objective, misfit_ratio)`` reports progress.
    """
    _check_start(m0, beta)
    shape, dtype, device = m0.shape, m0.dtype, m0.device
    evaluations = 0
    last: dict[str, object] = {}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        m = torch.from_numpy(x).to(dtype=dtype, device=device).reshape(shape)
        value, ratio, g = _evaluate(problem, m, beta)
        grad = g.detach().cpu().to(torch.float64).numpy().ravel()
        last.update(x=x.copy(), ratio=ratio, gmax=float(np.abs(grad).max()))
        return value, grad

    x0 = m0.detach().cpu().to(torch.float64).numpy().ravel()
    j0, g0 = fun(x0)
    result = OptimizationResult(m0, "lbfgs", beta, 0, False, "")
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
        options={"maxiter": maxiter, "gtol": gtol * max(float(np.abs(g0).max()), 1e-300),
                 "ftol": 1e-12, "maxcor": memory},
    )
    result.m = torch.from_numpy(out.x).to(dtype=dtype, device=device).reshape(shape)
    result.iterations = int(out.nit)
    result.converged = bool(out.success)
    result.message = str(out.message)
    result.evaluations = evaluations
    if not np.array_equal(out.x, last["x"]):
        fun(out.x)
    result.misfit_ratio_history[-1:] = [last["ratio"]]
    result.grad_norm_history[-1:] = [last["gmax"]]
    return result


def minimize_gauss_newton(
    problem: InverseProblem,
    m0: torch.Tensor,
    beta: float,
    maxiter: int = 50,
    gtol: float = 1e-6,
    max_cg: int = 100,
    callback: Callable[[int, float, float], None] | None = None,
) -> OptimizationResult:
    """Inexact Gauss-Newton-CG with Eisenstat-Walker forcing and Armijo backtracking.

    Each step solves ``(J^T J + beta R''(m)) p = -grad J(m)`` by CG to relative
    tolerance ``eta_k = min(0.5, sqrt(||g_k|| / ||g_0||))``, with ``J`` the
    Jacobian of the weighted residual.  Stops when ``max|g| <= gtol max|g_0|`` (the test :func:`minimize_lbfgs` uses).
    """
    _check_start(m0, beta)
    objective = lambda v: problem.objective(v, beta)  # noqa: E731
    m = m0.detach().clone()
    value, ratio, g = _evaluate(problem, m, beta)
    g0_norm = float(g.abs().max())
    result = OptimizationResult(m, "gauss-newton-cg", beta, 0, False, "maximum iterations reached")
    result.objective_history.append(value)
    result.misfit_ratio_history.append(ratio)
    result.grad_norm_history.append(g0_norm)
    result.evaluations = 1
    g0_l2 = float(g.norm())
    for k in range(1, maxiter + 1):
        g_norm = float(g.abs().max())
        if g_norm <= gtol * g0_norm:
            result.converged, result.message = True, "gradient tolerance reached"
            break

        # one forward pass per outer iteration, kept for the J^T products of all CG steps
        m_graph = m.detach().clone().requires_grad_(True)
        residual = problem.weighted_residual(m_graph)

        def hessian(v: torch.Tensor, m=m, residual=residual, m_graph=m_graph) -> torch.Tensor:
            jv = jvp(problem.weighted_residual, m, v)
            (out,) = torch.autograd.grad(residual, m_graph, grad_outputs=jv, retain_graph=True)
            if beta > 0:
                out = out + beta * hvp(problem.regularizer, m, v)
            return out

        eta = min(0.5, math.sqrt(float(g.norm()) / g0_l2))
        step = cg(hessian, -g, rtol=eta, maxiter=max_cg)
        result.inner_iterations += step.iterations
        p = step.x
        slope = float((g * p).sum())
        if slope >= 0:  # not a descent direction (should not happen for SPD H): fall back
            p, slope = -g, -float(g.norm()) ** 2
        alpha, accepted = 1.0, False
        for _ in range(20):
            trial_value = objective(m + alpha * p).detach()
            result.evaluations += 1
            if float(trial_value) <= value + 1e-4 * alpha * slope:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            result.message = "line search failed"
            break
        m = (m + alpha * p).detach()
        value, ratio, g = _evaluate(problem, m, beta)
        result.evaluations += 1
        result.iterations = k
        result.objective_history.append(value)
        result.misfit_ratio_history.append(ratio)
        result.grad_norm_history.append(float(g.abs().max()))
        if callback is not None:
            callback(k, value, ratio)
    else:
        result.converged = float(g.abs().max()) <= gtol * g0_norm
    result.m = m
    return result

