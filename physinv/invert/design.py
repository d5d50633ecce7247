r"""Inverse design at a budget of simulator calls: gradient descent, CEM and guided diffusion.

An inverse *design* problem asks for a design :math:`x` (a shape, a source, initial positions,
a field ``(*shape)``) whose simulated outcome minimizes an objective,

.. math::

    x^\star = \arg\min_x f(x), \qquad f(x) = J(S(x)),

with :math:`S` a (differentiable) simulator and :math:`J` the objective.  :class:`DesignProblem`
holds ``simulate`` (:math:`S`, batched) and ``objective`` (:math:`J`, one value per design) and
counts every simulator call in a :class:`~physinv.invert.result.SimulatorCalls`: a batch of
``B`` designs evaluated is ``B`` forward calls, a batch back-propagated through the simulator
``B`` adjoint calls as well.  The three methods below share one interface (problem, budget in
simulator calls, seed), spend at most ``budget`` calls (forward + adjoint, each counted as one
simulation) and return a :class:`DesignResult` whose ``history`` holds
``(forward calls, adjoint calls, best value so far)`` after every batch of evaluations, so
:func:`calls_to_reach` measures what each method spent to reach an objective level: the
comparison of "Diffusion Generative Inverse Design" (Vlastelica et al. 2023, arXiv 2309.02040)
and of CinDM (Wu et al., ICLR 2024), whose baselines are back-propagation through the simulator
and the cross-entropy method.

**Gradient descent through the simulator** (:func:`design_gradient`).  From ``B`` starts
:math:`u^{(0)}_b` (in an optional parametrization :math:`x = g(u)`, ``decode``) an optimizer
(Adam or SGD) follows

.. math::

    u^{(k+1)}_b = u^{(k)}_b - \eta\, \mathrm{step}\big(\nabla_u f(g(u^{(k)}_b))\big),

one forward and one adjoint call per start and iteration; the last iterate is evaluated once more
(forward only).  With ``B`` starts and no early stop it makes
:math:`K = \lfloor (\text{budget} - B) / 2B \rfloor` gradient evaluations: ``B (K + 1)`` forward
and ``B K`` adjoint calls.

**Cross-entropy method** (:func:`design_cem`; Rubinstein 1999, the CinDM baseline with
``N = 1000``, ``100`` elites).  A diagonal Gaussian :math:`N(\mu, \mathrm{diag}\,s^2)` over the
design (or over a latent :math:`u` with :math:`x = g(u)`, e.g. the white-noise coordinates of a
prior) is refitted to its best samples: draw :math:`u_1..u_N`, evaluate :math:`f(g(u_i))`, keep
the ``E`` lowest (the elites :math:`\mathcal E`), and with smoothing :math:`\alpha`

.. math::

    \mu \leftarrow \alpha\,\overline{u}_{\mathcal E} + (1 - \alpha)\,\mu, \qquad
    s \leftarrow \max\big(\alpha\,\mathrm{std}(u_{\mathcal E}) + (1 - \alpha)\,s,\; s_{min}\big).

``N`` forward calls a generation, no adjoint: :math:`\lfloor \text{budget}/N \rfloor`
generations, ``N`` times that many forward calls.

**Guided diffusion with particle resampling** (:func:`design_diffusion`; Vlastelica et al.
2023).  A diffusion prior over designs (:class:`~physinv.learn.diffusion.prior.DiffusionPrior`,
denoiser :math:`D(x, \sigma) = E[x_0 \mid x_0 + \sigma\varepsilon = x]`) is sampled by the
reverse process on the levels :math:`\sigma_0 = \sigma_{max} > \dots > \sigma_{T-1} =
\sigma_{min} > \sigma_T = 0` of :func:`~physinv.learn.diffusion.sampling.karras_sigmas`, for
``P`` particles :math:`x^{(0)}_p \sim N(0, \sigma_{max}^2 I)`.  At a *guided* step (the last
``ceil(guided_steps * T)`` steps, where :math:`\hat x_0` is informative) the objective is
evaluated on the denoised estimate and differentiated through the simulator *and* the denoiser:

.. math::

    \hat x_{0,p} = D(x_p, \sigma_i), \qquad v_p = f(\hat x_{0,p}), \qquad
    g_p = \nabla_{x_p} f(D(x_p, \sigma_i))

(``P`` forward and ``P`` adjoint calls).  The prior step (ancestral, or Euler of the
probability-flow ODE) is followed by a normalized guidance step (DPS-like: the direction of the
gradient, a fixed length, so the step does not depend on the objective's units or on how much
the denoiser shrinks the gradient at high noise):

.. math::

    x_p \leftarrow \mathrm{step}(x_p, \hat x_{0,p}, \sigma_i, \sigma_{i+1})
        - \gamma\, \frac{g_p}{\mathrm{rms}(g_p)}, \qquad
    \mathrm{rms}(g) = \|g\|_2 / \sqrt{n},

so :math:`\gamma` (``guidance_scale``, design units) is the root-mean-square displacement per
design entry of one guided step, the same at every resolution (:math:`n` the entries of a design).
Every ``resample_every`` guided steps the particles are resampled (systematic resampling) with
weights

.. math::

    w_p \propto \exp\!\big(-(v_p - \min_q v_q)/\tau\big), \qquad
    \tau = \text{temperature} \cdot \mathrm{std}_q(v_q) \ \text{(relative, default)}
    \ \text{or}\ \tau = \text{temperature} \ \text{(absolute)},

the particle selection of Vlastelica et al.: particles whose denoised design is good are
duplicated, bad ones dropped; the ancestral step's fresh noise makes duplicates diverge (with the
deterministic Euler step they stay identical; use the ancestral rule with resampling).  With the
relative temperature and roughly Gaussian values the effective sample size after weighting is
about :math:`P\,e^{-1/\text{temperature}^2}` (``temperature = 1``: 37 %, ``0.5``: 2 %): lower is
greedier.  ``guidance_scale = 0`` gives the derivative-free sampler (resampling alone, ``P``
forward calls per resampling, no adjoint).  The final designs :math:`x^{(T)}_p` are evaluated
(``P`` forward calls) and the best is returned.  :func:`diffusion_design_calls` gives the exact
count of a full run; when the budget cannot pay for a guided step (plus the final evaluation) the
remaining steps run unguided (prior only, no simulator calls).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from physinv.core.checks import check_finite, check_tensor
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.seeding import check_seed
from physinv.invert.result import SimulatorCalls
from physinv.learn.diffusion.prior import DiffusionPrior, check_prior_input
from physinv.learn.diffusion.sampling import ancestral_step, euler_step, karras_sigmas

__all__ = ["DesignProblem", "DesignResult", "calls_to_reach", "design_cem", "design_diffusion", "design_gradient",
           "diffusion_design_calls"]

#: Optimizers of :func:`design_gradient`.
OPTIMIZERS = ("adam", "sgd")
#: Reverse-diffusion step rules of :func:`design_diffusion`.
DIFFUSION_STEPS = ("ancestral", "euler")

Transform = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------
# the problem and the result


class DesignProblem:
    """Minimize ``objective(simulate(x))`` over designs ``x`` of shape ``shape``, counting simulator calls.

    Parameters
    ----------
    simulate
        Batched simulator: designs ``(B, *shape)`` -> outcomes (any tensor or structure the
        objective reads), differentiable where gradients are asked for.
    objective
        Outcomes -> ``(B,)`` values to minimize (one per design).
    shape
        The shape of one design, e.g. ``(n, n)`` for a field or ``(k,)`` for a parameter vector.

    Notes
    -----
    ``calls`` counts every batch that reached the simulator: ``forward += B`` per batch
    evaluated, and ``adjoint += B`` per batch back-propagated (:meth:`value_and_grad`).
    """

    def __init__(self, simulate: Callable[[torch.Tensor], Any], objective: Callable[[Any], torch.Tensor],
                 shape: tuple[int, ...]):
        if not callable(simulate) or not callable(objective):
            raise InvalidParameterError("simulate and objective must be callables (designs -> outcomes -> values)")
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError:
            raise InvalidParameterError(f"shape must be a tuple of positive integers; got {shape!r}") from None
        if not shape or any(s < 1 for s in shape):
            raise InvalidParameterError(f"shape must be a non-empty tuple of positive integers; got {shape!r}")
        self.simulate, self.objective, self.shape = simulate, objective, shape
        self.calls = SimulatorCalls()

    def __repr__(self) -> str:
        return f"DesignProblem(shape={self.shape}, calls={self.calls})"

    def check_designs(self, designs: torch.Tensor, name: str = "designs") -> None:
        """Raise unless ``designs`` is a finite floating tensor ``(B, *shape)`` with ``B >= 1``."""
        check_tensor(name, designs, f"of shape (B, {', '.join(map(str, self.shape))})")
        if tuple(designs.shape[1:]) != self.shape or designs.ndim != len(self.shape) + 1 or designs.shape[0] < 1:
            raise ShapeMismatchError(
                f"{name} must be a batch (B, {', '.join(map(str, self.shape))}) of designs of shape {self.shape}; "
                f"got {tuple(designs.shape)}")
        if not designs.is_floating_point():
            raise InvalidParameterError(f"{name} must be a floating tensor; got {designs.dtype}")
        check_finite(name, designs)

    def _values(self, designs: torch.Tensor) -> torch.Tensor:
        self.check_designs(designs)
        outcomes = self.simulate(designs)
        self.calls.forward += designs.shape[0]
        values = self.objective(outcomes)
        if not torch.is_tensor(values) or tuple(values.shape) != (designs.shape[0],):
            got = tuple(values.shape) if torch.is_tensor(values) else type(values).__name__
            raise ShapeMismatchError(f"the objective must return one value per design, shape ({designs.shape[0]},); "
                                     f"got {got}")
        if not bool(torch.isfinite(values.detach()).all()):
            bad = torch.nonzero(~torch.isfinite(values.detach())).reshape(-1).tolist()
            raise InvalidParameterError(f"the objective is NaN/Inf for design(s) {bad[:10]} of the batch; "
                                        "it must be finite for every design (bound or reparametrize the design)")
        return values

    def evaluate(self, designs: torch.Tensor, transform: Transform | None = None) -> torch.Tensor:
        """Values ``(B,)`` of ``designs`` ``(B, *shape)`` (or of ``transform(designs)``), no gradient.

        Counts ``B`` forward calls.
        """
        return self._values_designs(designs, transform)[0]

    def _values_designs(self, inputs: torch.Tensor,
                        transform: Transform | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`evaluate`'s values and the designs evaluated (``transform(inputs)``, computed once)."""
        with torch.no_grad():
            x = inputs if transform is None else transform(inputs)
            return self._values(x).detach(), x.detach()

    def value_and_grad(self, designs: torch.Tensor,
                       transform: Transform | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Values ``(B,)`` and their gradients w.r.t. ``designs`` (shape of ``designs``).

        With ``transform`` the values are those of ``transform(designs)`` (a decoder, a denoiser)
        and the gradient goes through it.  Counts ``B`` forward and ``B`` adjoint calls.
        """
        values, grads, _ = self._value_grad_designs(designs, transform)
        return values, grads

    def _value_grad_designs(self, inputs: torch.Tensor, transform: Transform | None):
        check_tensor("designs", inputs)
        check_finite("designs", inputs)
        with torch.enable_grad():
            u = inputs.detach().requires_grad_(True)
            x = u if transform is None else transform(u)
            values = self._values(x)
            if not values.requires_grad:
                raise InvalidParameterError("the objective does not depend differentiably on the design "
                                            "(simulate/objective detach it?); gradient methods need autograd")
            (grads,) = torch.autograd.grad(values.sum(), u)
        self.calls.adjoint += inputs.shape[0]
        if not bool(torch.isfinite(grads).all()):
            raise InvalidParameterError("the gradient of the objective has NaN/Inf entries; the simulator's adjoint "
                                        "must be finite at every design")
        return values.detach(), grads.detach(), x.detach()


@dataclass
class DesignResult:
    """What an inverse-design method found and what it spent.

    ``design`` ``(*shape)`` and ``value`` are the best design ever evaluated and its objective;
    ``designs`` ``(P, *shape)`` and ``values`` ``(P,)`` the final population (the last batch
    evaluated); ``history`` holds ``(forward calls, adjoint calls, best value so far)`` after
    every batch of evaluations (counted from the method's start; ``inf`` while no candidate has
    been evaluated); ``calls`` the simulator calls spent; ``method`` its name; ``iterations``
    the batches/steps run; ``message`` why it stopped; ``info`` method-specific diagnostics;
    ``wall_time`` in seconds.
    """

    design: torch.Tensor
    value: float
    designs: torch.Tensor
    values: torch.Tensor
    method: str
    history: list[tuple[int, int, float]] = field(default_factory=list)
    calls: SimulatorCalls = field(default_factory=SimulatorCalls)
    iterations: int = 0
    message: str = ""
    info: dict = field(default_factory=dict)
    wall_time: float = 0.0

    @property
    def total_calls(self) -> int:
        """Forward plus adjoint calls (each one simulation)."""
        return self.calls.forward + self.calls.adjoint


def calls_to_reach(result: DesignResult, level: float) -> int | None:
    """Simulator calls (forward + adjoint) spent when the best value first was ``<= level``; None if never.

    Read from ``result.history``, so the resolution is one batch of evaluations.
    """
    for forward, adjoint, best in result.history:
        if best <= level:
            return int(forward) + int(adjoint)
    return None


class _Tracker:
    """Budget, best design and history of one run on a :class:`DesignProblem`."""

    def __init__(self, problem: DesignProblem, budget: int, target: float | None, desc: str, progress: bool):
        self.problem, self.budget, self.target = problem, budget, target
        self.start = problem.calls.copy()
        self.best_value, self.best_design = math.inf, None
        self.history: list[tuple[int, int, float]] = []
        self.time = time.perf_counter()
        self.bar = tqdm(total=budget, desc=desc, unit="call", leave=False, mininterval=1.0, dynamic_ncols=True,
                        disable=not progress)

    @property
    def spent_calls(self) -> SimulatorCalls:
        return self.problem.calls - self.start

    @property
    def spent(self) -> int:
        spent = self.spent_calls
        return spent.forward + spent.adjoint

    def affords(self, calls: int) -> bool:
        return self.spent + calls <= self.budget

    def reached(self) -> bool:
        return self.target is not None and self.best_value <= self.target

    def record(self, designs: torch.Tensor | None, values: torch.Tensor | None) -> None:
        """Append to the history after a batch; ``designs=None``: evaluated, but not candidates."""
        if designs is not None:
            i = int(torch.argmin(values))
            if float(values[i]) < self.best_value:
                self.best_value, self.best_design = float(values[i]), designs[i].detach().clone()
        spent = self.spent_calls
        self.history.append((spent.forward, spent.adjoint, self.best_value))
        self.bar.set_postfix(best=f"{self.best_value:.4e}", refresh=False)
        self.bar.update(min(self.spent, self.budget) - self.bar.n)

    def result(self, method: str, designs: torch.Tensor, values: torch.Tensor, iterations: int, message: str,
               info: dict | None = None) -> DesignResult:
        self.bar.close()
        return DesignResult(self.best_design, self.best_value, designs.detach(), values.detach(), method,
                            self.history, self.spent_calls, iterations, message, info or {},
                            time.perf_counter() - self.time)


# ---------------------------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value, minimum: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}{what}; got {value!r}")
    return value


def _check_budget(budget, smallest: int, what: str) -> int:
    _check_int("budget", budget, 1, " (simulator calls, forward + adjoint)")
    if budget < smallest:
        raise InvalidParameterError(f"budget = {budget} simulator calls cannot pay for {what} ({smallest} calls); "
                                    f"give budget >= {smallest}")
    return budget


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InvalidParameterError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    return float(value)


def _check_target(target) -> float | None:
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, (int, float)) or math.isnan(target):
        raise InvalidParameterError(f"target must be a number (stop once the best value is <= target) or None; "
                                    f"got {target!r}")
    return float(target)


def _decoded(decode: Transform | None, u: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return u if decode is None else decode(u)


# ---------------------------------------------------------------------------------------------
# gradient descent


def design_gradient(
    problem: DesignProblem,
    start: torch.Tensor,
    budget: int,
    lr: float,
    optimizer: str = "adam",
    *,
    decode: Transform | None = None,
    optimizer_options: dict | None = None,
    max_iterations: int | None = None,
    target: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> DesignResult:
    """Gradient descent through the simulator from ``B`` starts (module docstring).

    Parameters
    ----------
    problem
        The :class:`DesignProblem`.
    start
        Starts ``(B, *shape)`` (random starts are drawn by the caller), or latent starts
        ``(B, *latent)`` with ``decode``.
    budget
        Simulator calls (forward + adjoint) to spend at most, ``>= B``.
    lr
        Learning rate (> 0; design units per step for Adam, per unit gradient for SGD).
    optimizer
        ``"adam"`` or ``"sgd"`` (:data:`OPTIMIZERS`); ``optimizer_options`` go to the torch
        optimizer (e.g. ``{"momentum": 0.9}``).  Both act per entry, so the starts stay
        independent runs.
    decode
        Optional differentiable map latent ``(B, *latent)`` -> designs ``(B, *shape)``.
    max_iterations
        Cap on gradient evaluations (None: as many as the budget pays).
    target
        Stop as soon as the best value is ``<= target`` (None: spend the budget).
    seed
        Unused by the method itself (deterministic), kept for the shared interface.
    progress
        Show a tqdm bar over the budget.

    Returns
    -------
    DesignResult
        ``method = "gradient-adam"`` or ``"gradient-sgd"``.  Calls without early stop:
        ``K = (budget - B) // (2 B)`` gradient evaluations (capped by ``max_iterations``), then
        one evaluation of the final iterates: ``forward = B (K + 1)``, ``adjoint = B K``.  If
        ``target`` is reached after a gradient evaluation it stops there (no final evaluation).
        The final population is the last iterates evaluated.
    """
    check_tensor("start", start, "of shape (B, *shape): one start per row")
    if start.ndim < 1 or start.shape[0] < 1:
        raise ShapeMismatchError(f"start must be a batch (B, ...) of starts; got {tuple(start.shape)}")
    if not start.is_floating_point():
        raise InvalidParameterError(f"start must be a floating tensor; got {start.dtype}")
    check_finite("start", start)
    problem.check_designs(_decoded(decode, start), "start" if decode is None else "decode(start)")
    count = start.shape[0]
    budget = _check_budget(budget, count, f"evaluating the {count} starts once")
    lr = _check_positive("lr", lr)
    if optimizer not in OPTIMIZERS:
        raise InvalidParameterError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    if max_iterations is not None:
        _check_int("max_iterations", max_iterations, 0)
    target = _check_target(target)
    check_seed(seed)

    u = start.detach().clone().requires_grad_(True)
    options = dict(optimizer_options or {})
    try:
        opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([u], lr=lr, **options)
    except TypeError as err:
        raise InvalidParameterError(f"bad optimizer_options for {optimizer!r}: {err}") from None
    tracker = _Tracker(problem, budget, target, f"gradient ({optimizer}, B = {count})", progress)
    k, message = 0, "budget spent"
    while True:
        can_step = tracker.affords(3 * count) and (max_iterations is None or k < max_iterations)
        if not can_step:
            values, designs = problem._values_designs(u.detach(), decode)
            tracker.record(designs, values)
            if max_iterations is not None and k >= max_iterations:
                message = f"max_iterations = {max_iterations} reached"
            break
        values, grads, designs = problem._value_grad_designs(u.detach(), decode)
        tracker.record(designs, values)
        if tracker.reached():
            message = f"target {target:g} reached"
            break
        opt.zero_grad(set_to_none=False)
        u.grad = grads.to(u.dtype)
        opt.step()
        k += 1
    return tracker.result(f"gradient-{optimizer}", designs, values, k, message)


# ---------------------------------------------------------------------------------------------
# cross-entropy method


def design_cem(
    problem: DesignProblem,
    mean: torch.Tensor,
    std: float | torch.Tensor,
    budget: int,
    population: int = 1000,
    elites: int = 100,
    *,
    smoothing: float = 0.9,
    min_std: float = 0.0,
    decode: Transform | None = None,
    target: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> DesignResult:
    """Cross-entropy method with a diagonal Gaussian (module docstring).

    Parameters
    ----------
    problem
        The :class:`DesignProblem`.
    mean, std
        Initial mean ``(*shape)`` and standard deviation (a number or a tensor broadcastable to
        ``mean``, > 0), in design units; with ``decode`` in latent units (``mean`` ``(*latent)``).
    budget
        Simulator calls to spend at most (``>= population``); forward only.
    population, elites
        ``N`` samples a generation and the ``E`` best kept, ``2 <= E < N`` (CinDM: 1000, 100).
    smoothing
        ``alpha`` in ``(0, 1]``: the weight of the elites' statistics in the update (1: none).
    min_std
        Floor on the standard deviation (>= 0) against premature collapse.
    decode
        Optional map latent ``(N, *latent)`` -> designs ``(N, *shape)`` (e.g. a prior's
        white-noise parametrization), so CEM searches the latent space.
    target
        Stop after the first generation whose best value is ``<= target``.
    seed
        Seed of the private generator of the samples.
    progress
        Show a tqdm bar over the budget.

    Returns
    -------
    DesignResult
        ``method = "cem"``; ``budget // N`` generations (fewer with ``target``), ``N`` forward
        calls each, no adjoint; the final population is the last generation;
        ``info["mean"]``, ``info["std"]`` the final sampling distribution (latent units).
    """
    check_tensor("mean", mean, "(the initial mean of the sampling distribution)")
    if not mean.is_floating_point():
        raise InvalidParameterError(f"mean must be a floating tensor; got {mean.dtype}")
    check_finite("mean", mean)
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    check_finite("std", std_t)
    if bool((std_t <= 0).any()):
        raise InvalidParameterError("std must be > 0 everywhere (the initial sampling spread)")
    try:
        std_t = torch.broadcast_to(std_t, mean.shape).clone()
    except RuntimeError:
        raise ShapeMismatchError(f"std shape {tuple(std_t.shape)} does not broadcast to mean shape "
                                 f"{tuple(mean.shape)}") from None
    problem.check_designs(_decoded(decode, mean[None]), "mean" if decode is None else "decode(mean)")
    _check_int("population", population, 3, " (samples per generation)")
    _check_int("elites", elites, 2, " (the best samples refitted)")
    if elites >= population:
        raise InvalidParameterError(f"elites must be < population (a selection); got elites = {elites}, "
                                    f"population = {population}")
    budget = _check_budget(budget, population, f"one generation of {population} samples")
    if not (isinstance(smoothing, (int, float)) and 0 < smoothing <= 1):
        raise InvalidParameterError(f"smoothing must be in (0, 1] (1: no smoothing); got {smoothing!r}")
    min_std = _check_positive("min_std", min_std, allow_zero=True)
    target = _check_target(target)
    gen = torch.Generator().manual_seed(check_seed(seed))

    mu, s = mean.detach().clone(), std_t
    tracker = _Tracker(problem, budget, target, f"CEM (N = {population}, E = {elites})", progress)
    generations, message = 0, "budget spent"
    while tracker.affords(population):
        noise = torch.randn((population, *mu.shape), generator=gen, dtype=torch.float64)
        u = mu + s * noise.to(dtype=mu.dtype, device=mu.device)
        values, designs = problem._values_designs(u, decode)  # decoded once
        tracker.record(designs, values)
        generations += 1
        elite = u[torch.argsort(values)[:elites]]
        mu = smoothing * elite.mean(0) + (1 - smoothing) * mu
        s = (smoothing * elite.std(0, correction=0) + (1 - smoothing) * s).clamp_min(min_std)
        if tracker.reached():
            message = f"target {target:g} reached"
            break
    return tracker.result("cem", designs, values, generations, message, {"mean": mu, "std": s})


# ---------------------------------------------------------------------------------------------
# guided diffusion with particle resampling


def _guided_schedule(steps: int, guided_steps: float, resample_every: int | None):
    """``(guided, resample)`` flags per step: the last ``ceil(guided_steps * steps)`` steps are guided;
    every ``resample_every``-th guided step (counted from the first) resamples."""
    n_guided = math.ceil(guided_steps * steps - 1e-9)
    first = steps - n_guided
    guided = [i >= first for i in range(steps)]
    resample = [g and bool(resample_every) and (i - first + 1) % resample_every == 0 for i, g in enumerate(guided)]
    return guided, resample


def _check_diffusion_options(particles, steps, guidance_scale, guided_steps, resample_every):
    _check_int("particles", particles, 1)
    _check_int("steps", steps, 1)
    _check_positive("guidance_scale", guidance_scale, allow_zero=True)
    if not (isinstance(guided_steps, (int, float)) and not isinstance(guided_steps, bool) and 0 < guided_steps <= 1):
        raise InvalidParameterError(f"guided_steps must be a fraction in (0, 1] (the last part of the trajectory "
                                    f"that is guided); got {guided_steps!r}")
    if resample_every is not None:
        _check_int("resample_every", resample_every, 1, " (guided steps between resamplings) or None")


def diffusion_design_calls(particles: int, steps: int, guidance_scale: float, resample_every: int | None = None,
                           guided_steps: float = 1.0) -> SimulatorCalls:
    """The simulator calls of a full :func:`design_diffusion` run (a budget that does not cut it short).

    With ``G = ceil(guided_steps * steps)`` guided steps and ``R`` resamplings among them:
    ``guidance_scale > 0``: ``forward = P (G + 1)``, ``adjoint = P G``; ``guidance_scale = 0``:
    ``forward = P (R + 1)``, ``adjoint = 0`` (the ``+ 1`` is the final evaluation).
    """
    _check_diffusion_options(particles, steps, guidance_scale, guided_steps, resample_every)
    guided, resample = _guided_schedule(steps, guided_steps, resample_every)
    if guidance_scale > 0:
        return SimulatorCalls(particles * (sum(guided) + 1), particles * sum(guided))
    return SimulatorCalls(particles * (sum(resample) + 1), 0)


def _systematic_resample(weights: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Indices ``(P,)`` drawn by systematic resampling: one uniform, ``P`` evenly spaced pointers."""
    count = weights.shape[0]
    u0 = float(torch.rand((), generator=gen, dtype=torch.float64))
    pointers = (u0 + torch.arange(count, dtype=torch.float64)) / count
    cumulative = torch.cumsum(weights.double().cpu() / weights.sum().double().cpu(), 0)
    return torch.searchsorted(cumulative, pointers).clamp_max(count - 1).to(weights.device)


def _resampling_weights(values: torch.Tensor, temperature: float, relative: bool) -> torch.Tensor:
    spread = float(values.double().std(correction=0)) if values.numel() > 1 else 0.0
    tau = temperature * spread if relative else temperature
    if tau <= 0 or not math.isfinite(tau):
        return torch.full_like(values, 1.0 / values.numel())
    return torch.softmax(-(values - values.min()) / tau, 0)


def design_diffusion(
    problem: DesignProblem,
    prior: DiffusionPrior,
    budget: int,
    particles: int = 16,
    steps: int = 50,
    guidance_scale: float = 0.0,
    resample_every: int | None = 1,
    temperature: float = 1.0,
    seed: int = 0,
    *,
    guided_steps: float = 1.0,
    relative_temperature: bool = True,
    method: str = "ancestral",
    track_denoised: bool = False,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    target: float | None = None,
    progress: bool = False,
) -> DesignResult:
    """Reverse diffusion over designs, guided by the objective, with particle resampling (module docstring).

    Parameters
    ----------
    problem
        The :class:`DesignProblem`; ``problem.shape`` must be ``prior.shape``.
    prior
        A :class:`~physinv.learn.diffusion.prior.DiffusionPrior` over designs (physical units).
    budget
        Simulator calls to spend at most (``>= particles``, the final evaluation);
        :func:`diffusion_design_calls` gives what a full run costs.  A guided step that the
        budget (less the final evaluation) cannot pay is run unguided.
    particles
        ``P``, the number of trajectories.
    steps
        ``T`` reverse steps on ``karras_sigmas(T, prior.sigma_max, prior.sigma_min)``.
    guidance_scale
        ``gamma >= 0``: RMS displacement per design entry of one guided step (design units);
        0: derivative-free (resampling only).  A useful start is a few percent of the prior's
        pointwise standard deviation, so that ``G gamma`` (``G`` guided steps) is about the
        distance between good and bad designs.
    resample_every
        Resample every this many guided steps (1: every guided step); None: never.
    temperature, relative_temperature
        Resampling weights ``exp(-(v - min v)/tau)``; ``tau = temperature * std(v)`` when
        ``relative_temperature`` (default: scale-free; ESS about ``P exp(-1/temperature^2)``),
        else ``tau = temperature`` in objective units.
    seed
        Seed of the private generator (initial noise, ancestral noise, resampling).
    guided_steps
        Fraction in ``(0, 1]`` of the steps, at the end of the trajectory, that are guided and
        may resample (early on ``x0_hat`` is close to the prior mean and tells little).
    method
        ``"ancestral"`` (stochastic; use with resampling) or ``"euler"`` (probability-flow ODE).
    track_denoised
        Also count the denoised estimates ``x0_hat`` evaluated on the way as candidates for the
        best design (they were simulated, so this is free).  Default False: only the final
        samples are candidates, and the history's best value is ``inf`` until the final
        evaluation.
    dtype, device
        Of the particles; ``dtype`` is float64 by default, whatever ``torch.get_default_dtype()``
        is (a network prior runs in its own dtype and returns this one).
    target
        Stop guiding (the remaining steps run unguided, free) once the best candidate is
        ``<= target``; only matters with ``track_denoised``.
    progress
        Show a tqdm bar over the steps.

    Returns
    -------
    DesignResult
        ``method = "diffusion"`` (``"diffusion-resample"`` with ``guidance_scale = 0``); the final
        population is the ``P`` final samples and their values; ``info`` holds
        ``guided_steps`` (run), ``resamplings`` and ``ess`` (effective sample size fraction of
        each resampling's weights).  Calls of a full run: :func:`diffusion_design_calls`.
    """
    _check_diffusion_options(particles, steps, guidance_scale, guided_steps, resample_every)
    if not isinstance(prior, DiffusionPrior):
        raise InvalidParameterError(f"prior must implement DiffusionPrior (shape, sigma_max, sigma_min, denoise); "
                                    f"got {type(prior).__name__}")
    check_prior_input(prior, torch.zeros((1, *problem.shape), dtype=dtype), prior.sigma_max)
    budget = _check_budget(budget, particles, f"the final evaluation of {particles} particles")
    _check_positive("temperature", temperature)
    if method not in DIFFUSION_STEPS:
        raise InvalidParameterError(f"unknown diffusion step {method!r}; choose one of {DIFFUSION_STEPS}")
    target = _check_target(target)
    gen = torch.Generator().manual_seed(check_seed(seed))

    levels = karras_sigmas(steps, prior.sigma_max, prior.sigma_min).tolist()
    guided, resample = _guided_schedule(steps, guided_steps, resample_every)
    guide = guidance_scale > 0
    entries = math.prod(problem.shape)
    x = levels[0] * torch.randn((particles, *problem.shape), generator=gen, dtype=torch.float64)
    x = x.to(dtype=dtype, device=device)
    tracker = _Tracker(problem, budget, target, f"diffusion design (P = {particles})", False)
    run_guided, ess, message, cut = 0, [], "trajectory finished", None
    bar = tqdm(total=steps, desc=f"diffusion design (P = {particles})", unit="step", leave=False,
               mininterval=1.0, dynamic_ncols=True, disable=not progress)
    for i, (sigma, sigma_next) in enumerate(zip(levels[:-1], levels[1:])):
        evaluate_now = guided[i] and (guide or resample[i]) and not tracker.reached()
        cost = particles * (2 if guide else 1)
        if evaluate_now and not tracker.affords(cost + particles):
            if cut is None:
                cut = i
                message = f"budget spent: guidance stopped at step {i} of {steps}; the rest ran unguided"
            evaluate_now = False

        def denoise(z, s=sigma):
            return prior.denoise(z, s)

        grads = None
        if evaluate_now:
            if guide:
                values, grads, denoised = problem._value_grad_designs(x, denoise)
            else:
                with torch.no_grad():
                    denoised = denoise(x)
                values = problem.evaluate(denoised)
            tracker.record(denoised if track_denoised else None, values)
            run_guided += 1
            if resample[i]:
                weights = _resampling_weights(values, temperature, relative_temperature)
                ess.append(float(1.0 / (weights.double() ** 2).sum()) / particles)
                index = _systematic_resample(weights, gen)
                x, denoised = x[index], denoised[index]
                grads = None if grads is None else grads[index]
        else:
            with torch.no_grad():
                denoised = denoise(x)
        with torch.no_grad():
            if method == "ancestral":
                x = ancestral_step(x, denoised, sigma, sigma_next, gen)
            else:
                x = euler_step(x, denoised, sigma, sigma_next)
            if grads is not None:
                rms = grads.reshape(particles, -1).norm(dim=1) / math.sqrt(entries)
                rms = torch.where(rms > 0, rms, torch.ones_like(rms))  # a zero gradient takes no step
                direction = grads / rms.reshape(-1, *[1] * len(problem.shape))
                x = x - guidance_scale * direction
        bar.update(1)
    bar.close()
    if not bool(torch.isfinite(x).all()):
        raise InvalidParameterError("the reverse diffusion produced NaN/Inf designs (check the prior's denoiser "
                                    "and sigma range)")
    values = problem.evaluate(x)
    tracker.record(x, values)
    name = "diffusion" if guide else "diffusion-resample"
    info = {"guided_steps": run_guided, "resamplings": len(ess), "ess": ess}
    return tracker.result(name, x, values, steps, message, info)
