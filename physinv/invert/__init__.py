"""Inverse solvers for any simulator: problems, regularizers, L-BFGS, Gauss-Newton, weight rules."""

from physinv.invert.cell_regularizers import CellSmoothness, CellTotalVariation, cell_regularizer
from physinv.invert.eki import EKIResult, distance_taper, gaspari_cohn, gaussian_ensemble, minimize_eki
from physinv.invert.optimize import minimize_gauss_newton, minimize_lbfgs
from physinv.invert.problem import (IdentityParametrization, InverseProblem, LogParametrization, SubspaceParametrization,
                                    sample_subspace)
from physinv.invert.regularizers import H1Seminorm, NuisanceFree, TotalVariation
from physinv.invert.result import OptimizationResult, SimulatorCalls
from physinv.invert.weight_rules import discrepancy_principle, discrepancy_search, lcurve_corner, lcurve_search

__all__ = [
    "CellSmoothness",
    "CellTotalVariation",
    "EKIResult",
    "H1Seminorm",
    "IdentityParametrization",
    "InverseProblem",
    "LogParametrization",
    "NuisanceFree",
    "OptimizationResult",
    "SimulatorCalls",
    "SubspaceParametrization",
    "TotalVariation",
    "cell_regularizer",
    "discrepancy_principle",
    "discrepancy_search",
    "distance_taper",
    "gaspari_cohn",
    "gaussian_ensemble",
    "lcurve_corner",
    "lcurve_search",
    "minimize_eki",
    "minimize_gauss_newton",
    "minimize_lbfgs",
    "sample_subspace",
]
