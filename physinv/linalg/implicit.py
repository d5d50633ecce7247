"""Differentiable linear solves by implicit differentiation.

For ``u = A(theta)^{-1} b`` and a loss with gradient ``g = dL/du``:

* reverse mode: one adjoint solve ``A^T lam = g``; then
  ``dL/db = lam`` and ``dL/dtheta = -lam^T (dA/dtheta) u``;
* forward mode: ``du = A^{-1} (db - (dA/dtheta)[dtheta] u)``.

Neither unrolls solver iterations, so memory does not grow with the iteration
count.  The operators here are symmetric, so the adjoint solve reuses the
forward solve's preparation (LU factors, AMG hierarchy).
"""

from __future__ import annotations

import torch

from physinv.core.errors import InvalidParameterError


def _operator_vjp(operator, theta: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w^T (dA/dtheta) u`` as a tensor shaped like ``theta``."""
    with torch.enable_grad():
        th = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(operator.apply(th, u), th, grad_outputs=w)
    return g


def _operator_jvp(operator, theta: torch.Tensor, u: torch.Tensor, dtheta: torch.Tensor) -> torch.Tensor:
    """``(dA/dtheta)[dtheta] u``: the operator's ``apply_tangent`` if it has one,
    else the double-vjp trick (the vjp is linear in w)."""
    if hasattr(operator, "apply_tangent"):
        return operator.apply_tangent(theta, dtheta, u)
    with torch.enable_grad():
        th = theta.detach().requires_grad_(True)
        y = operator.apply(th, u)
        w = torch.zeros_like(y, requires_grad=True)
        (g,) = torch.autograd.grad(y, th, grad_outputs=w, create_graph=True)
        (dy,) = torch.autograd.grad(g, w, grad_outputs=dtheta)
    return dy


class _ImplicitSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, b, operator, solve):
        with torch.no_grad():
            u = solve(b)
        ctx.operator, ctx.solve = operator, solve
        ctx.save_for_backward(theta, u)
        ctx.save_for_forward(theta, u)
        return u

    @staticmethod
    def backward(ctx, grad_u):
        theta, u = ctx.saved_tensors
        lam = ctx.solve(grad_u.contiguous())
        grad_theta = None
        if ctx.needs_input_grad[0]:
            grad_theta = -_operator_vjp(ctx.operator, theta, u, lam)
        grad_b = lam if ctx.needs_input_grad[1] else None
        return grad_theta, grad_b, None, None

    @staticmethod
    def jvp(ctx, theta_t, b_t, _operator_t, _solve_t):
        theta, u = ctx.saved_tensors
        rhs = torch.zeros_like(u) if b_t is None else b_t.expand_as(u).clone()
        if theta_t is not None:
            rhs = rhs - _operator_jvp(ctx.operator, theta, u, theta_t)
        return ctx.solve(rhs)


def implicit_solve(operator, theta: torch.Tensor, b: torch.Tensor, solver, prepared=None) -> torch.Tensor:
    """``u = A(theta)^{-1} b``, differentiable in ``theta`` and ``b`` (both AD modes).

    Parameters
    ----------
    operator
        A :class:`physinv.core.operator.Operator` (``apply_tangent`` optional:
        without it forward mode uses a double vjp); only symmetric operators
        are supported so far.
    theta
        Operator parameters, e.g. the conductivity ``kappa``.
    b
        Right-hand side(s), shape ``(..., *operator.state_shape)``.
    solver
        A :mod:`physinv.linalg.solvers` solver; ``prepared`` reuses an earlier
        ``solver.prepare(operator, theta)``.
    """
    if not getattr(operator, "symmetric", False):
        raise InvalidParameterError(
            "implicit_solve supports symmetric operators only (the adjoint solve reuses the forward one)"
        )
    solve = prepared if prepared is not None else solver.prepare(operator, theta)
    return _ImplicitSolve.apply(theta, b, operator, solve)
