"""Classic EIT reconstruction: Gauss-Newton absolute imaging and linearized difference imaging.

Both work on cell conductivities of an :class:`~physinv.problems.eit.simulator.EITSimulator`
(``conductivity_on="cell"``) and on ``m = log(sigma)`` per cell (``sigma`` in
S/m, so ``m`` is ``log(sigma / (1 S/m))``, dimensionless).

Both are uses of the generic inversion stack (:mod:`physinv.invert`): an
:class:`~physinv.invert.InverseProblem` with the EIT forward map, the data mask
and data-space projection below, and a cell regularizer; the dense Gauss-Newton
of :func:`~physinv.invert.minimize_gauss_newton`; the weight rules of
:mod:`physinv.invert.weight_rules`.  What is EIT's own is the contact-impedance
factor, the data space and the homogeneous start.

Absolute imaging (:func:`reconstruct_absolute`) minimizes

    J(m) = 1/2 || (F(exp m) - d) / noise_std ||^2 + beta R(m)

(``J`` and the weighted misfit are dimensionless: data and ``noise_std`` in
V) by Gauss-Newton with the adjoint Jacobian ``J_m = J_sigma diag(sigma)`` of
:meth:`~physinv.problems.eit.simulator.EITSimulator.jacobian` (chain rule for
``sigma = exp m``), from the best homogeneous conductivity
(:func:`homogeneous_fit`), with Armijo backtracking.  ``beta`` is
fixed or chosen by Morozov's discrepancy principle: ``beta_k = beta_0 /
q^k``, each solve warm-started from the previous one, stop at the first
``beta_k`` whose misfit ratio ``||(F - d)/noise_std|| / sqrt(N) <= tau``, or by
the L-curve.

Difference imaging (:func:`reconstruct_difference`) solves the regularized
linearized problem at a reference conductivity for the data change.

Regularizers: :mod:`physinv.invert.cell_regularizers` (``"tikhonov"`` smoothness, ``"tv"``).

Contact impedance and the measurements on current-carrying electrodes
----------------------------------------------------------------------
With the ``"adjacent"`` protocols, the 3 measurements per pattern that touch a
driven electrode carry the contact-impedance voltage drop and the field
singularities at the electrode edges: ~90% of the data's rms (99% of ``||d||^2`` at
``sigma = 1``), and strongly mesh-dependent.  Between the shipped ``h = 0.1`` and
``h = 0.05`` disks they differ by 7% of the rms of all 256 at *every* conductivity;
the other 208 measurements differ by 0.17% of that rms, which is 1.55% of their
own rms (0.65% after the best constant conductivity with ``k = 1``).  The error acts like a larger
contact impedance, so absolute imaging estimates a common factor ``k`` of the
simulator's contact impedances with ``m`` (``fit_contact=True``; unregularized).
This costs nothing extra: the CEM matrix is ``K(sigma) + E/z`` with ``K``
linear in ``sigma``, so

    F(sigma, k z) = k F(k sigma, z),    dF/dlog k = F + (dF/dm) 1,

exact for any ``sigma`` (``tests/problems/eit/test_eit_reconstruction.py`` checks it
against a simulator built with ``k z``).  Fitting ``k`` brings the mesh error
down from 7% to 0.19% of the rms (at the homogeneous conductivity).
``exclude_driven=True`` drops those measurements instead (the usual practice
with unknown contact impedances; it throws away most of the signal of
inclusions near the boundary).

Discrepancy in the model's data space
-------------------------------------
For every conductivity the electrode voltages are ``U = Z I`` with ``Z``
symmetric on zero-sum vectors, so all model data lie in a fixed subspace
(:func:`data_space`; 120 of the 256 dimensions for 16 electrodes, adjacent
protocols).  Noise in the other 136 dimensions can never be fitted: it adds a
sigma-independent chi^2_136 to ``||r||^2`` -- a random offset (std 16.5) in the
test, and a share of the margin ``(tau^2 - 1) N`` granted on dimensions no
conductivity can explain.  So the misfit ratio of the discrepancy principle is
taken on the projected residual with ``N`` = that dimension
(``project_data=True``): still ~1 at the truth, without the offset.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.invert.cell_regularizers import EIT_REGULARIZERS, cell_regularizer
from physinv.invert.optimize import minimize_gauss_newton
from physinv.invert.problem import IdentityParametrization, InverseProblem
from physinv.invert.progress import iteration_progress
from physinv.invert.regularizers import NuisanceFree
from physinv.invert.result import OptimizationResult
from physinv.invert.weight_rules import discrepancy_search, lcurve_search
from physinv.problems.eit.simulator import driven_measurements

__all__ = [
    "BETA_RULES",
    "EITReconstruction",
    "data_space",
    "homogeneous_fit",
    "log_conductivity_jacobian",
    "reconstruct_absolute",
    "reconstruct_difference",
]

BETA_RULES = ("discrepancy", "lcurve")


# --------------------------------------------------------------------------------------------------


def data_space(sim, noise_std=1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Orthonormal basis ``(n_kept, r)`` of the whitened data space the model can reach.

    For every conductivity (and contact impedance) the electrode voltages are ``U = Z I`` with a
    symmetric transfer matrix ``Z`` acting on zero-sum vectors (the CEM system is symmetric and
    grounded), so the data ``Q Z P^T`` (``P`` the currents, ``Q`` the measurement matrix) lie in a fixed
    subspace of dimension at most ``(L - 1) L / 2`` -- 120 of the 256 data of the 16-electrode adjacent
    protocols.  Returned for the data divided by ``noise_std`` and restricted to ``mask``.
    """
    P = torch.as_tensor(np.asarray(sim.currents), dtype=torch.float64)
    Q = torch.as_tensor(np.asarray(sim.measurement_matrix), dtype=torch.float64)
    L = P.shape[1]
    basis = torch.linalg.svd(torch.eye(L, dtype=torch.float64) - 1.0 / L).U[:, : L - 1]  # zero-sum vectors
    pb, qb = P @ basis, Q @ basis  # (n_patterns, L-1), (n_measurements, L-1)
    a, b = torch.triu_indices(L - 1, L - 1)
    gen = pb[:, a][:, None, :] * qb[:, b][None, :, :] + pb[:, b][:, None, :] * qb[:, a][None, :, :]
    gen = gen.reshape(-1, a.shape[0])
    noise = _check_noise(noise_std, (P.shape[0], Q.shape[0])).reshape(-1)
    keep = torch.ones_like(noise, dtype=torch.bool) if mask is None else mask.reshape(-1)
    u, sv, _ = torch.linalg.svd(gen[keep] / noise[keep, None], full_matrices=False)
    rank = int((sv > sv[0] * 1e-10).sum())
    return u[:, :rank]


