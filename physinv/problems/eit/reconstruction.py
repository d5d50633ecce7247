"""Classic EIT reconstruction: Gauss-Newton absolute imaging and linearized difference imaging.

Both work on cell conductivities of an :class:`~physinv.problems.eit.simulator.EITSimulator`
(``conductivity_on="cell"``) and on ``m = log(sigma)`` per cell (``sigma`` in
S/m, so ``m`` is ``log(sigma / (1 S/m))``, dimensionless).

Absolute imaging (:func:`reconstruct_absolute`) minimizes

    Phi(m) = 1/2 || (F(exp m) - d) / noise_std ||^2 + alpha/2 R(m)

(``Phi`` and the weighted misfit are dimensionless: data and ``noise_std`` in
V) by Gauss-Newton with the adjoint Jacobian ``J_m = J_sigma diag(sigma)`` of
:meth:`~physinv.problems.eit.simulator.EITSimulator.jacobian` (chain rule for
``sigma = exp m``), from the best homogeneous conductivity
(:func:`homogeneous_fit`), with Armijo backtracking.  ``alpha`` is
fixed or chosen by Morozov's discrepancy principle: ``alpha_k = alpha_0 /
q^k``, each solve warm-started from the previous one, stop at the first
``alpha_k`` whose misfit ratio ``||(F - d)/noise_std|| / sqrt(N) <= tau``.

Difference imaging (:func:`reconstruct_difference`) takes one regularized
linearized step from a reference conductivity and reference data.

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
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.invert.cell_regularizers import EIT_REGULARIZERS, cell_regularizer
from physinv.problems.eit.simulator import driven_measurements

__all__ = [
    "ALPHA_RULES",
    "lcurve_corner",
    "EITReconstruction",
    "data_space",
    "homogeneous_fit",
    "log_conductivity_jacobian",
    "reconstruct_absolute",
    "reconstruct_difference",
]

ALPHA_RULES = ("discrepancy", "lcurve")


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


def homogeneous_fit(sim, data, noise_std=1.0, mask: torch.Tensor | None = None, fit_contact: bool = False,
                    contact_scale: float = 1.0, iterations: int = 20) -> tuple[float, float]:
    """Best constant conductivity ``c`` (S/m) and, if ``fit_contact``, the common contact-impedance factor
    ``k`` (else ``contact_scale``): minimize ``||(F(c, k z) - d)/noise_std||`` over the ``mask``-ed data.

    Starts from the least-squares scale ``c = <F(1), F(1)> / <F(1), d>`` (exact when the contact
    impedance is zero, since then ``F(c) = F(1)/c``), ``k = contact_scale``, and refines ``(log c, log k)``
    by Gauss-Newton (steps capped at 1 in log).  Returns ``(c, k)``.
    """
    _check_sim(sim)
    data = _check_data(sim, data)
    noise = _check_noise(noise_std, data.shape)
    keep = (torch.ones_like(data, dtype=torch.bool) if mask is None else mask).reshape(-1)
    d, w = data.reshape(-1)[keep], 1.0 / noise.reshape(-1)[keep]
    n = sim.parameter_shape[0]
    zero = torch.zeros(n, dtype=torch.float64)
    f1 = _forward(sim, zero)[keep]
    num, den = float((w**2 * f1 * f1).sum()), float((w**2 * f1 * d).sum())
    x = torch.tensor([math.log(num / den) if den > 0 else 0.0, math.log(contact_scale)], dtype=torch.float64)
    for _ in range(iterations):
        f = _forward(sim, zero + x[0], float(x[1]))
        jm, jk = _jacobians(sim, zero + x[0], float(x[1]), f)
        r = (f[keep] - d) * w
        cols = [jm.sum(1)[keep] * w] + ([jk[keep] * w] if fit_contact else [])
        g = torch.stack(cols, 1)
        step = torch.linalg.lstsq(g, -r[:, None]).solution[:, 0].clamp(-1.0, 1.0)
        x[: len(cols)] += step
        if float(step.abs().max()) < 1e-8:
            break
    return math.exp(float(x[0])), math.exp(float(x[1]))


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------


@dataclass
class EITReconstruction:
    """Outcome of an EIT reconstruction.

    ``sigma`` is the conductivity per cell (S/m, torch ``(n_cells,)``); ``alpha`` the
    regularization weight used (``inf``: the homogeneous fit already met the discrepancy
    principle); ``iterations`` the Gauss-Newton (or IRLS) iterations over all alphas;
    ``misfit_ratio`` the final ``||(F - d)/noise_std|| / sqrt(N)`` (for difference imaging, of
    the linearized model); ``misfit_history`` that ratio after every iteration, the start
    first; ``alpha_path`` ``(alpha, misfit ratio, iterations)`` per tried alpha;
    ``wall_time`` seconds; ``sigma_background`` the homogeneous start (S/m); ``contact_scale`` the
    fitted common factor ``k`` of the contact impedances (1 when not fitted).
    """

    sigma: torch.Tensor
    alpha: float
    regularizer: str
    iterations: int
    misfit_ratio: float
    misfit_history: list[float]
    wall_time: float
    converged: bool
    message: str
    num_data: int
    sigma_background: float = float("nan")
    alpha_path: list[tuple[float, float, int]] = field(default_factory=list)
    contact_scale: float = 1.0
    delta_sigma: torch.Tensor | None = None


class _Progress:
    def __init__(self, enabled: bool, desc: str):
        self._ctx = None
        self.callback: Callable[[int, float, float], None] | None = None
        if enabled:
            from physinv.invert.progress import iteration_progress

            self._ctx = iteration_progress(desc)
            self.callback = self._ctx.__enter__()

    def __call__(self, k: int, objective: float, ratio: float) -> None:
        if self.callback is not None:
            self.callback(k, objective, ratio)

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)


# --------------------------------------------------------------------------------------------------
# absolute imaging
# --------------------------------------------------------------------------------------------------


class _AbsoluteProblem:
    """``Phi(x) = 1/2 ||(F(exp m, k z) - d)/s||^2 + alpha/2 R(m)`` on the kept measurements, with
    ``x = m`` or ``x = (m, log k)`` (``fit_contact``)."""

    def __init__(self, sim, data, noise, keep, reg, fit_contact: bool, log_k: float, project: bool):
        self.sim, self.reg, self.fit_contact = sim, reg, fit_contact
        self.keep = keep.reshape(-1)
        self.d = data.reshape(-1)[self.keep]
        self.w = 1.0 / noise.reshape(-1)[self.keep]
        self.basis = data_space(sim, noise, keep) if project else None
        self.num_data = self.basis.shape[1] if project else int(self.keep.sum())
        self.n = sim.parameter_shape[0]
        self.fixed_log_k = log_k

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        return (x[: self.n], float(x[self.n])) if self.fit_contact else (x, self.fixed_log_k)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        m, log_k = self.split(x)
        self._f = _forward(self.sim, m, log_k)
        return (self._f[self.keep] - self.d) * self.w

    def weighted_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Jacobian of the weighted residual at ``x`` (call right after :meth:`residual` at ``x``)."""
        m, log_k = self.split(x)
        jm, jk = _jacobians(self.sim, m, log_k, self._f)
        if self.fit_contact:
            jm = torch.cat([jm, jk[:, None]], 1)
        return jm[self.keep] * self.w[:, None]

    def reg_value(self, x):
        return float(self.reg.value(x[: self.n]))

    def reg_gradient(self, x):
        g = self.reg.gradient(x[: self.n])
        return torch.cat([g, g.new_zeros(1)]) if self.fit_contact else g

    def reg_hessian(self, x):
        h = self.reg.hessian(x[: self.n])
        return torch.nn.functional.pad(h, (0, 1, 0, 1)) if self.fit_contact else h

    def objective(self, r: torch.Tensor, x: torch.Tensor, alpha: float) -> float:
        return 0.5 * float(r @ r) + 0.5 * alpha * self.reg_value(x)

    def ratio(self, r: torch.Tensor) -> float:
        """``||(F - d)/s|| / sqrt(N)`` of the data projected on :func:`data_space` (if ``project``)."""
        if self.basis is not None:
            r = self.basis.T @ r
        return float(r.norm()) / math.sqrt(self.num_data)


