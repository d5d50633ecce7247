"""Ensemble Kalman inversion (EKI): a derivative-free solver for any :class:`InverseProblem`.

EKI (Iglesias, Law & Stuart 2013) moves an ensemble ``u_1..u_J`` of search variables
(e.g. ``m = log kappa``) with Kalman updates built from the ensemble's own covariances, so
it needs forward evaluations only: no adjoint, no Jacobian.  With ``Gamma = diag(sigma^2)``
(the masked measurements), step ``h`` and ``lambda = 1/h``, one iteration is

    g_j   = F(p(u_j))                                   (J forward calls)
    C_ug  = 1/(J-1) sum_j (u_j - u_bar)(g_j - g_bar)^T  (n_param, n_data)
    C_gg  = 1/(J-1) sum_j (g_j - g_bar)(g_j - g_bar)^T  (n_data, n_data)
    y_j   = d + xi_j,   xi_j ~ N(0, lambda Gamma)         (perturbed observations)
    u_j  <- u_j + C_ug (C_gg + lambda Gamma)^{-1} (y_j - g_j).

``h = 1`` is the classic EnKF analysis (for a linear ``F`` and a Gaussian ensemble its
mean is the Kalman posterior mean); a smaller ``h`` takes a damped step (the noise is
inflated by ``1/h``, as in ES-MDA).  The update never forms a data-sized matrix: in whitened
coordinates (residuals divided by ``sigma``) the anomalies are ``A = (U - u_bar)/sqrt(J-1)``
``(n_param, J)`` and ``Y = Gamma^{-1/2} (G - g_bar)/sqrt(J-1)`` ``(n_data, J)``, and with the
thin SVD ``Y = Q S P^T`` (cost ``O(n_data J^2)``) the Woodbury identity gives

    C_ug (C_gg + lambda Gamma)^{-1} (y - g) = A Y^T (Y Y^T + lambda I)^{-1} z
                                            = A P diag(s / (s^2 + lambda)) Q^T z,

``z = Gamma^{-1/2}(y - g)``: a ``J x J`` system, exact, whatever ``n_data``.  Every update is
a combination of the current anomalies, so without localization the ensemble (and its mean)
stays in the affine span of the initial ensemble (the *subspace property*).

Options:

* ``inflation = rho >= 1`` (multiplicative covariance inflation): before each analysis the
  anomalies are scaled by ``sqrt(rho)``, ``u_j <- u_bar + sqrt(rho)(u_j - u_bar)``, and the
  prediction anomalies with them, ``g_j <- g_bar + sqrt(rho)(g_j - g_bar)`` (exact for a linear
  ``F``, first order otherwise; no extra forward calls), so ``C_ug``, ``C_gg`` grow by ``rho``.
* ``localization``: a taper ``L`` ``(n_param, n_data)`` applied elementwise to ``C_ug``
  (Schur product), or a callable ``C_ug -> localized C_ug`` (both in data units, over the
  used measurements); then ``u_j <- u_j + (L o C_ug) w_j`` with
  ``w_j = (C_gg + lambda Gamma)^{-1}(y_j - g_j)``, again from the SVD of ``Y``:
  ``Gamma^{1/2} w = Q diag(1/(s^2+lambda)) Q^T z + (z - Q Q^T z)/lambda``.
  :func:`gaspari_cohn` and :func:`distance_taper` build distance-based tapers for
  parameters and sensors with coordinates.
* ``regularization = (m_prior, beta)``: Tikhonov EKI (TEKI; Chada, Stuart & Tong 2020),
  EKI on the augmented map ``u -> (F(p(u)), u)`` with data ``(d, m_prior)`` and noise
  ``(Gamma, I/beta)``: it targets ``1/2 ||(F - d)/sigma||^2 + beta/2 ||m - m_prior||^2``
  and leaves the subspace only through ``m_prior``.  The augmented rows cost no forward calls.

The problem's own ``regularizer`` is not used (EKI regularizes by its subspace and by
stopping early; TEKI by its prior term).  See :func:`minimize_eki` for the stopping rules and
the exact count of forward calls.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch

from physinv.core.checks import check_finite, check_tensor
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.seeding import check_seed
from physinv.invert.problem import InverseProblem
from physinv.invert.result import OptimizationResult

Localization = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EKIResult(OptimizationResult):
    """An :class:`OptimizationResult` (``m`` is the ensemble mean) plus the ensemble itself.

    ``ensemble`` is the final ensemble ``(J, *m.shape)``, ``spread`` its pointwise standard
    deviation ``(*m.shape)`` (``1/(J-1)`` normalization), ``spread_history`` the mean of that
    spread over the entries at every iterate (start first, like the other histories) and
    ``ensemble_size`` is ``J``.
    """

    ensemble: torch.Tensor | None = None
    spread: torch.Tensor | None = None
    spread_history: list[float] = field(default_factory=list)
    ensemble_size: int = 0


# ---------------------------------------------------------------------------------------------
# initial ensembles and tapers


def _correlation_root(n: int, length: float, dtype, device) -> torch.Tensor:
    """Symmetric square root of the ``n x n`` Gaussian correlation ``exp(-(i-j)^2 / (2 l^2))``."""
    i = torch.arange(n, dtype=torch.float64)
    corr = torch.exp(-((i[:, None] - i[None, :]) ** 2) / (2.0 * length**2))
    vals, vecs = torch.linalg.eigh(corr)
    root = (vecs * vals.clamp_min(0.0).sqrt()) @ vecs.T
    root = root / (root**2).sum(1, keepdim=True).sqrt()  # unit variance per entry, exactly
    return root.to(dtype=dtype, device=device)


def gaussian_ensemble(
    mean: torch.Tensor,
    std: float | torch.Tensor,
    size: int,
    seed: int = 0,
    smooth: float | tuple[float, ...] | None = None,
) -> torch.Tensor:
    """Draw ``size`` members ``mean + std * xi`` ``(size, *mean.shape)`` for :func:`minimize_eki`.

    ``xi`` has unit pointwise variance.  ``smooth=None`` makes it white; a correlation length
    ``l`` in index units (grid cells; one number, or one per axis of ``mean``) gives it the
    separable Gaussian correlation ``prod_k exp(-(i_k - j_k)^2 / (2 l_k^2))`` (drawn with the
    square root of each axis' correlation matrix), e.g. a smooth prior for a conductivity on
    a grid.  ``std`` is a number or a tensor broadcastable to ``mean`` (units of ``mean``).
    The draws come from a private ``torch.Generator`` seeded with ``seed`` (float64, CPU) and
    are returned in ``mean``'s dtype and device.
    """
    check_finite("mean", mean)
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    check_finite("std", std)
    if bool((std < 0).any()):
        raise InvalidParameterError("std must be >= 0 (the prior standard deviation)")
    try:
        torch.broadcast_shapes(std.shape, mean.shape)
    except RuntimeError:
        raise ShapeMismatchError(
            f"std shape {tuple(std.shape)} does not broadcast to mean shape {tuple(mean.shape)}") from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise InvalidParameterError(f"ensemble size must be an integer >= 2; got {size!r}")
    gen = torch.Generator().manual_seed(check_seed(seed))
    xi = torch.randn((size, *mean.shape), generator=gen, dtype=torch.float64)
    if smooth is not None:
        lengths = (smooth,) * mean.ndim if isinstance(smooth, (int, float)) else tuple(smooth)
        if len(lengths) != mean.ndim:
            raise ShapeMismatchError(f"smooth needs one correlation length per axis of mean "
                                     f"({mean.ndim}); got {len(lengths)}")
        if not all(math.isfinite(float(length)) and float(length) > 0 for length in lengths):
            raise InvalidParameterError(f"correlation lengths must be finite and > 0; got {smooth}")
        for axis, length in enumerate(lengths):
            root = _correlation_root(mean.shape[axis], float(length), torch.float64, "cpu")
            xi = torch.movedim(torch.movedim(xi, axis + 1, -1) @ root, -1, axis + 1)
    return mean + std * xi.to(dtype=mean.dtype, device=mean.device)


def gaspari_cohn(distance: torch.Tensor, radius: float) -> torch.Tensor:
    """Gaspari & Cohn (1999) fifth-order compactly supported correlation of ``distance``.

    ``radius`` is the half-width ``c`` (units of ``distance``): the taper is 1 at 0, about
    0.21 at ``c`` and exactly 0 from ``2c`` on (a positive-definite function in up to 3-D).
    """
    if not (math.isfinite(radius) and radius > 0):
        raise InvalidParameterError(f"radius must be finite and > 0; got {radius}")
    r = distance.abs() / radius
    inner = -0.25 * r**5 + 0.5 * r**4 + 0.625 * r**3 - 5.0 / 3.0 * r**2 + 1.0
    rs = r.clamp_min(1e-300)
    outer = r**5 / 12.0 - 0.5 * r**4 + 0.625 * r**3 + 5.0 / 3.0 * r**2 - 5.0 * r + 4.0 - 2.0 / (3.0 * rs)
    return torch.where(r <= 1, inner, torch.where(r < 2, outer, torch.zeros_like(r)))


def distance_taper(parameter_points: torch.Tensor, data_points: torch.Tensor, radius: float) -> torch.Tensor:
    """The ``(n_param, n_data)`` Gaspari-Cohn taper of the distances between parameter
    locations ``(n_param, dim)`` (e.g. the grid nodes, flattened in ``m``'s order) and
    measurement locations ``(n_data, dim)`` (flattened in the data's order; repeat the sensor
    coordinates for every experiment), for ``minimize_eki(localization=...)``."""
    check_finite("parameter_points", parameter_points)
    check_finite("data_points", data_points)
    if parameter_points.ndim != 2 or data_points.ndim != 2 or parameter_points.shape[1] != data_points.shape[1]:
        raise ShapeMismatchError(
            f"points must be (n, dim) with the same dim; got {tuple(parameter_points.shape)} and "
            f"{tuple(data_points.shape)}")
    return gaspari_cohn(torch.cdist(parameter_points, data_points.to(parameter_points)), radius)


# ---------------------------------------------------------------------------------------------
# the solver


def _check_ensemble(ensemble0) -> None:
    check_tensor("ensemble0", ensemble0, "of shape (J, *m.shape): one search variable per member")
    if ensemble0.ndim < 2:
        raise ShapeMismatchError(
            f"ensemble0 must have shape (J, *m.shape) with J >= 2 members; got {tuple(ensemble0.shape)}")
    if ensemble0.shape[0] < 2:
        raise InvalidParameterError(
            f"the ensemble needs at least 2 members (covariances from 1 member are zero); got J = "
            f"{ensemble0.shape[0]}")
    if not ensemble0.is_floating_point():
        raise InvalidParameterError(f"ensemble0 must be a floating tensor; got {ensemble0.dtype}")
    check_finite("ensemble0", ensemble0)


def _check_options(iterations, step, inflation, tau) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise InvalidParameterError(f"iterations must be an integer >= 1; got {iterations!r}")
    if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
        raise InvalidParameterError(f"step must be finite and > 0 (1 is the classic EKI step); got {step!r}")
    if inflation is not None and not (math.isfinite(inflation) and inflation >= 1):
        raise InvalidParameterError(f"inflation must be a finite factor >= 1 (1: none); got {inflation!r}")
    if tau is not None and not (math.isfinite(tau) and tau > 0):
        raise InvalidParameterError(f"tau (discrepancy principle) must be finite and > 0; got {tau!r}")


class EnsembleEvaluator:
    """Whitened residuals ``M (F(p(u)) - d)/sigma`` of members, counted in ``problem.calls``."""

    def __init__(self, problem: InverseProblem, batched: bool):
        self.problem, self.batched = problem, batched

    def whiten(self, pred: torch.Tensor) -> torch.Tensor:
        return self.problem._weigh(pred - self.problem.data).reshape(-1)

    def predictions(self, members: torch.Tensor) -> torch.Tensor:
        problem = self.problem
        if self.batched:
            problem.calls.forward += members.shape[0]  # counted before the call, as InverseProblem.predict does
            pred = problem.forward(problem.parametrization(members))
            expected = (members.shape[0], *problem.data.shape)
            if tuple(pred.shape) != expected:
                raise ShapeMismatchError(
                    f"batched=True: the forward model returned shape {tuple(pred.shape)} for a batch of "
                    f"{members.shape[0]} members; expected {expected}. Use batched=False for simulators "
                    "without a batch axis")
        else:
            pred = torch.stack([problem.predict(u) for u in members])
        if not bool(torch.isfinite(pred).all()):
            bad = sorted({int(i) for i in torch.nonzero(~torch.isfinite(pred))[:, 0]})
            raise FloatingPointError(f"the forward model returned NaN/Inf for ensemble member(s) {bad[:10]}")
        return torch.stack([self.whiten(p) for p in pred])


def _taper_matrix(localization: torch.Tensor, problem: InverseProblem, n_param: int, n_used: int) -> torch.Tensor:
    taper = torch.as_tensor(localization, dtype=problem.data.dtype, device=problem.data.device)
    check_finite("localization", taper)
    full = problem.data.numel()
    if taper.shape == (n_param, full) and problem.mask is not None and full != n_used:
        taper = taper[:, problem.mask.reshape(-1)]
    if tuple(taper.shape) != (n_param, n_used):
        raise ShapeMismatchError(
            f"localization taper must be (n_param, n_data) = ({n_param}, {n_used})"
            + (f" or ({n_param}, {full}) before the mask" if full != n_used else "")
            + f"; got {tuple(taper.shape)}")
    return taper


def minimize_eki(
    problem: InverseProblem,
    ensemble0: torch.Tensor,
    iterations: int,
    *,
    step: float = 1.0,
    inflation: float | None = None,
    localization: Localization | None = None,
    regularization: tuple[torch.Tensor, float] | None = None,
    perturb: bool = True,
    tau: float | None = None,
    evaluate_mean: bool = True,
    batched: bool = False,
    seed: int = 0,
    callback: Callable[[int, float, float], None] | None = None,
    progress: bool = False,
) -> EKIResult:
    """Ensemble Kalman inversion of ``problem`` from ``ensemble0`` (module doc for the update).

    Parameters
    ----------
    problem
        Any :class:`InverseProblem`; ``noise_std`` gives ``Gamma``, the mask selects the data.
    ensemble0
        Initial ensemble ``(J, *m.shape)`` of search variables, ``J >= 2`` (e.g. from
        :func:`gaussian_ensemble`); its mean is the start.
    iterations
        Maximum number of Kalman updates (>= 1).
    step
        ``h > 0``: the update uses the noise covariance ``Gamma / h`` (1: classic EKI).
    inflation
        Multiplicative covariance inflation ``rho >= 1`` (None or 1: none).
    localization
        Taper ``(n_param, n_data)`` (``n_data`` the used measurements, or all of them before
        the mask) multiplied elementwise with ``C_ug``, or a callable ``C_ug -> C_ug`` (data
        units, ``(n_param, n_used)``).
    regularization
        ``(m_prior, beta)``: Tikhonov EKI towards ``m_prior`` (``m``'s shape) with weight
        ``beta > 0`` (objective ``1/2||(F-d)/sigma||^2 + beta/2||m - m_prior||^2``).
    perturb
        Perturbed observations ``y_j = d + xi_j`` (default); False uses ``y_j = d`` (the
        deterministic mean update; for a linear ``F`` the mean then follows the Kalman
        formula with the ensemble covariances exactly).
    tau
        Discrepancy principle: stop as soon as the misfit ratio of the reported iterate is
        ``<= tau`` (``converged = True``); None runs all ``iterations``.
    evaluate_mean
        True: the histories are those of the ensemble mean ``u_bar`` itself, at one extra
        forward call per iterate. False: they are measured on the mean of the members'
        predictions ``g_bar`` (no extra call; ``m`` is still ``u_bar``).
    batched
        True: ``problem.forward`` is called once per iteration on the stacked members
        ``p(U)`` ``(J, *m.shape)`` and must return ``(J, *data.shape)``; False: one call per
        member.  Both count ``J`` forward calls.
    seed
        Seed of the private generator of the observation perturbations.
    callback
        ``callback(iteration, objective, misfit_ratio)`` after every update.
    progress
        Show a tqdm bar.

    Returns
    -------
    EKIResult
        ``m`` = final ensemble mean, ``method = "eki"`` (``"teki"`` with regularization),
        ``beta`` (0, or the TEKI weight), histories with ``iterations + 1`` entries (start
        first; objective ``1/2||M(F - d)/sigma||^2`` plus the TEKI term), ``ensemble``,
        ``spread``, ``spread_history``.  Forward calls, exactly: with ``evaluate_mean=True``,
        ``J * k + (k + 1)`` for ``k`` updates (``J`` per update, one per reported mean); with
        ``evaluate_mean=False``, ``J * (k + 1)`` (the final ensemble is evaluated for the
        report).  No adjoint or linearized calls.
    """
    start = time.perf_counter()
    _check_ensemble(ensemble0)
    _check_options(iterations, step, inflation, tau)
    seed = check_seed(seed)
    data = problem.data
    if ensemble0.dtype != data.dtype or ensemble0.device != data.device:
        raise ShapeMismatchError(
            f"ensemble0 ({ensemble0.dtype}, {ensemble0.device}) must have the data's dtype and device "
            f"({data.dtype}, {data.device})")
    num, shape = ensemble0.shape[0], tuple(ensemble0.shape[1:])
    n_param = math.prod(shape)
    lam = 1.0 / float(step)
    evaluator = EnsembleEvaluator(problem, batched)
    sigma_used = torch.broadcast_to(problem.noise_std, data.shape)  # sigma of the used data, flat
    sigma_used = (sigma_used if problem.mask is None else sigma_used[problem.mask]).reshape(-1)
    n_used = sigma_used.numel()

    taper, localize = None, None
    if localization is not None:
        if callable(localization) and not torch.is_tensor(localization):
            localize = localization
        else:
            taper = _taper_matrix(localization, problem, n_param, n_used)

    prior, beta = None, 0.0
    if regularization is not None:
        try:
            prior, beta = regularization
        except (TypeError, ValueError):
            raise InvalidParameterError("regularization must be a pair (m_prior, beta)") from None
        check_finite("regularization prior mean", prior)
        if tuple(prior.shape) != shape:
            raise ShapeMismatchError(f"the TEKI prior mean has shape {tuple(prior.shape)}; m has shape {shape}")
        beta = float(beta)
        if not (math.isfinite(beta) and beta > 0):
            raise InvalidParameterError(f"the TEKI weight beta must be finite and > 0; got {beta}")
        prior = prior.to(dtype=data.dtype, device=data.device).reshape(-1)
    root_beta = math.sqrt(beta)

    gen = torch.Generator().manual_seed(seed)
    result = EKIResult(ensemble0.mean(0), "teki" if prior is not None else "eki", beta,
                       num_data=problem.num_data, calls=problem.calls.copy(), ensemble_size=num)
    result.message = "maximum iterations reached"
    ensemble = ensemble0.detach().reshape(num, n_param).clone()

    def report(residuals: torch.Tensor | None) -> tuple[float, float]:
        mean = ensemble.mean(0)
        if evaluate_mean:
            r = evaluator.whiten(problem.predict(mean.reshape(shape)))
            if not bool(torch.isfinite(r).all()):
                raise FloatingPointError("the forward model returned NaN/Inf at the ensemble mean")
        else:
            r = residuals.mean(0)
        value = 0.5 * float((r**2).sum())
        if prior is not None:
            value += 0.5 * beta * float(((mean - prior) ** 2).sum())
        ratio = problem.misfit_ratio(r)
        result.objective_history.append(value)
        result.misfit_ratio_history.append(ratio)
        result.spread_history.append(float(ensemble.std(0).mean()))
        return value, ratio

    bar = None
    if progress:
        from physinv.invert.progress import iteration_progress
        bar = iteration_progress(f"EKI (J = {num})", iterations)
    with torch.no_grad(), (bar if bar is not None else nullcontext()) as bar_callback:
        residuals = None if evaluate_mean else evaluator.predictions(ensemble.reshape(num, *shape))
        report(residuals)
        for k in range(1, iterations + 1):
            if tau is not None and result.misfit_ratio_history[-1] <= tau:
                result.converged, result.message = True, f"discrepancy principle: misfit ratio <= tau = {tau:g}"
                break
            if residuals is None:
                residuals = evaluator.predictions(ensemble.reshape(num, *shape))
            ensemble = _update(ensemble, residuals, lam, inflation, taper, localize, sigma_used,
                               prior, root_beta, perturb, gen)
            residuals = None if evaluate_mean else evaluator.predictions(ensemble.reshape(num, *shape))
            value, ratio = report(residuals)
            result.iterations = k
            if callback is not None:
                callback(k, value, ratio)
            if bar_callback is not None:
                bar_callback(k, value, ratio)
        else:
            if tau is not None and result.misfit_ratio_history[-1] <= tau:
                result.converged, result.message = True, f"discrepancy principle: misfit ratio <= tau = {tau:g}"

    final = ensemble.reshape(num, *shape)
    result.m = final.mean(0)
    result.ensemble = final
    result.spread = final.std(0)
    result.misfit_ratio = result.misfit_ratio_history[-1]
    result.evaluations = len(result.objective_history)
    result.beta_path = [(beta, result.misfit_ratio, result.iterations)]
    result.calls = problem.calls - result.calls
    result.wall_time = time.perf_counter() - start
    return result


def _update(
    ensemble: torch.Tensor,
    residuals: torch.Tensor,
    lam: float,
    inflation: float | None,
    taper: torch.Tensor | None,
    localize: Callable[[torch.Tensor], torch.Tensor] | None,
    sigma_used: torch.Tensor,
    prior: torch.Tensor | None,
    root_beta: float,
    perturb: bool,
    gen: torch.Generator,
) -> torch.Tensor:
    """One Kalman analysis of the flat ensemble ``(J, n_param)`` given whitened residuals
    ``Gamma^{-1/2}(g_j - d)`` ``(J, n_used)``; rows are members (the transpose of the math)."""
    num = ensemble.shape[0]
    mean_u, mean_r = ensemble.mean(0), residuals.mean(0)
    if inflation is not None and inflation != 1:
        factor = math.sqrt(inflation)
        ensemble = mean_u + factor * (ensemble - mean_u)
        residuals = mean_r + factor * (residuals - mean_r)
    if prior is not None:  # TEKI: augmented residual rows sqrt(beta)(u - m_prior)
        residuals = torch.cat([residuals, root_beta * (ensemble - prior)], dim=1)
        mean_r = residuals.mean(0)
    scale = 1.0 / math.sqrt(num - 1)
    anomalies = (ensemble - ensemble.mean(0)) * scale  # A^T  (J, n_param)
    y = (residuals - mean_r) * scale  # Y^T  (J, n_data)
    innovation = -residuals  # z_j = Gamma^{-1/2}(y_j - g_j)
    if perturb:
        noise = torch.randn(residuals.shape, generator=gen, dtype=torch.float64)
        innovation = innovation + math.sqrt(lam) * noise.to(dtype=residuals.dtype, device=residuals.device)
    p, s, qt = torch.linalg.svd(y, full_matrices=False)  # Y_math = Q S P^T
    zq = innovation @ qt.T  # (J, k): Q^T z_j
    if taper is None and localize is None:
        coefficients = (zq * (s / (s**2 + lam))) @ p.T  # (J, J): P diag(s/(s^2+lam)) Q^T z_j
        return ensemble + coefficients @ anomalies
    # localized: w_j = (Y Y^T + lam I)^{-1} z_j, then (L o C_ug) w_j
    w = (zq / (s**2 + lam)) @ qt + (innovation - zq @ qt) / lam
    cross = anomalies.T @ y  # whitened C_ug (n_param, n_data)
    n_used = sigma_used.numel()
    c_data = cross[:, :n_used]
    if taper is not None:
        c_data = taper * c_data
    else:
        localized = localize(c_data * sigma_used)
        if not torch.is_tensor(localized) or tuple(localized.shape) != tuple(c_data.shape):
            raise ShapeMismatchError(
                f"the localization callable must return a tensor of C_ug's shape {tuple(c_data.shape)}")
        c_data = localized / sigma_used
    cross = torch.cat([c_data, cross[:, n_used:]], dim=1)
    return ensemble + w @ cross.T
