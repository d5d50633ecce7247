"""Choosing the regularization weight ``beta``: Morozov's discrepancy principle and the L-curve.

Both drive a solver ``solve(beta, m_start) -> OptimizationResult`` (a minimization of
``1/2 ||(F(m) - d)/sigma||^2 + beta R(m)`` warm-started from ``m_start``) along decreasing
weights, and return the chosen solve as one :class:`~physinv.invert.result.OptimizationResult`
whose ``beta_path``, ``iterations``, ``calls`` and histories cover every solve.

Discrepancy principle.  With ``N`` data and noise ``sigma``, ``E ||(F(m_true) - d)/sigma||^2 = N``,
so ``beta`` is chosen such that the minimizer ``m_beta`` has misfit ratio
``r(beta) = ||(F(m_beta) - d)/sigma|| / sqrt(N) ~= tau``.  ``r`` increases with ``beta``: from
``beta0``, divide by ``factor`` while ``r > tau`` (or multiply while ``r <= tau``) until the two
sides are bracketed; then either keep the largest ``beta`` with ``r <= tau`` (``band=None``: the
geometric sequence only) or bisect ``log beta`` until ``|r - tau| <= band tau``.

L-curve (Hansen).  Solve for ``beta0 / factor^k``, ``k < count``, and keep the corner of
``(log misfit, log R)``: the point of largest curvature as a curve in ``log beta``.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Callable

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.invert.problem import InverseProblem
from physinv.invert.result import OptimizationResult, SimulatorCalls

Solve = Callable[[float, torch.Tensor], OptimizationResult]


def _combine(chosen: OptimizationResult, runs: list[OptimizationResult], converged: bool, message: str,
             start: float) -> OptimizationResult:
    """The chosen solve, with the budget, path and histories of every solve in ``runs``."""
    first = runs[0]
    calls = SimulatorCalls()
    for run in runs:
        calls = calls + run.calls
    return OptimizationResult(
        m=chosen.m, method=chosen.method, beta=chosen.beta, converged=converged, message=message,
        misfit_ratio=chosen.misfit_ratio, num_data=chosen.num_data,
        iterations=sum(run.iterations for run in runs),
        evaluations=sum(run.evaluations for run in runs),
        inner_iterations=sum(run.inner_iterations for run in runs),
        objective_history=first.objective_history[:1] + [v for run in runs for v in run.objective_history[1:]],
        misfit_ratio_history=first.misfit_ratio_history[:1]
        + [v for run in runs for v in run.misfit_ratio_history[1:]],
        grad_norm_history=[v for run in runs for v in run.grad_norm_history],
        beta_path=[(run.beta, run.misfit_ratio, run.iterations) for run in runs],
        calls=calls, wall_time=time.perf_counter() - start)


def _real(x) -> float:
    """``float(x)``, or NaN for what is no real number (a string, None...), so the checks below refuse it."""
    if isinstance(x, (str, bytes)):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _check_sweep(beta0: float, factor: float, count: int, count_name: str) -> None:
    if not (math.isfinite(_real(beta0)) and beta0 > 0):
        raise InvalidParameterError(f"the starting weight beta0 must be finite and > 0; got {beta0}")
    if not (math.isfinite(_real(factor)) and factor > 1):
        raise InvalidParameterError(f"the weight factor must be finite and > 1; got {factor}")
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise InvalidParameterError(f"{count_name} must be an integer >= 1; got {count!r}")


def discrepancy_search(solve: Solve, m0: torch.Tensor, beta0: float, tau: float = 1.0, factor: float = 4.0,
                       band: float | None = 0.05, max_solves: int = 16,
                       report: Callable[[str], None] | None = None) -> OptimizationResult:
    """The discrepancy principle on any solver (module doc).

    Every solve starts from the solution at the nearest weight tried before it (for the
    bisection: the larger one).  When ``max_solves`` runs out, the largest ``beta`` with
    ``r <= tau`` (else the last solve) is kept with ``converged=False``.
    """
    start = time.perf_counter()
    _check_sweep(beta0, factor, max_solves, "max_solves")
    if not (math.isfinite(_real(tau)) and tau > 0):
        raise InvalidParameterError(f"the discrepancy target tau must be finite and > 0; got {tau}")
    if band is not None and not (math.isfinite(_real(band)) and band > 0):
        raise InvalidParameterError(f"the discrepancy band must be finite and > 0 (or None); got {band}")
    runs: list[OptimizationResult] = []
    above: OptimizationResult | None = None  # r > tau at the smallest such beta
    below: OptimizationResult | None = None  # r <= tau at the largest such beta
    beta, m_start = beta0, m0
    for _ in range(max_solves):
        res = solve(beta, m_start)
        runs.append(res)
        if report is not None:
            report(f"  beta={beta:10.4e}  misfit/noise={res.misfit_ratio:7.4f}  iterations={res.iterations}")
        if band is not None and abs(res.misfit_ratio - tau) <= band * tau:
            return _combine(res, runs, True, f"discrepancy principle: misfit ratio {res.misfit_ratio:.4f} "
                            f"within {band:g} tau of tau = {tau:g} at beta = {beta:.4g}", start)
        if res.misfit_ratio > tau:
            above = res if above is None or res.beta < above.beta else above
        else:
            below = res if below is None or res.beta > below.beta else below
        if above is not None and below is not None:
            if band is None:
                return _combine(below, runs, True, f"discrepancy principle: beta = {below.beta:.4g}, the largest "
                                f"tried with misfit ratio {below.misfit_ratio:.4f} <= tau = {tau:g}", start)
            beta, m_start = math.sqrt(above.beta * below.beta), above.m
        elif below is None:
            beta, m_start = beta / factor, res.m
        else:
            beta, m_start = beta * factor, res.m
    chosen = below if below is not None else runs[-1]
    message = (f"discrepancy principle not met within {max_solves} solves (misfit ratio "
               f"{chosen.misfit_ratio:.4f}, tau = {tau:g}); keeping beta = {chosen.beta:.4g}")
    if report is not None:
        report("  " + message)
    return _combine(chosen, runs, False, message, start)


def discrepancy_principle(
    problem: InverseProblem,
    m0: torch.Tensor,
    minimize: Callable[..., OptimizationResult],
    beta0: float,
    tau: float = 1.0,
    factor: float = 4.0,
    band: float | None = 0.05,
    max_solves: int = 16,
    report: Callable[[str], None] | None = print,
    **minimize_kwargs,
) -> OptimizationResult:
    """:func:`discrepancy_search` with ``minimize(problem, m_start, beta, **minimize_kwargs)``,
    e.g. :func:`~physinv.invert.optimize.minimize_lbfgs`."""
    return discrepancy_search(lambda beta, m: minimize(problem, m, beta, **minimize_kwargs), m0, beta0, tau=tau,
                              factor=factor, band=band, max_solves=max_solves, report=report)


def lcurve_corner(betas, misfits, penalties) -> int:
    """Index of the L-curve corner: the largest curvature of ``(log misfit, log R)`` as a curve in
    ``log beta`` (second-order finite differences; the end points are excluded)."""
    t = np.log(np.asarray(betas, dtype=float))
    rho = np.log(np.maximum(np.asarray(misfits, dtype=float), 1e-300))
    eta = np.log(np.maximum(np.asarray(penalties, dtype=float), 1e-300))
    if t.size < 3:
        raise InvalidParameterError(f"the L-curve needs at least 3 weights; got {t.size}")
    d_rho, d_eta = np.gradient(rho, t), np.gradient(eta, t)
    dd_rho, dd_eta = np.gradient(d_rho, t), np.gradient(d_eta, t)
    curvature = (d_rho * dd_eta - dd_rho * d_eta) / np.maximum(d_rho**2 + d_eta**2, 1e-300) ** 1.5
    return int(np.argmax(curvature[1:-1])) + 1


def lcurve_search(solve: Solve, m0: torch.Tensor, beta0: float, penalty: Callable[[torch.Tensor], torch.Tensor],
                  factor: float = 2.0, count: int = 16) -> OptimizationResult:
    """Solve for ``beta0 / factor^k``, ``k < count`` (warm starts) and keep the L-curve corner.

    The misfit of a solve is ``N r^2`` (``r`` its misfit ratio, so a projected misfit when the
    problem has a projection), the penalty ``penalty(m)`` (the regularizer ``R``).
    """
    start = time.perf_counter()
    _check_sweep(beta0, factor, count, "the number of L-curve weights")
    if count < 3:
        raise InvalidParameterError(f"the L-curve needs at least 3 weights; got {count}")
    runs, beta, m = [], beta0, m0
    for _ in range(count):
        runs.append(solve(beta, m))
        m, beta = runs[-1].m, beta / factor
    with torch.no_grad():
        penalties = [float(penalty(run.m)) for run in runs]
    corner = lcurve_corner([run.beta for run in runs], [run.num_data * run.misfit_ratio**2 for run in runs],
                           penalties)
    chosen = runs[corner]
    return _combine(chosen, runs, True, f"L-curve corner: beta = {chosen.beta:.4g} of {count} values", start)
