r"""Posterior sampling with a diffusion prior: DPS (through the simulator's gradient) and EnKG (derivative-free).

Both sample :math:`p(x \mid y) \propto p(y \mid x)\, p(x)` for :math:`y = F(x) + e`, with
:math:`p(x)` any :class:`~physinv.learn.diffusion.prior.DiffusionPrior` (variance-exploding
convention: denoiser :math:`D(x, \sigma) = E[x_0 \mid x_0 + \sigma\varepsilon = x]`) and
:math:`F` the forward model of an :class:`~physinv.invert.problem.InverseProblem` (any
registered simulator; the prior is over the problem's search variable ``m``, mapped by its
parametrization before :math:`F`).  Both run the reverse diffusion over the noise levels
:math:`\sigma_0 = \sigma_{max} > \dots > \sigma_{N-1} = \sigma_{min} > \sigma_N = 0`
(:func:`~physinv.learn.diffusion.sampling.karras_sigmas`) and steer it with the data.

**DPS** (Chung et al., ICLR 2023).  Per sample and level, with
:math:`\hat x_0 = D(x_i, \sigma_i)` and the residual norm (not squared, as in the paper's code)
:math:`\rho(x_i) = \| M (F(\hat x_0) - y)\, \bar s / s \|` (``s`` the noise standard deviation,
:math:`\bar s` its mean: for a scalar ``s`` this is the paper's :math:`\|y - A(\hat x_0)\|`),

.. math::

    x_{i+1} = \mathrm{ancestral}(x_i, \hat x_0, \sigma_i, \sigma_{i+1})
              - \zeta\, (s_{data}^2 + \sigma_i^2)\, \nabla_{x_i} \rho(x_i).

The factor :math:`s_{data}^2 + \sigma_i^2` makes :math:`\zeta` the paper's step: DPS works in
variance-preserving coordinates :math:`x^{vp} = x / \sqrt{1 + \sigma^2}` of data scaled to
unit size (``data_scale`` :math:`s_{data}`), where a step :math:`\zeta \nabla_{x^{vp}}` is
the step above in these coordinates (the paper uses :math:`\zeta \in [0.3, 1]`).  Each level
costs one forward and one adjoint call per sample (the gradient goes through the simulator
and the denoiser).

**EnKG** (Zheng et al. 2024, Ensemble Kalman Diffusion Guidance).  ``J`` particles follow
the probability-flow ODE; on each guided level, ``updates`` times,

.. math::

    \hat x_0^j = \Phi_{\sigma_i \to 0}(x^j), \quad g^j = F(\hat x_0^j), \quad
    c_{jk} = \frac1J \langle \Gamma^{-1}(g^j - y),\, g^k - \bar g \rangle, \quad
    x^j \leftarrow x^j - \frac{w}{\|c\|_F} \sum_k c_{jk} (x^k - \bar x),

with :math:`\Phi` the ODE solved to :math:`\sigma = 0` by
:func:`~physinv.learn.diffusion.sampling.flow_to_data` (:math:`\min(1 + (N - i)/4, 20)` Euler
steps, as in the paper's code; the prior only, no simulator), :math:`\Gamma = \mathrm{diag}(s^2)`
and :math:`w` the guidance scale.  The sum is the ensemble (statistical-linearization)
estimate of :math:`C_{xx} \nabla_x \tfrac12\|\Gamma^{-1/2}(F(\Phi(x)) - y)\|^2`: no
derivative of :math:`F` is needed.  Then an Euler step of the ODE to :math:`\sigma_{i+1}`.
Each update costs ``J`` forward calls; no adjoint calls.

Both return :class:`PosteriorSamples`: the samples, their mean (the estimate ``m``) and
pointwise standard deviation (the posterior spread), and the simulator calls counted
through the problem.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.seeding import check_seed
from physinv.invert.eki import EnsembleEvaluator
from physinv.invert.problem import InverseProblem
from physinv.invert.result import OptimizationResult
from physinv.learn.diffusion.prior import DiffusionPrior, check_prior_input
from physinv.learn.diffusion.sampling import ancestral_step, euler_step, flow_to_data, karras_sigmas

__all__ = ["PosteriorSamples", "sample_dps", "sample_enkg"]


@dataclass
class PosteriorSamples(OptimizationResult):
    """An :class:`OptimizationResult` whose ``m`` is the samples' mean, plus the samples.

    ``samples`` is ``(J, *m.shape)``, ``spread`` their pointwise standard deviation (``1/(J-1)``),
    ``misfit_ratio`` that of the mean; ``misfit_ratio_history`` holds, per guided noise level (every
    level of DPS with ``zeta > 0``; the guided levels of EnKG; none without guidance), the mean
    misfit ratio of the particles' estimates of ``x0`` there (the quantity the guidance reduces),
    and ``calls_history`` the simulator calls (forward + adjoint) spent up to then.
    """

    samples: torch.Tensor | None = None
    spread: torch.Tensor | None = None
    calls_history: list[int] = field(default_factory=list)


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise InvalidParameterError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0; got {value!r}")
    return float(value)


def _start(problem: InverseProblem, prior: DiffusionPrior, count: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """Particles ``sigma_max N(0, I)`` in the data's dtype and device, after checking the prior's shape."""
    if not isinstance(problem, InverseProblem):
        raise InvalidParameterError(f"problem must be a physinv.invert.InverseProblem; got {type(problem).__name__}")
    gen = torch.Generator().manual_seed(check_seed(seed))
    data = problem.data
    x = float(prior.sigma_max) * torch.randn(count, *prior.shape, dtype=data.dtype, generator=gen)
    x = x.to(data.device)
    check_prior_input(prior, x, float(prior.sigma_max))
    return x, gen


class _PriorEvaluator(EnsembleEvaluator):
    """:class:`EnsembleEvaluator` that names the prior when its fields do not fit the forward model."""

    def __init__(self, problem: InverseProblem, batched: bool, prior: DiffusionPrior):
        super().__init__(problem, batched)
        self.prior_shape = tuple(prior.shape)

    def predictions(self, members: torch.Tensor) -> torch.Tensor:
        try:
            return super().predictions(members)
        except ShapeMismatchError as error:
            raise ShapeMismatchError(
                f"the prior's fields of shape {self.prior_shape} do not fit the forward model (a prior trained "
                f"for other fields?): {error}") from error


def _finish(result: PosteriorSamples, problem: InverseProblem, evaluator: EnsembleEvaluator, samples: torch.Tensor,
            before, start: float) -> PosteriorSamples:
    with torch.no_grad():
        result.samples = samples.detach()
        result.m = result.samples.mean(0)
        result.spread = result.samples.std(0) if samples.shape[0] > 1 else torch.zeros_like(result.m)
        r = evaluator.whiten(problem.predict(result.m))
        result.misfit_ratio = problem.misfit_ratio(r)
        result.objective_history.append(0.5 * float((r**2).sum()))
    result.num_data = problem.num_data
    result.evaluations = len(result.misfit_ratio_history)
    result.calls = problem.calls - before
    result.wall_time = time.perf_counter() - start
    return result


def sample_dps(
    problem: InverseProblem,
    prior: DiffusionPrior,
    samples: int = 4,
    steps: int = 200,
    zeta: float = 0.5,
    *,
    data_scale: float = 1.0,
    batched: bool = True,
    seed: int = 0,
    callback: Callable[[int, float, int], None] | None = None,
    progress: bool = False,
) -> PosteriorSamples:
    """Diffusion posterior sampling (module docstring) of ``samples`` draws with ``steps`` levels.

    Parameters
    ----------
    problem
        The forward model, data and noise (its regularizer is not used: the prior regularizes).
    prior
        A diffusion prior over the problem's search variable (``prior.shape == m.shape``).
    samples, steps
        Number of independent draws (>= 1) and of noise levels (>= 1).
    zeta
        The paper's step size (>= 0; 0 samples the prior, with no simulator calls).
    data_scale
        :math:`s_{data}`, the typical amplitude of the prior's fields (field units), which
        makes ``zeta`` the paper's step (module docstring).
    batched
        True: the forward model takes the stacked draws ``(samples, *m.shape)`` in one call
        and returns ``(samples, *data.shape)``; False: one call per draw.  Both count
        ``samples`` forward calls.
    seed
        Seed of the private generator of the start and the ancestral noise.
    callback
        ``callback(level, mean misfit ratio of the x0 estimates, simulator calls so far)``.
    progress
        Show a tqdm bar.

    Returns
    -------
    PosteriorSamples
        ``method = "dps"``.  Simulator calls, exactly: ``samples * steps`` forward and as many
        adjoint calls (``zeta > 0``), plus one forward call for the mean.
    """
    start_time = time.perf_counter()
    _check_count("samples", samples, 1)
    _check_count("steps", steps, 1)
    zeta = _check_positive("zeta", zeta, allow_zero=True)
    data_scale = _check_positive("data_scale", data_scale)
    x, gen = _start(problem, prior, samples, seed)
    before = problem.calls.copy()
    evaluator = _PriorEvaluator(problem, batched, prior)
    sigma_used = torch.broadcast_to(problem.noise_std, problem.data.shape)
    sigma_bar = float((sigma_used if problem.mask is None else sigma_used[problem.mask]).mean())
    levels = karras_sigmas(steps, float(prior.sigma_max), float(prior.sigma_min)).tolist()
    result = PosteriorSamples(torch.zeros(prior.shape), "dps", 0.0)
    for i in tqdm(range(steps), desc=f"DPS ({samples} samples)", unit="level", disable=not progress, leave=False):
        sigma, sigma_next = levels[i], levels[i + 1]
        if zeta == 0:
            with torch.no_grad():
                x = ancestral_step(x, prior.denoise(x, sigma), sigma, sigma_next, gen)
            continue
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            x0 = prior.denoise(x, sigma)
            residuals = evaluator.predictions(x0)  # (samples, n_used), whitened; counts the forward calls
            norms = residuals.norm(dim=1) * sigma_bar
            grad, = torch.autograd.grad(norms.sum(), x)
        problem.calls.adjoint += samples
        with torch.no_grad():
            x = ancestral_step(x.detach(), x0.detach(), sigma, sigma_next, gen) - zeta * (data_scale**2 + sigma**2) * grad
        ratio = float(np.mean([problem.misfit_ratio(r) for r in residuals.detach()]))
        spent = problem.calls - before
        result.misfit_ratio_history.append(ratio)
        result.calls_history.append(spent.forward + spent.adjoint)
        if callback is not None:
            callback(i, ratio, spent.forward + spent.adjoint)
    result.iterations = steps
    return _finish(result, problem, evaluator, x, before, start_time)


def sample_enkg(
    problem: InverseProblem,
    prior: DiffusionPrior,
    ensemble: int = 64,
    steps: int = 50,
    guidance_scale: float = 1.0,
    *,
    updates: int = 1,
    guide_from: float = 0.0,
    ode_steps: int = 20,
    batched: bool = True,
    seed: int = 0,
    callback: Callable[[int, float, int], None] | None = None,
    progress: bool = False,
) -> PosteriorSamples:
    """Ensemble Kalman diffusion guidance (module docstring) with ``ensemble`` particles and ``steps`` levels.

    Parameters
    ----------
    problem, prior, batched, seed, callback, progress
        As in :func:`sample_dps`.
    ensemble
        Number of particles ``J`` (>= 2).
    steps
        Number of noise levels (>= 1).
    guidance_scale
        ``w`` (>= 0; 0: the prior's probability-flow ODE, no simulator calls).
    updates
        Ensemble updates per guided level (>= 1).
    guide_from
        The fraction of the first levels left unguided (0 <= guide_from < 1; the paper's code
        guides all but the first).
    ode_steps
        Upper bound of the Euler steps of the ``x -> x0`` flow (at least 1).

    Returns
    -------
    PosteriorSamples
        ``method = "enkg"``.  Forward calls, exactly: ``J * updates`` per guided level plus one
        for the mean; no adjoint calls.
    """
    start_time = time.perf_counter()
    _check_count("ensemble", ensemble, 2)
    _check_count("steps", steps, 1)
    _check_count("updates", updates, 1)
    _check_count("ode_steps", ode_steps, 1)
    scale = _check_positive("guidance_scale", guidance_scale, allow_zero=True)
    if not (isinstance(guide_from, (int, float)) and 0 <= guide_from < 1):
        raise InvalidParameterError(f"guide_from must be a fraction in [0, 1); got {guide_from!r}")
    x, _ = _start(problem, prior, ensemble, seed)
    before = problem.calls.copy()
    evaluator = _PriorEvaluator(problem, batched, prior)
    noise_std = torch.broadcast_to(problem.noise_std, problem.data.shape)
    inv_sigma = 1.0 / (noise_std if problem.mask is None else noise_std[problem.mask]).reshape(-1)
    levels = karras_sigmas(steps, float(prior.sigma_max), float(prior.sigma_min)).tolist()
    first_guided = math.ceil(guide_from * steps)
    result = PosteriorSamples(torch.zeros(prior.shape), "enkg", 0.0)
    with torch.no_grad():
        for i in tqdm(range(steps), desc=f"EnKG (J = {ensemble})", unit="level", disable=not progress, leave=False):
            sigma, sigma_next = levels[i], levels[i + 1]
            if scale > 0 and i >= first_guided:
                flow_steps = min(1 + (steps - i) // 4, ode_steps)
                for _ in range(updates):
                    x0 = flow_to_data(prior, x, sigma, flow_steps)
                    residuals = evaluator.predictions(x0)  # Gamma^{-1/2}(g - y), (J, n_used)
                    preds = residuals / inv_sigma  # g - y in data units
                    coef = (residuals * inv_sigma) @ (preds - preds.mean(0)).T / ensemble  # c_jk
                    norm = torch.linalg.matrix_norm(coef)
                    if float(norm) > 0:
                        flat = x.reshape(ensemble, -1)
                        x = (flat - scale / norm * coef @ (flat - flat.mean(0))).reshape(x.shape)
                ratio = float(np.mean([problem.misfit_ratio(r) for r in residuals]))
                spent = problem.calls - before
                result.misfit_ratio_history.append(ratio)
                result.calls_history.append(spent.forward + spent.adjoint)
                if callback is not None:
                    callback(i, ratio, spent.forward + spent.adjoint)
            x = euler_step(x, prior.denoise(x, sigma), sigma, sigma_next)
    result.iterations = steps
    return _finish(result, problem, evaluator, x, before, start_time)
