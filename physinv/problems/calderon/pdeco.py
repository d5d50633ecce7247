"""The classic Calderon inversion: adjoint L-BFGS on log a with H1 regularization, beta by the discrepancy principle."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from physinv.invert import H1Seminorm, InverseProblem, discrepancy_principle, minimize_lbfgs
from physinv.problems.calderon.data import DATASET_DEFAULTS
from physinv.problems.calderon.simulator import CalderonSimulator

__all__ = ["pdeco_invert", "relative_l1_percent"]


def relative_l1_percent(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Per-sample relative L1 error ``100 mean|pred - a| / mean|a|``."""
    err = (pred - target).abs().flatten(1).mean(1) / target.abs().flatten(1).mean(1)
    return 100.0 * err.detach().cpu().double().numpy()


def pdeco_invert(neumann_noisy: torch.Tensor, a_true: torch.Tensor, n: int, L: int, sigma_rel: float,
                 maxiter: int, max_solves: int = 12) -> dict:
    """Invert one sample's noisy Neumann data (tau = 1 in the discrepancy principle).

    The noise model is the data's: sigma_i = sigma_rel |d_i| (estimated from the noisy data, floored at
    1e-3 of the mean |d|, a measurement floor, so that near-zero entries with weights up to 1e5 times the
    others do not make the problem too ill-conditioned for L-BFGS); start a = (a_min + a_max) / 2.

    Returns
    -------
    dict
        ``a``, ``seconds``, ``beta``, ``solves``, ``iterations``, ``ratio`` (misfit / noise), ``rel_l1`` and
        ``rel_l1_start`` (percent).
    """
    sim = CalderonSimulator(n=n, L=L)
    data = neumann_noisy.detach().cpu().double()
    sigma = (sigma_rel * data.abs()).clamp_min(1e-3 * float(data.abs().mean()))
    problem = InverseProblem(sim, data, sigma, H1Seminorm(sim.grid))
    a0 = 0.5 * (DATASET_DEFAULTS["a_min"] + DATASET_DEFAULTS["a_max"])
    m0 = torch.full((n, n), math.log(a0), dtype=torch.float64)
    t0 = time.perf_counter()
    dp = discrepancy_principle(problem, m0, minimize_lbfgs, beta0=float(problem.num_data), maxiter=maxiter,
                               max_solves=max_solves, gtol=1e-5, report=lambda s: None)
    seconds = time.perf_counter() - t0
    a = torch.exp(dp.m)
    truth = a_true.detach().cpu().double()[None]
    return dict(a=a, seconds=seconds, beta=dp.beta, solves=len(dp.beta_path), iterations=dp.iterations,
                ratio=dp.misfit_ratio,
                rel_l1=float(relative_l1_percent(a[None], truth)[0]),
                rel_l1_start=float(relative_l1_percent(torch.full_like(truth, a0), truth)[0]))
