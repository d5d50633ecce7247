"""Inverse solvers for any simulator: problems, regularizers, L-BFGS, Gauss-Newton, weight rules."""

from physinv.invert.cell_regularizers import CellSmoothness, CellTotalVariation, cell_regularizer
from physinv.invert.design import (DesignProblem, DesignResult, calls_to_reach, design_cem, design_diffusion,
                                   design_gradient, diffusion_design_calls)
from physinv.invert.eki import EKIResult, distance_taper, gaspari_cohn, gaussian_ensemble, minimize_eki
from physinv.invert.optimize import minimize_gauss_newton, minimize_lbfgs
from physinv.invert.posterior import PosteriorSamples, sample_dps, sample_enkg
from physinv.invert.problem import (IdentityParametrization, InverseProblem, LogParametrization, SubspaceParametrization,
                                    sample_subspace)
from physinv.invert.regularizers import H1Seminorm, NuisanceFree, TotalVariation
from physinv.invert.result import OptimizationResult, SimulatorCalls
from physinv.invert.weight_rules import discrepancy_principle, discrepancy_search, lcurve_corner, lcurve_search

__all__ = [
    "CellSmoothness",
    "CellTotalVariation",
    "DesignProblem",
    "DesignResult",
    "EKIResult",
    "H1Seminorm",
    "IdentityParametrization",
    "InverseProblem",
    "LogParametrization",
    "NuisanceFree",
    "OptimizationResult",
    "PosteriorSamples",
    "SimulatorCalls",
    "SubspaceParametrization",
    "TotalVariation",
    "calls_to_reach",
    "cell_regularizer",
    "design_cem",
    "design_diffusion",
    "design_gradient",
    "diffusion_design_calls",
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
    "sample_dps",
    "sample_enkg",
    "sample_subspace",
]