def _check_sim(sim) -> None:
    if getattr(sim, "conductivity_on", None) != "cell" or not all(
            hasattr(sim, a) for a in ("jacobian", "currents", "measurement_matrix")):
        raise InvalidParameterError(
            "EIT reconstruction needs an EITSimulator with conductivity_on='cell' (one conductivity per cell)")
    if sim.rhs.device.type != "cpu":
        raise InvalidParameterError(
            f"EIT reconstruction runs on the CPU (dense Gauss-Newton systems of cell size); the simulator is on "
            f"{sim.rhs.device}: pass sim.cpu()")


def _kept_measurements(sim, shape, exclude_driven: bool) -> torch.Tensor:
    """Boolean mask of the measurements used: all, or those on electrodes without current."""
    if exclude_driven:
        return ~driven_measurements(sim.currents, sim.measurement_matrix)
    return torch.ones(shape, dtype=torch.bool)


def _check_data(sim, data, name: str = "data") -> torch.Tensor:
    data = torch.as_tensor(data, dtype=torch.float64)
    expected = (sim.num_patterns, sim.num_measurements)
    if tuple(data.shape) != expected:
        raise ShapeMismatchError(
            f"{name} has shape {tuple(data.shape)}; this simulator produces {expected} "
            "(n_patterns, n_measurements)")
    if not bool(torch.isfinite(data).all()):
        bad = int((~torch.isfinite(data)).sum())
        raise InvalidParameterError(f"{name} contains {bad} NaN/Inf value(s); all measurements must be finite")
    return data


