"""The one result type every inverse solver returns, and the simulator calls it counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SimulatorCalls:
    """How often a solver ran the simulator: ``forward`` predictions, ``adjoint`` gradient
    (vector-Jacobian) evaluations and ``linearized`` evaluations (one Jacobian-vector product, or
    one dense Jacobian).  Methods are compared at equal budgets through these counts."""

    forward: int = 0
    adjoint: int = 0
    linearized: int = 0

    def __add__(self, other: SimulatorCalls) -> SimulatorCalls:
        return SimulatorCalls(self.forward + other.forward, self.adjoint + other.adjoint,
                              self.linearized + other.linearized)

    def __sub__(self, other: SimulatorCalls) -> SimulatorCalls:
        return SimulatorCalls(self.forward - other.forward, self.adjoint - other.adjoint,
                              self.linearized - other.linearized)

    def copy(self) -> SimulatorCalls:
        return SimulatorCalls(self.forward, self.adjoint, self.linearized)


@dataclass
class OptimizationResult:
    """Outcome of an inversion: one minimization at a fixed weight, or a weight rule's choice.

    ``m`` is the search variable at the end (e.g. ``log kappa``); ``beta`` the regularization
    weight of the objective ``1/2 ||(F - d)/sigma||^2 + beta R(m)``; ``misfit_ratio`` the
    ``||(F(m) - d)/sigma|| / sqrt(N)`` at ``m`` (1 in expectation at the truth).  ``iterations``
    counts the outer iterations over every weight tried; the histories hold one entry per
    outer iteration, the start first, in the order they ran (for a weight rule: every solve,
    one after the other).  ``beta_path`` is ``(beta, misfit ratio, iterations)`` per weight
    tried (one entry for a fixed weight); ``calls`` the simulator calls made; ``wall_time`` in
    seconds.
    """

    m: torch.Tensor
    method: str
    beta: float
    iterations: int = 0
    converged: bool = False
    message: str = ""
    misfit_ratio: float = float("nan")
    num_data: int = 0
    evaluations: int = 0
    inner_iterations: int = 0
    objective_history: list[float] = field(default_factory=list)
    misfit_ratio_history: list[float] = field(default_factory=list)
    grad_norm_history: list[float] = field(default_factory=list)
    beta_path: list[tuple[float, float, int]] = field(default_factory=list)
    calls: SimulatorCalls = field(default_factory=SimulatorCalls)
    wall_time: float = 0.0
