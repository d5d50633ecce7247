r"""The posterior under a Gaussian-mixture prior, component by component, linearized: a reference for samplers.

For the prior :math:`\sum_k \pi_k N(\mu_k, s^2 I)`
(:class:`~physinv.learn.diffusion.gaussian.GaussianMixturePrior`) and data
:math:`y = F(m) + e`, :math:`e \sim N(0, \Gamma)`, linearizing :math:`F` about each component's
mean, :math:`F(\mu_k + \delta) \approx F(\mu_k) + J_k \delta`, makes every component's posterior
Gaussian and its evidence explicit.  In whitened data coordinates (:math:`r_k = \Gamma^{-1/2}(y -
F(\mu_k))`, :math:`\tilde J_k = \Gamma^{-1/2} J_k = U S V^T`, thin SVD):

.. math::

    \log w_k &= \log \pi_k - \tfrac12 r_k^T (I + s^2 \tilde J_k \tilde J_k^T)^{-1} r_k
                - \tfrac12 \sum_i \log(1 + s^2 S_i^2) + \text{const}, \\
    m \mid y, k &\sim N\big(\mu_k + s^2 \tilde J_k^T (I + s^2 \tilde J_k \tilde J_k^T)^{-1} r_k,\;
                 s^2 (I - V\,\mathrm{diag}\tfrac{s^2 S^2}{1 + s^2 S^2} V^T)\big),

and the posterior is :math:`\sum_k w_k\, N(\cdot)` with the weights normalized.  It is exact for a
linear :math:`F` and accurate when :math:`F` is close to linear over the component's width
:math:`s` (a small :math:`s`).  All components' means are simulated once (``K`` forward calls)
to screen them by their likelihood at the mean; the ``top`` best get their Jacobian (by
autograd through the problem: one forward and one linearized call each) and the exact weights
above.  Calls: ``K + top`` forward and ``top`` linearized (each a dense Jacobian, i.e. one
reverse-mode pass per datum: ``n_data`` adjoint solves for a PDE), unless the problem supplies its
own ``jacobian`` (then no forward call is made for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from physinv.core.errors import InvalidParameterError
from physinv.invert.eki import EnsembleEvaluator
from physinv.invert.problem import InverseProblem
from physinv.invert.result import SimulatorCalls
from physinv.learn.diffusion.gaussian import GaussianMixturePrior

__all__ = ["MixturePosterior", "mixture_posterior"]


@dataclass
class MixturePosterior:
    """The linearized posterior: ``components`` indices, their ``weights``, and per component the posterior
    ``means`` ``(k, *shape)``, the right singular vectors ``bases`` ``(k, n, r)`` and ``shrink``
    ``1 - 1/sqrt(1 + s^2 S^2)`` ``(k, r)`` that turn white noise into posterior draws; ``std`` is ``s``."""

    components: torch.Tensor
    weights: torch.Tensor
    means: torch.Tensor
    bases: torch.Tensor
    shrink: torch.Tensor
    std: float
    calls: SimulatorCalls

    @property
    def mean(self) -> torch.Tensor:
        """The posterior mean ``sum_k w_k mean_k``."""
        return torch.tensordot(self.weights, self.means, dims=1)

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` draws ``(count, *shape)``: a component by its weight, then its Gaussian."""
        gen = torch.Generator().manual_seed(seed)
        pick = torch.multinomial(self.weights.cpu(), count, replacement=True, generator=gen).to(self.means.device)
        shape = self.means.shape[1:]
        z = torch.randn(count, math.prod(shape), dtype=self.means.dtype, generator=gen).to(self.means.device)
        basis, shrink = self.bases[pick], self.shrink[pick]  # (count, n, r), (count, r)
        coeff = torch.einsum("cnr,cn->cr", basis, z) * shrink
        draws = self.std * (z - torch.einsum("cnr,cr->cn", basis, coeff))
        return self.means[pick] + draws.reshape(count, *shape)


def mixture_posterior(problem: InverseProblem, prior: GaussianMixturePrior, top: int = 8,
                      batched: bool = False) -> MixturePosterior:
    """The linearized mixture posterior of the module docstring (``problem``'s search variable is the prior's field)."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidParameterError(f"top must be an integer >= 1; got {top!r}")
    before = problem.calls.copy()
    evaluator = EnsembleEvaluator(problem, batched)
    means = prior.means.to(problem.data.dtype)
    with torch.no_grad():
        residuals = torch.cat([evaluator.predictions(chunk) for chunk in means.split(64)])  # Gamma^-1/2 (F - y)
    screen = prior.log_weights.to(means.dtype) - 0.5 * (residuals**2).sum(1)
    chosen = torch.topk(screen, min(top, means.shape[0])).indices
    s2 = prior.std**2
    log_w, post_means, bases, shrinks = [], [], [], []
    for k in chosen.tolist():
        jac = problem.weighted_jacobian(means[k])  # (n_used, n)
        u, sv, vt = torch.linalg.svd(jac, full_matrices=False)
        r = -residuals[k]
        ur = u.T @ r
        gain = 1.0 / (1.0 + s2 * sv**2)
        quad = float((ur**2 * gain).sum() + (r**2).sum() - (ur**2).sum())
        log_w.append(float(prior.log_weights[k]) - 0.5 * quad - 0.5 * float(torch.log1p(s2 * sv**2).sum()))
        # s^2 J^T (I + s^2 J J^T)^-1 r = s^2 V S diag(gain) U^T r
        post_means.append(means[k] + (s2 * vt.T @ (sv * gain * ur)).reshape(means.shape[1:]))
        bases.append(vt.T)
        shrinks.append(1.0 - gain.sqrt())
    weights = torch.softmax(torch.tensor(log_w, dtype=means.dtype), 0)
    return MixturePosterior(chosen, weights, torch.stack(post_means), torch.stack(bases), torch.stack(shrinks),
                            prior.std, problem.calls - before)