def _check_noise(noise_std, shape) -> torch.Tensor:
    noise = torch.as_tensor(noise_std, dtype=torch.float64)
    try:
        noise = torch.broadcast_to(noise, shape).clone()
    except RuntimeError:
        raise ShapeMismatchError(
            f"noise_std has shape {tuple(noise.shape)}; it must be a scalar or broadcast to the data {tuple(shape)}"
        ) from None
    if not bool(torch.isfinite(noise).all()) or float(noise.min()) <= 0:
        raise InvalidParameterError(
            f"noise_std must be finite and > 0 (V, the standard deviation of the data noise); "
            f"got minimum {float(noise.min()):.3g}")
    return noise


def _check_positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name} must be finite and > 0; got {value!r}")
    return float(value)


def log_conductivity_jacobian(sim, m: torch.Tensor) -> torch.Tensor:
    """``d F(exp m) / d m = J_sigma(exp m) diag(exp m)`` ``(n_patterns * n_measurements, n_cells)`` (V)."""
    sigma = torch.exp(m.detach())
    return sim.jacobian(sigma) * sigma[None, :]


def _forward(sim, m: torch.Tensor, log_k: float = 0.0) -> torch.Tensor:
    """Data ``(n_patterns * n_measurements,)`` at ``sigma = exp m`` and contact impedances ``k z``
    (``k = exp(log_k)``): ``F(sigma, k z) = k F(k sigma, z)`` (module doc)."""
    with torch.no_grad():  # exp(m + log_k), the same tensor the Jacobian uses: the cached LU is reused
        return math.exp(log_k) * sim(torch.exp(m + log_k)).reshape(-1)


