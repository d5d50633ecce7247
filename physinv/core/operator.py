"""The protocol of discretized linear operators and the registry they join.

A discretized PDE operator ``A(theta)`` (finite differences, P1 elements,
the EIT systems, the fluid pressure matrix) maps a state ``u`` of shape
``(..., *state_shape)`` to ``A(theta) u``, where ``theta`` is the coefficient
field (a conductivity in S/m, a diffusivity...).  Every operator offers the
same views of that one matrix, so the solvers of :mod:`physinv.linalg` and the
implicit adjoint can use any of them:

* ``apply(theta, u)``: ``A(theta) u``, differentiable in ``theta`` and ``u``;
* ``bind(theta)``: a fast ``u -> A(theta) u`` for a fixed ``theta`` (iterative solvers);
* ``assemble(theta)``: the matrix as scipy CSR (float64; direct solvers, AMG);
* ``diagonal(theta)``: ``diag A(theta)`` of shape ``state_shape`` (Jacobi);
* ``apply_tangent(theta, dtheta, u)``: ``(dA/dtheta)[dtheta] u`` (forward-mode
  differentiation of solves).

Registering a tiny example with :func:`register_operator` subjects the
operator to the contract test ``tests/contracts/test_registered_operators.py``:
the three matrix views agree, the diagonal is the matrix's, ``apply_tangent``
equals automatic differentiation of ``apply`` and ``<A u, v> = <u, A^T v>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import scipy.sparse as sp
import torch

from physinv.core.registry import OPERATORS, same_example_registration


@runtime_checkable
class Operator(Protocol):
    """``u -> A(theta) u``: the interface every discretized linear operator shares (module doc)."""

    #: ``A(theta)^T = A(theta)`` (the adjoint solve may reuse the forward one).
    symmetric: bool

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Trailing shape of the states ``u``."""

    def apply(self, theta: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``A(theta) u`` for ``u`` of shape ``(..., *state_shape)``, differentiable in both."""

    def bind(self, theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``u -> A(theta) u`` for a fixed ``theta`` (not differentiable in ``theta``)."""

    def assemble(self, theta: torch.Tensor) -> sp.csr_matrix:
        """The matrix ``A(theta)`` as scipy CSR (float64), states flattened in C order."""

    def diagonal(self, theta: torch.Tensor) -> torch.Tensor:
        """``diag A(theta)``, shape ``state_shape``."""

    def apply_tangent(self, theta: torch.Tensor, dtheta: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Directional derivative ``(dA/dtheta)[dtheta] u``."""


@dataclass
class OperatorExample:
    """A tiny operator with an admissible coefficient ``theta`` (and the direction ``dtheta`` of the
    tangent check; default: ``theta`` times a random field)."""

    operator: Operator
    theta: torch.Tensor
    dtheta: torch.Tensor | None = None


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    description: str
    make_example: Callable[[torch.dtype, torch.device], OperatorExample]



def register_operator(
    name: str, description: str
) -> Callable[[Callable[[torch.dtype, torch.device], OperatorExample]], Callable]:
    """Decorator registering ``make_example(dtype, device)`` under ``name`` in :data:`physinv.core.registry.OPERATORS`."""

    def deco(make_example):
        OPERATORS.add(name, OperatorSpec(name, description, make_example), same=same_example_registration)
        return make_example

    return deco


def random_coefficient(shape: tuple[int, ...], seed: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """A coefficient field uniform in ``[0.5, 1.5)``, drawn with ``seed``: what the tiny examples use."""
    draw = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (0.5 + draw).to(dtype=dtype, device=device)


def registered_operators() -> dict[str, OperatorSpec]:
    """All registered operators by name (the problem packages are imported on the first call)."""
    return dict(OPERATORS.items())
