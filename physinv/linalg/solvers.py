"""Linear solvers behind one interface: ``solver.prepare(operator, theta)(b) -> x``.

An *operator* is a :class:`physinv.core.operator.Operator`: ``apply(theta, u)``
(``A(theta) u``, differentiable in ``theta``), ``bind(theta)`` (a fast
``u -> A u`` for fixed ``theta``), ``assemble(theta)`` (scipy CSR),
``diagonal(theta)`` and ``state_shape`` -- e.g.
:class:`~physinv.discretize.fd.FDPoissonOperator` and
:class:`~physinv.discretize.p1.P1PoissonOperator`.  ``prepare`` does the
per-``theta`` work once (factorization, AMG hierarchy, diagonal) so that the
forward and the adjoint solve of a gradient share it.  Right-hand sides may
carry leading batch dimensions, ``(..., *state_shape)``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse.linalg as spla
import torch

from physinv.core.errors import ConvergenceError, InvalidParameterError, SingularMatrixError, UnknownNameError
from physinv.linalg.cg import cg
from physinv.linalg.precond import AMGPreconditioner, JacobiPreconditioner

PreparedSolve = Callable[[torch.Tensor], torch.Tensor]


def _split_batch(b: torch.Tensor, state_shape: tuple[int, ...]) -> tuple[torch.Size, torch.Tensor]:
    d = len(state_shape)
    if tuple(b.shape[b.ndim - d:]) != tuple(state_shape):
        raise InvalidParameterError(
            f"right-hand side has shape {tuple(b.shape)}; expected (..., {', '.join(map(str, state_shape))})"
        )
    lead = b.shape[: b.ndim - d]
    return lead, b.reshape((-1,) + tuple(state_shape))


def checked_iterative_solve(name: str, run, shape: tuple[int, ...], rtol: float, hint: str,
                            iterations: list[int]) -> PreparedSolve:
    """Wrap ``run(flat_b) -> CGResult`` (batched) as a solve that raises on non-convergence."""

    def solve(b: torch.Tensor) -> torch.Tensor:
        _, flat = _split_batch(b, shape)
        result = run(flat.detach())
        if not result.converged:
            raise ConvergenceError(
                f"{name} reached relative residual {result.residual_history[-1]:.2e} "
                f"> rtol {rtol:.1e} after {result.iterations} iterations; {hint}"
            )
        iterations.append(result.iterations)
        return result.x.reshape(b.shape)

    return solve


def sparse_lu(matrix) -> spla.SuperLU:
    """SuperLU factorization of ``matrix``, with clear errors for NaN/Inf entries and a singular matrix.

    Raises :class:`~physinv.core.errors.InvalidParameterError` when the matrix holds NaN/Inf and
    :class:`~physinv.core.errors.SingularMatrixError` when SuperLU finds it exactly singular.
    """
    csc = matrix.tocsc()
    if not np.all(np.isfinite(csc.data)):
        bad = int((~np.isfinite(csc.data)).sum())
        raise InvalidParameterError(
            f"the assembled {csc.shape[0]}x{csc.shape[1]} matrix has {bad} NaN/Inf entries; the operator's "
            "coefficients and geometry (grid lengths, mesh points) must be finite")
    try:
        return spla.splu(csc)
    except RuntimeError as exc:
        if "singular" not in str(exc).lower():
            raise
        raise SingularMatrixError(
            f"the assembled {csc.shape[0]}x{csc.shape[1]} matrix is singular (SuperLU: {exc}); a solvable "
            "system needs a Dirichlet condition on at least one node of every connected part (a pure Neumann "
            "problem fixes u only up to a constant), a coefficient > 0 everywhere and every node in an element"
        ) from None


class DirectSolver:
    """Sparse LU (SuperLU via scipy) of the assembled matrix: the exact baseline for small systems.

    A singular matrix raises :class:`~physinv.core.errors.SingularMatrixError` (see :func:`sparse_lu`).
    """

    name = "direct"

    def prepare(self, operator, theta: torch.Tensor) -> PreparedSolve:
        lu = sparse_lu(operator.assemble(theta))
        shape = tuple(operator.state_shape)
        n = int(np.prod(shape))

        def solve(b: torch.Tensor) -> torch.Tensor:
            lead, flat = _split_batch(b, shape)
            rhs = flat.detach().to(torch.float64).cpu().numpy().reshape(-1, n).T
            x = lu.solve(np.ascontiguousarray(rhs)).T
            return torch.from_numpy(np.ascontiguousarray(x)).to(b.dtype).to(b.device).reshape(b.shape)

        return solve


class CGSolver:
    """Matrix-free (preconditioned) CG in torch.

    Parameters
    ----------
    preconditioner
        ``"none"``, ``"jacobi"`` or ``"amg"`` (pyamg smoothed aggregation V-cycle).
    rtol
        Relative residual tolerance; a solve that misses it raises
        :class:`~physinv.core.errors.ConvergenceError` instead of returning silently.
    """

    PRECONDITIONERS = ("none", "jacobi", "amg")

    def __init__(self, preconditioner: str = "jacobi", rtol: float = 1e-10, maxiter: int | None = None):
        if preconditioner not in self.PRECONDITIONERS:
            raise UnknownNameError(
                f"unknown preconditioner {preconditioner!r}; allowed: {', '.join(self.PRECONDITIONERS)}"
            )
        self.preconditioner = preconditioner
        self.rtol = rtol
        self.maxiter = maxiter
        self.iterations: list[int] = []
        self.name = f"cg-{preconditioner}"

    def prepare(self, operator, theta: torch.Tensor) -> PreparedSolve:
        theta = theta.detach().clone()  # later in-place changes of the caller's tensor must not leak in
        shape = tuple(operator.state_shape)
        if self.preconditioner == "jacobi":
            precond = JacobiPreconditioner(operator.diagonal(theta))
        elif self.preconditioner == "amg":
            precond = AMGPreconditioner(operator.assemble(theta), shape)
        else:
            precond = None
        matvec = operator.bind(theta)

        run = lambda flat: cg(matvec, flat, precond=precond, rtol=self.rtol,  # noqa: E731
                              maxiter=self.maxiter, batched=True)
        return checked_iterative_solve(self.name, run, shape, self.rtol,
                                       "raise maxiter or use a stronger preconditioner ('amg') or 'direct'",
                                       self.iterations)


def make_solver(name: str, **kwargs):
    """Solver by name: ``direct``, ``cg``, ``cg-jacobi``, ``cg-amg``."""
    if name == "direct":
        return DirectSolver()
    if name == "cg":
        return CGSolver("none", **kwargs)
    if name.startswith("cg-"):
        return CGSolver(name[3:], **kwargs)
    raise UnknownNameError(f"unknown solver {name!r}; allowed: direct, cg, cg-jacobi, cg-amg")


class CountingSolver:
    """Wraps a solver and counts preparations and solves (one solve per right-hand-side batch)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.prepares = 0
        self.solves = 0

    def prepare(self, operator, theta: torch.Tensor) -> PreparedSolve:
        self.prepares += 1
        solve = self.inner.prepare(operator, theta)

        def counted(b: torch.Tensor) -> torch.Tensor:
            self.solves += 1
            return solve(b)

        return counted
