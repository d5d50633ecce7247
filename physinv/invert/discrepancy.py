"""Choosing the regularization weight by Morozov's discrepancy principle.

With ``N`` data and noise ``sigma``, ``E ||(F(m_true) - d)/sigma||^2 = N``, so
``beta`` is chosen such that the minimizer ``m_beta`` satisfies
``r(beta) = ||(F(m_beta) - d)/sigma|| / sqrt(N) ~= tau``.  ``r`` increases
with ``beta``: start large, divide by ``factor`` until ``r <= tau``, then
bisect ``log beta`` until ``|r - tau| <= band * tau``.  Every solve is
warm-started from the nearest larger-beta solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from physinv.core.errors import InvalidParameterError
from physinv.invert.optimize import OptimizationResult
from physinv.invert.problem import InverseProblem


@dataclass
class DiscrepancyResult:
    beta: float
    result: OptimizationResult
    path: list[tuple[float, float, int]] = field(default_factory=list)  # (beta, ratio, iterations)

    @property
    def m(self) -> torch.Tensor:
        """The minimizer at the chosen ``beta`` (the search variable, e.g. ``log kappa``)."""
        return self.result.m

    @property
    def total_iterations(self) -> int:
        return sum(it for _, _, it in self.path)


def discrepancy_principle(
    problem: InverseProblem,
    m0: torch.Tensor,
    minimize: Callable[..., OptimizationResult],
    beta0: float,
    tau: float = 1.0,
    factor: float = 4.0,
    band: float = 0.05,
    max_solves: int = 16,
    report: Callable[[str], None] = print,
    **minimize_kwargs,
) -> DiscrepancyResult:
    """Find ``beta`` with ``misfit_over_noise(m_beta)`` within ``band`` of ``tau``.

    ``minimize(problem, m_start, beta, **minimize_kwargs)`` is e.g.
    :func:`~physinv.invert.optimize.minimize_lbfgs`.  If ``max_solves`` runs
    out, the last solution with ``r <= tau`` (or the last one) is returned and
    the path says so.
    """
    if beta0 <= 0 or factor <= 1 or tau <= 0:
        raise InvalidParameterError("need beta0 > 0, factor > 1 and tau > 0")
    path: list[tuple[float, float, int]] = []
    above: tuple[float, OptimizationResult] | None = None  # largest r > tau seen (smallest such beta)
    below: tuple[float, OptimizationResult] | None = None  # r <= tau (largest such beta)
    beta, start = beta0, m0
    best: tuple[float, OptimizationResult] | None = None
    for _ in range(max_solves):
        res = minimize(problem, start, beta, **minimize_kwargs)
        ratio = res.misfit_ratio_history[-1]
        path.append((beta, ratio, res.iterations))
        report(f"  beta={beta:10.4e}  misfit/noise={ratio:7.4f}  iterations={res.iterations}")
        if abs(ratio - tau) <= band * tau:
            return DiscrepancyResult(beta, res, path)
        if ratio > tau:
            above = (beta, res)
        else:
            below = (beta, res)
            best = below
        if below is None:
            beta, start = beta / factor, res.m
        elif above is None:
            beta, start = beta * factor, res.m
        else:
            beta = math.sqrt(above[0] * below[0])
            start = above[1].m
    chosen = best if best is not None else (beta, res)
    report(f"  discrepancy principle: no beta within the band after {max_solves} solves; "
           f"keeping beta={chosen[0]:.4e}")
    return DiscrepancyResult(chosen[0], chosen[1], path)
