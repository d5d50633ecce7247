"""Inverse solvers: problems, regularizers, adjoint L-BFGS, Gauss-Newton-CG, discrepancy principle."""

from physinv.invert.cell_regularizers import CellSmoothness, CellTotalVariation, cell_regularizer
from physinv.invert.discrepancy import DiscrepancyResult, discrepancy_principle
from physinv.invert.optimize import OptimizationResult, minimize_gauss_newton, minimize_lbfgs
from physinv.invert.problem import IdentityParametrization, InverseProblem, LogParametrization
from physinv.invert.regularizers import H1Seminorm, TotalVariation

__all__ = [
    "CellSmoothness",
    "CellTotalVariation",
    "DiscrepancyResult",
    "H1Seminorm",
    "IdentityParametrization",
    "InverseProblem",
    "LogParametrization",
    "OptimizationResult",
    "TotalVariation",
    "cell_regularizer",
    "discrepancy_principle",
    "minimize_gauss_newton",
    "minimize_lbfgs",
]