def _solve_spd(h: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(h)
    if int(info) == 0:
        return torch.cholesky_solve(rhs[:, None], chol)[:, 0]
    return torch.linalg.lstsq(h, rhs[:, None]).solution[:, 0]


def _gauss_newton(prob: _AbsoluteProblem, x: torch.Tensor, alpha: float, max_iter: int, rtol: float,
                  max_step: float, history: list[float], progress: _Progress, counter: list[int]):
    """Gauss-Newton with Armijo backtracking at fixed ``alpha``.  Stops when an accepted step lowers
    ``Phi`` by less than ``rtol * Phi``, when no step along the GN direction decreases ``Phi``
    (stationary to rounding), or after ``max_iter`` steps.  Returns ``(x, r, iterations, converged)``."""
    r = prob.residual(x)
    phi = prob.objective(r, x, alpha)
    for it in range(1, max_iter + 1):
        jw = prob.weighted_jacobian(x)
        g = jw.T @ r + 0.5 * alpha * prob.reg_gradient(x)
        h = jw.T @ jw + 0.5 * alpha * prob.reg_hessian(x)
        p = -_solve_spd(h, g)
        biggest = float(p.abs().max())
        if biggest > max_step:  # step control: at most a factor exp(max_step) per cell and step
            p = p * (max_step / biggest)
        slope = float(g @ p)
        if slope >= 0:
            p, slope = -g, -float(g @ g)
        t, accepted = 1.0, False
        for _ in range(12):
            x_trial = x + t * p
            r_trial = prob.residual(x_trial)
            phi_trial = prob.objective(r_trial, x_trial, alpha)
            if math.isfinite(phi_trial) and phi_trial <= phi + 1e-4 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            prob.residual(x)  # restore the cached forward data of x
            return x, r, it - 1, True
        decrease = phi - phi_trial
        x, r, phi = x_trial, r_trial, phi_trial
        history.append(prob.ratio(r))
        counter[0] += 1
        progress(counter[0], phi, history[-1])
        if decrease <= rtol * phi:
            return x, r, it, True
    return x, r, max_iter, False


def _projected_misfit(prob: _AbsoluteProblem, r: torch.Tensor) -> float:
    if prob.basis is not None:
        r = prob.basis.T @ r
    return float(r @ r)


def lcurve_corner(alphas, misfits, penalties) -> int:
    """Index of the L-curve corner: the largest curvature of ``(log misfit, log R)`` as a curve in ``log alpha``
    (Hansen's L-curve criterion; derivatives by second-order finite differences, end points excluded)."""
    t = np.log(np.asarray(alphas, dtype=float))
    rho = np.log(np.maximum(np.asarray(misfits, dtype=float), 1e-300))
    eta = np.log(np.maximum(np.asarray(penalties, dtype=float), 1e-300))
    if t.size < 3:
        raise InvalidParameterError(f"the L-curve needs at least 3 alphas; got {t.size}")
    d_rho, d_eta = np.gradient(rho, t), np.gradient(eta, t)
    dd_rho, dd_eta = np.gradient(d_rho, t), np.gradient(d_eta, t)
    curvature = (d_rho * dd_eta - dd_rho * d_eta) / np.maximum(d_rho**2 + d_eta**2, 1e-300) ** 1.5
    return int(np.argmax(curvature[1:-1])) + 1


def _lcurve_sweep(prob: _AbsoluteProblem, x: torch.Tensor, alpha0: float, alpha_factor: float, count: int,
                  max_iter: int, rtol: float, max_step: float, history: list[float], bar, counter: list[int]):
    """Solve for ``alpha0 / q^k``, ``k = 0..count-1`` (warm starts), keep the L-curve corner.
    Returns ``(alpha, x, r, path)``."""
    path, states = [], []
    alpha = alpha0
    for _ in range(count):
        x, r, its, _conv = _gauss_newton(prob, x, alpha, max_iter, rtol, max_step, history, bar, counter)
        path.append((alpha, prob.ratio(r), its))
        states.append((alpha, _projected_misfit(prob, r), prob.reg_value(x), x, r))
        alpha /= alpha_factor
    corner = lcurve_corner(*zip(*[(a, f, p) for a, f, p, _, _ in states]))
    alpha, _, _, x, r = states[corner]
    prob.residual(x)  # the cached forward data belong to x again
    return alpha, x, r, path


def reconstruct_absolute(
    sim,
    data,
    noise_std,
    regularizer: str = "tv",
    alpha: float | None = None,
    alpha_rule: str = "discrepancy",
    tau: float = 1.05,
    alpha0: float | None = None,
    alpha_factor: float = 2.0,
    max_alphas: int = 30,
    lcurve_alphas: int = 16,
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
    alpha
        A fixed weight (then ``max_iter * max_alphas`` Gauss-Newton steps at most); ``None``
        chooses it by the discrepancy principle: ``alpha_k = alpha0 / alpha_factor^k``, warm
        starts, the first ``alpha_k`` with misfit ratio ``<= tau`` is kept (or the last of
        ``max_alphas``, with ``converged=False``).
    alpha0
        Start of the sequence; default ``100 tr(J^T J) / tr(H_R / 2)`` at the homogeneous start (``H_R / 2``:
        the Hessian of the penalty term ``R / 2``)
        (100 times the weight at which regularization and data curvatures balance).  If the
        misfit ratio at ``alpha0`` is already ``<= tau``, alpha is increased instead (cold
        starts) until it exceeds ``tau``, and the last alpha below is kept.
    alpha_rule, lcurve_alphas
        How ``alpha=None`` is chosen: ``"discrepancy"`` (above) or ``"lcurve"``: solve for
        ``lcurve_alphas`` values ``alpha0 / alpha_factor^k`` (warm starts) and keep the corner of
        the L-curve (:func:`lcurve_corner`; misfit on the projected data, as the discrepancy test).
    max_iter, rtol, max_step
        Gauss-Newton steps per alpha; stop when a step lowers ``Phi`` by less than
        ``rtol * Phi``; steps are scaled to ``max|delta m| <= max_step``.
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
        Measure the misfit ratio of the discrepancy principle on the data projected onto the
        subspace every model prediction lies in (:func:`data_space`), with ``N`` its dimension.
        (The rest is noise whatever ``sigma``; counting it would make ``tau`` mean less.)
    progress
        Show a tqdm bar (one tick per Gauss-Newton step).
    """
    start = time.perf_counter()
    _check_sim(sim)
    data = _check_data(sim, data)
    noise = _check_noise(noise_std, data.shape)
    if regularizer not in EIT_REGULARIZERS:
        raise UnknownNameError(f"unknown EIT regularizer {regularizer!r}; allowed: {', '.join(EIT_REGULARIZERS)}")
    if alpha is not None:
        alpha = _check_positive("alpha", alpha)
    tau = _check_positive("tau", tau)
    if alpha_rule not in ALPHA_RULES:
        raise UnknownNameError(f"unknown alpha rule {alpha_rule!r}; allowed: {', '.join(ALPHA_RULES)}")
    if not (math.isfinite(alpha_factor) and alpha_factor > 1):
        raise InvalidParameterError(f"alpha_factor must be > 1; got {alpha_factor}")
    if max_alphas < 1 or max_iter < 1:
        raise InvalidParameterError("max_alphas and max_iter must be >= 1")
    keep = _kept_measurements(sim, data.shape, exclude_driven)
    if not bool(keep.any()):
        raise InvalidParameterError("every measurement touches a driven electrode; use exclude_driven=False")

    contact_scale = _check_positive("contact_scale", contact_scale)
    sigma0, k0 = homogeneous_fit(sim, data, noise, mask=keep, fit_contact=fit_contact, contact_scale=contact_scale)
    n = sim.parameter_shape[0]
    m0 = torch.full((n,), math.log(sigma0), dtype=torch.float64)
    reg = cell_regularizer(regularizer, sim.operator.mesh, tv_beta=tv_beta, gamma=gamma, m_ref=m0.clone())
    prob = _AbsoluteProblem(sim, data, noise, keep, reg, fit_contact, math.log(k0), project_data)
    x = torch.cat([m0, torch.tensor([math.log(k0)], dtype=torch.float64)]) if fit_contact else m0
    r = prob.residual(x)
    history = [prob.ratio(r)]
    counter = [0]
    bar = _Progress(progress, f"EIT Gauss-Newton ({regularizer})")
    try:
        if alpha is not None:
            x, r, its, converged = _gauss_newton(prob, x, alpha, max_iter * max_alphas, rtol, max_step, history,
                                                 bar, counter)
            path = [(alpha, history[-1], its)]
            message = "converged" if converged else "maximum iterations reached"
        else:
            if alpha0 is None:
                jw = prob.weighted_jacobian(x)[:, :n]
                alpha0 = 100.0 * float((jw**2).sum()) / float(torch.diagonal(0.5 * reg.hessian(m0)).sum())
            alpha = _check_positive("alpha0", alpha0)
            path, converged, message = [], False, ""
            x_start = x
            if alpha_rule == "lcurve":
                if lcurve_alphas < 3:
                    raise InvalidParameterError(f"lcurve_alphas must be >= 3; got {lcurve_alphas}")
                alpha, x, r, path = _lcurve_sweep(prob, x, alpha, alpha_factor, lcurve_alphas, max_iter, rtol,
                                                  max_step, history, bar, counter)
                converged = True
                message = f"L-curve corner: alpha = {alpha:.4g} of {lcurve_alphas} values"
            elif history[0] <= tau:  # the best homogeneous conductivity explains the data already
                alpha, converged = math.inf, True
                message = f"discrepancy principle: the homogeneous fit has misfit ratio {history[0]:.3f} <= tau"
            else:
                x, r, its, _conv = _gauss_newton(prob, x, alpha, max_iter, rtol, max_step, history, bar, counter)
                path.append((alpha, prob.ratio(r), its))
                upward = path[-1][1] <= tau  # alpha0 too small: go up until the misfit exceeds tau
                best = (alpha, x, r) if upward else None
                for _ in range(max_alphas - 1):
                    if upward == (path[-1][1] > tau):
                        break
                    alpha = alpha * alpha_factor if upward else alpha / alpha_factor
                    x0 = x_start if upward else x  # warm start from the neighbour closer to the solution
                    x, r, its, _conv = _gauss_newton(prob, x0, alpha, max_iter, rtol, max_step, history, bar,
                                                     counter)
                    path.append((alpha, prob.ratio(r), its))
                    if path[-1][1] <= tau:
                        best = (alpha, x, r)
                if best is not None and (not upward or path[-1][1] > tau):
                    alpha, x, r = best
                    converged = True
                    message = (f"discrepancy principle: alpha = {alpha:.4g}, the largest tried with misfit ratio "
                               f"<= tau = {tau}")
                elif best is not None:  # went up max_alphas times without exceeding tau
                    alpha, x, r = best
                    message = f"misfit ratio <= tau = {tau} for every alpha up to {alpha:.4g}; keeping that"
                else:
                    message = (f"discrepancy principle not met after {max_alphas} alphas (misfit ratio "
                               f"{path[-1][1]:.3f} > tau = {tau}); keeping the last alpha")
    finally:
        bar.close()
    m, log_k = prob.split(x)
    return EITReconstruction(
        sigma=torch.exp(m), alpha=float(alpha), regularizer=regularizer, iterations=counter[0],
        misfit_ratio=prob.ratio(r), misfit_history=history, wall_time=time.perf_counter() - start,
        converged=converged, message=message, num_data=prob.num_data, sigma_background=sigma0, alpha_path=path,
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
    alpha: float | None = None,
    alphas=None,
    tau: float = 1.05,
    parametrization: str = "log",
    tv_beta: float = 0.05,
    gamma: float = 0.0,
    irls_iterations: int = 15,
    contact_scale: float | None = None,
    exclude_driven: bool = False,
    project_data: bool = True,
    progress: bool = False,
) -> EITReconstruction:
    """Difference imaging: one regularized linearized step from ``sigma_ref``.

    With ``J`` the Jacobian at ``sigma_ref`` (w.r.t. ``log sigma`` for ``parametrization="log"``,
    w.r.t. ``sigma`` for ``"linear"``) and ``y = d - d_ref`` (V),

        delta = argmin 1/2 ||(J delta - y)/noise_std||^2 + alpha/2 R(delta),

    ``R`` as in absolute imaging with ``m_ref = 0``.  ``"log"`` returns
    ``sigma = sigma_ref exp(delta)`` (always positive; to first order the same as ``"linear"``),
    ``"linear"`` returns ``sigma = sigma_ref + delta`` (may be <= 0 where a large decrease
    exceeds the linearization).  ``delta_sigma = sigma - sigma_ref`` either way.  For TV on
    ``"linear"``, ``tv_beta`` is scaled by the mean of ``sigma_ref`` (S/m).

    ``noise_std`` (V) is that of the difference ``d - d_ref``.  ``alpha`` fixed, or the largest of
    ``alphas`` (default: 40 values from ``10 tr(J^T J)/tr(H_R / 2)`` down by factors of 1.5) whose
    misfit ratio ``||(J delta - y)/noise_std|| / sqrt(N) <= tau`` (projected as in
    :func:`reconstruct_absolute` when ``project_data``).  ``sigma_ref`` defaults to the
    best homogeneous conductivity for ``data_ref``, with the contact-impedance factor fitted too
    (:func:`homogeneous_fit`); with a given ``sigma_ref``, ``contact_scale`` defaults to 1.  TV is
    solved by ``irls_iterations`` lagged-diffusivity re-weightings per alpha (warm-started along the
    decreasing alphas).
    """
    start = time.perf_counter()
    _check_sim(sim)
    data = _check_data(sim, data)
    data_ref = _check_data(sim, data_ref, "data_ref")
    noise = _check_noise(noise_std, data.shape)
    if regularizer not in EIT_REGULARIZERS:
        raise UnknownNameError(f"unknown EIT regularizer {regularizer!r}; allowed: {', '.join(EIT_REGULARIZERS)}")
    if parametrization not in ("log", "linear"):
        raise UnknownNameError(f"parametrization must be 'log' or 'linear'; got {parametrization!r}")
    if alpha is not None:
        alpha = _check_positive("alpha", alpha)
    tau = _check_positive("tau", tau)
    n = sim.parameter_shape[0]
    keep = _kept_measurements(sim, data.shape, exclude_driven)
    keep = keep.reshape(-1)
    if sigma_ref is None:
        # a given contact_scale is used in the fit too, so sigma_ref and the linearization agree
        sigma0, k_fit = homogeneous_fit(sim, data_ref, noise, mask=keep.reshape(data.shape),
                                        fit_contact=contact_scale is None,
                                        contact_scale=1.0 if contact_scale is None else contact_scale)
        sigma_ref = torch.full((n,), sigma0, dtype=torch.float64)
        contact_scale = k_fit
    else:
        sigma_ref = torch.broadcast_to(torch.as_tensor(sigma_ref, dtype=torch.float64), (n,)).clone()
        if not bool(torch.isfinite(sigma_ref).all()) or float(sigma_ref.min()) <= 0:
            raise InvalidParameterError("sigma_ref must be finite and > 0 (S/m)")
        sigma0 = float(sigma_ref.mean())
    contact_scale = _check_positive("contact_scale", 1.0 if contact_scale is None else contact_scale)

    w = 1.0 / noise.reshape(-1)[keep]
    log_k = math.log(contact_scale)
    jac, _ = _jacobians(sim, torch.log(sigma_ref), log_k, _forward(sim, torch.log(sigma_ref), log_k))
    if parametrization == "log":
        beta = tv_beta
    else:
        jac = jac / sigma_ref[None, :]
        beta = tv_beta * float(sigma_ref.mean())
    jw = jac[keep] * w[:, None]
    y = (data - data_ref).reshape(-1)[keep] * w
    basis = data_space(sim, noise, keep) if project_data else None
    num_data = basis.shape[1] if project_data else int(keep.sum())
    reg = cell_regularizer(regularizer, sim.operator.mesh, tv_beta=beta, gamma=gamma, m_ref=0.0)
    jtj, jty = jw.T @ jw, jw.T @ y
    zero = torch.zeros(n, dtype=torch.float64)

    def ratio_of(delta):
        r = jw @ delta - y
        return float((r if basis is None else basis.T @ r).norm()) / math.sqrt(num_data)

    def solve(a, delta):
        """Minimizer at weight ``a`` (TV: IRLS from ``delta``); returns (delta, iterations)."""
        if regularizer == "tikhonov":
            return _solve_spd(jtj + 0.5 * a * reg.hessian(), jty), 1
        for k in range(1, irls_iterations + 1):
            new = _solve_spd(jtj + 0.5 * a * reg.hessian(delta), jty)
            change = float((new - delta).norm()) / max(float(new.norm()), 1e-300)
            delta = new
            if change < 1e-3:
                return delta, k
        return delta, irls_iterations

    history = [ratio_of(zero)]
    bar = _Progress(progress, f"EIT difference imaging ({regularizer})")
    path: list[tuple[float, float, int]] = []
    iterations = 0
    try:
        if alpha is not None:
            delta, its = solve(alpha, zero)
            iterations += its
            history.append(ratio_of(delta))
            path.append((alpha, history[-1], its))
            converged, message = True, "fixed alpha"
        else:
            if alphas is None:
                a0 = 10.0 * float(torch.diagonal(jtj).sum()) / float(torch.diagonal(0.5 * reg.hessian(zero)).sum())
                alphas = a0 / 1.5 ** np.arange(40)
            alphas = sorted((_check_positive("alphas", float(a)) for a in alphas), reverse=True)
            if not alphas:
                raise InvalidParameterError("alphas is empty; give at least one regularization weight (or None)")
            delta, converged, message = zero, False, ""
            for a in alphas:
                delta, its = solve(a, delta)
                iterations += its
                history.append(ratio_of(delta))
                path.append((a, history[-1], its))
                bar(len(path), 0.5 * history[-1] ** 2 * num_data, history[-1])
                alpha = a
                if history[-1] <= tau:
                    converged = True
                    message = f"discrepancy principle: misfit ratio {history[-1]:.3f} <= tau = {tau}"
                    break
            else:
                message = f"no alpha in the grid reached misfit ratio <= tau = {tau}; keeping the smallest"
    finally:
        bar.close()
    sigma = sigma_ref * torch.exp(delta) if parametrization == "log" else sigma_ref + delta
    return EITReconstruction(
        sigma=sigma, alpha=float(alpha), regularizer=regularizer, iterations=iterations,
        misfit_ratio=ratio_of(delta), misfit_history=history,
        wall_time=time.perf_counter() - start, converged=converged, message=message, num_data=num_data,
        sigma_background=sigma0, alpha_path=path, contact_scale=contact_scale, delta_sigma=sigma - sigma_ref)