def _jacobians(sim, m: torch.Tensor, log_k: float, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``dF/dm`` ``(n_data, n_cells)`` and ``dF/dlog k`` ``(n_data,)`` at ``(m, log_k)``; ``f = F(m, log_k)``.

    ``dF/dm = k J(k sigma) diag(k sigma)``; ``dF/dlog k = F + (dF/dm) 1`` (from ``F = k F(k sigma, z)``).
    """
    k = math.exp(log_k)
    jm = k * log_conductivity_jacobian(sim, m + log_k)
    return jm, f + jm.sum(1)


def _no_penalty(x: torch.Tensor) -> torch.Tensor:
    return x.new_zeros(())


def homogeneous_fit(sim, data, noise_std=1.0, mask: torch.Tensor | None = None, fit_contact: bool = False,
                    contact_scale: float = 1.0, iterations: int = 20) -> tuple[float, float]:
    """Best constant conductivity ``c`` (S/m) and, if ``fit_contact``, the common contact-impedance factor
    ``k`` (else ``contact_scale``): minimize ``||(F(c, k z) - d)/noise_std||`` over the ``mask``-ed data.

    Starts from the least-squares scale ``c = <F(1), F(1)> / <F(1), d>`` (exact when the contact
    impedance is zero, since then ``F(c) = F(1)/c``), ``k = contact_scale``, and refines ``(log c, log k)``
    by the dense Gauss-Newton of :func:`~physinv.invert.minimize_gauss_newton` (steps capped at 1 in
    log, ``iterations`` at most).  Returns ``(c, k)``.
    """
    _check_sim(sim)
    data = _check_data(sim, data)
    noise = _check_noise(noise_std, data.shape)
    contact_scale = _check_positive("contact_scale", contact_scale)
    keep = torch.ones_like(data, dtype=torch.bool) if mask is None else mask
    ones = torch.ones(sim.parameter_shape[0], dtype=torch.float64)
    fixed_log_k = math.log(contact_scale)

    def split(y: torch.Tensor):
        return y[0] * ones, (y[1] if fit_contact else fixed_log_k)

    def forward(y: torch.Tensor) -> torch.Tensor:
        m, log_k = split(y)
        return _forward(sim, m, log_k).reshape(data.shape)

    def jacobian(y: torch.Tensor) -> torch.Tensor:
        m, log_k = split(y)
        jm, jk = _jacobians(sim, m, float(log_k), _forward(sim, m, float(log_k)))
        return torch.stack([jm.sum(1), jk], 1) if fit_contact else jm.sum(1, keepdim=True)

    problem = InverseProblem(forward, data, noise, _no_penalty, IdentityParametrization(), mask=keep,
                             jacobian=jacobian)
    w = 1.0 / noise[keep]
    f1, d = _forward(sim, 0.0 * ones).reshape(data.shape)[keep], data[keep]
    num, den = float((w**2 * f1 * f1).sum()), float((w**2 * f1 * d).sum())
    start = [math.log(num / den) if den > 0 else 0.0] + ([fixed_log_k] if fit_contact else [])
    fit = minimize_gauss_newton(problem, torch.tensor(start, dtype=torch.float64), 0.0, maxiter=iterations,
                                gtol=1e-10, max_step=1.0, linearization="dense")
    return math.exp(float(fit.m[0])), (math.exp(float(fit.m[1])) if fit_contact else contact_scale)


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------


@dataclass
class EITReconstruction(OptimizationResult):
    """The inversion stack's :class:`~physinv.invert.result.OptimizationResult` with EIT's answers.

    ``sigma`` is the conductivity per cell (S/m, torch ``(n_cells,)``); ``beta = inf``: the
    homogeneous fit already met the discrepancy principle; ``sigma_background`` the homogeneous
    start (S/m); ``contact_scale`` the common factor ``k`` of the contact impedances (fitted, or the
    one given); ``delta_sigma`` the change from the reference (difference imaging).  ``m`` is the
    search variable (``log sigma``, then ``log k`` when fitted; ``delta`` for difference imaging).
    """

    sigma: torch.Tensor | None = None
    regularizer: str = ""
    sigma_background: float = float("nan")
    contact_scale: float = 1.0
    delta_sigma: torch.Tensor | None = None


def _progress(enabled: bool, desc: str):
    return iteration_progress(desc) if enabled else nullcontext(None)


def _check_sweep(beta, tau, beta_rule, beta_factor, max_betas, max_iter, regularizer):
    if regularizer not in EIT_REGULARIZERS:
        raise UnknownNameError(f"unknown EIT regularizer {regularizer!r}; allowed: {', '.join(EIT_REGULARIZERS)}")
    if beta is not None:
        _check_positive("beta", beta)
    _check_positive("tau", tau)
    if beta_rule not in BETA_RULES:
        raise UnknownNameError(f"unknown weight rule {beta_rule!r}; allowed: {', '.join(BETA_RULES)}")
    if not (math.isfinite(beta_factor) and beta_factor > 1):
        raise InvalidParameterError(f"beta_factor must be > 1; got {beta_factor}")
    if max_betas < 1 or max_iter < 1:
        raise InvalidParameterError("max_betas and max_iter must be >= 1")


# --------------------------------------------------------------------------------------------------
# absolute imaging
# --------------------------------------------------------------------------------------------------


def _absolute_problem(sim, data, noise, keep, reg, fit_contact: bool, log_k: float, project: bool):
    """``J(x) = 1/2 ||M (F(exp m, k z) - d)/s||^2 + beta R(m)`` with ``x = m`` or ``x = (m, log k)``."""
    n = sim.parameter_shape[0]

    def split(x: torch.Tensor):
        return (x[:n], x[n]) if fit_contact else (x, log_k)

    def forward(x: torch.Tensor) -> torch.Tensor:
        m, lk = split(x)
        return (torch.exp(lk) if fit_contact else math.exp(lk)) * sim(torch.exp(m + lk))

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        m, lk = split(x)
        jm, jk = _jacobians(sim, m, float(lk), _forward(sim, m, float(lk)))
        return torch.cat([jm, jk[:, None]], 1) if fit_contact else jm

    return InverseProblem(forward, data, noise, NuisanceFree(reg, n) if fit_contact else reg,
                          IdentityParametrization(), mask=keep,
                          projection=data_space(sim, noise, keep) if project else None, jacobian=jacobian)


def reconstruct_absolute(
    sim,
    data,
    noise_std,
    regularizer: str = "tv",
    beta: float | None = None,
    beta_rule: str = "discrepancy",
    tau: float = 1.05,
    beta0: float | None = None,
    beta_factor: float = 2.0,
    max_betas: int = 30,
    lcurve_betas: int = 16,
    max_iter: int = 8,
    rtol: float = 1e-3,
    tv_beta: float = 0.05,
    gamma: float = 0.0,
    max_step: float = 1.0,
    fit_contact: bool = True,
    contact_scale: float = 1.0,
    exclude_driven: bool = False,
    project_data: bool = True,
    progress: bool = False,
) -> EITReconstruction:
    """Absolute EIT imaging by Gauss-Newton on ``m = log sigma`` (objective in the module doc).

    Parameters
    ----------
    sim
        :class:`~physinv.problems.eit.simulator.EITSimulator` with ``conductivity_on="cell"``.
    data, noise_std
        Measured data ``(n_patterns, n_measurements)`` (V) and the standard deviation of their
        noise (V; a scalar or broadcastable to the data), > 0.
    regularizer
        ``"tikhonov"`` or ``"tv"`` (module doc).
    beta
        A fixed weight (then ``max_iter * max_betas`` Gauss-Newton steps at most); ``None``
        chooses it by ``beta_rule``.
    beta_rule, tau, beta0, beta_factor, max_betas, lcurve_betas
        ``"discrepancy"``: :func:`~physinv.invert.weight_rules.discrepancy_search` on
        ``beta0 / beta_factor^k`` (warm starts; the first weight with misfit ratio ``<= tau`` is
        kept; if ``beta0`` fits already, the weight goes up until it does not), at most
        ``max_betas`` weights.  ``"lcurve"``:
        :func:`~physinv.invert.weight_rules.lcurve_search` over ``lcurve_betas`` weights (misfit
        on the projected data, as the discrepancy test).  ``beta0`` defaults to
        ``100 tr(J^T J) / tr(H_R)`` at the homogeneous start (100 times the weight at which
        regularization and data curvatures balance).
    max_iter, rtol, max_step
        Gauss-Newton steps per weight; stop when a step lowers ``J`` by less than
        ``rtol * J``; steps are scaled to ``max|delta m| <= max_step``.
    tv_beta, gamma
        TV smoothing (a log-conductivity jump) and the weight (1/m^2) of the optional
        identity term ``gamma sum |T_i| (m_i - m_ref,i)^2``, ``m_ref`` = the homogeneous start.
    fit_contact, contact_scale
        Estimate a common factor ``k`` of the simulator's contact impedances jointly with
        ``m`` (unregularized; module doc), or keep it fixed at ``contact_scale`` (e.g. from a
        calibration on a homogeneous tank, :func:`homogeneous_fit`).
    exclude_driven
        Drop the measurements on current-carrying electrodes (module doc).
    project_data
        Measure the misfit ratio on the data projected onto the subspace every model
        prediction lies in (:func:`data_space`), with ``N`` its dimension.  (The rest is noise
        whatever ``sigma``; counting it would make ``tau`` mean less.)
    progress
        Show a tqdm bar (one tick per Gauss-Newton step).
    """
    start = time.perf_counter()
    _check_sim(sim)
    data = _check_data(sim, data)
    noise = _check_noise(noise_std, data.shape)
    _check_sweep(beta, tau, beta_rule, beta_factor, max_betas, max_iter, regularizer)
    if beta_rule == "lcurve" and lcurve_betas < 3:
        raise InvalidParameterError(f"lcurve_betas must be >= 3; got {lcurve_betas}")
    keep = _kept_measurements(sim, data.shape, exclude_driven)
    if not bool(keep.any()):
        raise InvalidParameterError("every measurement touches a driven electrode; use exclude_driven=False")

    contact_scale = _check_positive("contact_scale", contact_scale)
    sigma0, k0 = homogeneous_fit(sim, data, noise, mask=keep, fit_contact=fit_contact, contact_scale=contact_scale)
    n = sim.parameter_shape[0]
    m0 = torch.full((n,), math.log(sigma0), dtype=torch.float64)
    reg = cell_regularizer(regularizer, sim.operator.mesh, tv_beta=tv_beta, gamma=gamma, m_ref=m0.clone())
    problem = _absolute_problem(sim, data, noise, keep, reg, fit_contact, math.log(k0), project_data)
    x0 = torch.cat([m0, torch.tensor([math.log(k0)], dtype=torch.float64)]) if fit_contact else m0

    with _progress(progress, f"EIT Gauss-Newton ({regularizer})") as callback:
        def solve(weight: float, x: torch.Tensor, maxiter: int = max_iter) -> OptimizationResult:
            return minimize_gauss_newton(problem, x, weight, maxiter=maxiter, gtol=0.0, rtol=rtol,
                                         max_step=max_step, linearization="dense", callback=callback)

        if beta is not None:
            result = solve(beta, x0, max_iter * max_betas)
        else:
            ratio0 = problem.misfit_over_noise(x0)
            if beta_rule == "discrepancy" and ratio0 <= tau:  # the best homogeneous conductivity fits already
                result = OptimizationResult(
                    x0, "gauss-newton", math.inf, converged=True, misfit_ratio=ratio0, num_data=problem.num_data,
                    misfit_ratio_history=[ratio0],
                    message=f"discrepancy principle: the homogeneous fit has misfit ratio {ratio0:.3f} <= tau")
            else:
                if beta0 is None:
                    jw = problem.weighted_jacobian(x0)[:, :n]
                    beta0 = 100.0 * float((jw**2).sum()) / float(torch.diagonal(reg.hessian(m0)).sum())
                beta0 = _check_positive("beta0", beta0)
                if beta_rule == "lcurve":
                    result = lcurve_search(solve, x0, beta0, problem.regularizer, beta_factor, lcurve_betas)
                else:
                    result = discrepancy_search(solve, x0, beta0, tau=tau, factor=beta_factor, band=None,
                                                max_solves=max_betas)
    m, log_k = (result.m[:n], float(result.m[n])) if fit_contact else (result.m, math.log(k0))
    fields = {**vars(result), "calls": problem.calls.copy(), "wall_time": time.perf_counter() - start}
    return EITReconstruction(**fields, sigma=torch.exp(m), regularizer=regularizer, sigma_background=sigma0,
                             contact_scale=math.exp(log_k))


# --------------------------------------------------------------------------------------------------
# difference imaging
# --------------------------------------------------------------------------------------------------


def reconstruct_difference(
    sim,
    data,
    data_ref,
    noise_std,
    sigma_ref=None,
    regularizer: str = "tikhonov",
    beta: float | None = None,
    tau: float = 1.05,
    beta0: float | None = None,
    beta_factor: float = 1.5,
    max_betas: int = 40,
    parametrization: str = "log",
    tv_beta: float = 0.05,
    gamma: float = 0.0,
    irls_iterations: int = 15,
    contact_scale: float | None = None,
    exclude_driven: bool = False,
    project_data: bool = True,
    progress: bool = False,
) -> EITReconstruction:
    """Difference imaging: the regularized linearized problem at ``sigma_ref``.

    With ``J`` the Jacobian at ``sigma_ref`` (w.r.t. ``log sigma`` for ``parametrization="log"``,
    w.r.t. ``sigma`` for ``"linear"``) and ``y = d - d_ref`` (V),

        delta = argmin 1/2 ||(J delta - y)/noise_std||^2 + beta R(delta),

    ``R`` as in absolute imaging with ``m_ref = 0``.  ``"log"`` returns
    ``sigma = sigma_ref exp(delta)`` (always positive; to first order the same as ``"linear"``),
    ``"linear"`` returns ``sigma = sigma_ref + delta`` (may be <= 0 where a large decrease
    exceeds the linearization).  ``delta_sigma = sigma - sigma_ref`` either way.  For TV on
    ``"linear"``, ``tv_beta`` is scaled by the mean of ``sigma_ref`` (S/m).

    ``noise_std`` (V) is that of the difference ``d - d_ref``.  ``beta`` fixed, or chosen by the
    discrepancy principle on ``beta0 / beta_factor^k`` (``beta0`` default ``10 tr(J^T J)/tr(H_R)``,
    at most ``max_betas`` weights; misfit ratio projected as in :func:`reconstruct_absolute` when
    ``project_data``).  The minimizer is the dense Gauss-Newton of the linear problem: one exact
    step for Tikhonov; for TV its steps are the lagged-diffusivity (IRLS) re-weightings, at most
    ``irls_iterations`` per weight, warm-started along the decreasing weights.  ``sigma_ref``
    defaults to the best homogeneous conductivity for ``data_ref``, with the contact-impedance
    factor fitted too (:func:`homogeneous_fit`); with a given ``sigma_ref``, ``contact_scale``
    defaults to 1.
    """
    start = time.perf_counter()
    _check_sim(sim)
    data = _check_data(sim, data)
    data_ref = _check_data(sim, data_ref, "data_ref")
    noise = _check_noise(noise_std, data.shape)
    _check_sweep(beta, tau, "discrepancy", beta_factor, max_betas, irls_iterations, regularizer)
    if parametrization not in ("log", "linear"):
        raise UnknownNameError(f"parametrization must be 'log' or 'linear'; got {parametrization!r}")
    n = sim.parameter_shape[0]
    keep = _kept_measurements(sim, data.shape, exclude_driven)
    if sigma_ref is None:
        # a given contact_scale is used in the fit too, so sigma_ref and the linearization agree
        sigma0, k_fit = homogeneous_fit(sim, data_ref, noise, mask=keep, fit_contact=contact_scale is None,
                                        contact_scale=1.0 if contact_scale is None else contact_scale)
        sigma_ref = torch.full((n,), sigma0, dtype=torch.float64)
        contact_scale = k_fit
    else:
        sigma_ref = torch.broadcast_to(torch.as_tensor(sigma_ref, dtype=torch.float64), (n,)).clone()
        if not bool(torch.isfinite(sigma_ref).all()) or float(sigma_ref.min()) <= 0:
            raise InvalidParameterError("sigma_ref must be finite and > 0 (S/m)")
        sigma0 = float(sigma_ref.mean())
    contact_scale = _check_positive("contact_scale", 1.0 if contact_scale is None else contact_scale)

    log_k = math.log(contact_scale)
    jac, _ = _jacobians(sim, torch.log(sigma_ref), log_k, _forward(sim, torch.log(sigma_ref), log_k))
    if parametrization == "log":
        smoothing = tv_beta
    else:
        jac = jac / sigma_ref[None, :]
        smoothing = tv_beta * float(sigma_ref.mean())
    reg = cell_regularizer(regularizer, sim.operator.mesh, tv_beta=smoothing, gamma=gamma, m_ref=0.0)
    problem = InverseProblem(lambda delta: (jac @ delta).reshape(data.shape), data - data_ref, noise, reg,
                             IdentityParametrization(), mask=keep,
                             projection=data_space(sim, noise, keep) if project_data else None,
                             jacobian=lambda _delta: jac)
    zero = torch.zeros(n, dtype=torch.float64)
    steps = 1 if regularizer == "tikhonov" else irls_iterations  # Tikhonov: the quadratic's exact minimizer

    with _progress(progress, f"EIT difference imaging ({regularizer})") as callback:
        def solve(weight: float, delta: torch.Tensor) -> OptimizationResult:
            return minimize_gauss_newton(problem, delta, weight, maxiter=steps, gtol=0.0, rtol=1e-6,
                                         linearization="dense", callback=callback)

        if beta is not None:
            result = solve(beta, zero)
            result.converged, result.message = True, "fixed beta"
        else:
            if beta0 is None:
                jw = problem.weighted_jacobian(zero)
                beta0 = 10.0 * float((jw**2).sum()) / float(torch.diagonal(reg.hessian(zero)).sum())
            result = discrepancy_search(solve, zero, _check_positive("beta0", beta0), tau=tau, factor=beta_factor,
                                        band=None, max_solves=max_betas)
    delta = result.m
    sigma = sigma_ref * torch.exp(delta) if parametrization == "log" else sigma_ref + delta
    fields = {**vars(result), "calls": problem.calls.copy(), "wall_time": time.perf_counter() - start}
    return EITReconstruction(**fields, sigma=sigma, regularizer=regularizer, sigma_background=sigma0,
                             contact_scale=contact_scale, delta_sigma=sigma - sigma_ref)
