"""The linearized mixture posterior is exact for a linear forward model: weights, means and covariance."""

import torch

from physinv.invert import IdentityParametrization, InverseProblem
from physinv.invert.mixture_posterior import mixture_posterior
from physinv.learn.diffusion import GaussianMixturePrior


def test_linear_model_gives_the_exact_mixture_posterior():
    gen = torch.Generator().manual_seed(0)
    n, d, s, noise = 6, 4, 0.5, 0.3
    op = torch.randn(d, n, dtype=torch.float64, generator=gen)
    means = torch.stack([torch.zeros(n, dtype=torch.float64), torch.full((n,), 1.0, dtype=torch.float64),
                         torch.linspace(-1, 1, n, dtype=torch.float64)])
    prior = GaussianMixturePrior(means, s, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    y = op @ means[1] + noise * torch.randn(d, dtype=torch.float64, generator=gen)
    problem = InverseProblem(lambda m: m @ op.T, y, noise, lambda m: m.new_zeros(()), IdentityParametrization())
    post = mixture_posterior(problem, prior, top=3, batched=True)
    # closed form: evidence N(y; A mu_k, noise^2 I + s^2 A A^T), posterior by the Kalman formula
    cov_y = noise**2 * torch.eye(d, dtype=torch.float64) + s**2 * op @ op.T
    log_ev = torch.stack([torch.distributions.MultivariateNormal(op @ mu, cov_y).log_prob(y) for mu in means])
    exact_w = torch.softmax(torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)) + log_ev, 0)
    order = post.components
    torch.testing.assert_close(post.weights, exact_w[order], atol=1e-12, rtol=1e-10)
    gain = s**2 * op.T @ torch.linalg.inv(cov_y)
    exact_means = torch.stack([mu + gain @ (y - op @ mu) for mu in means])
    torch.testing.assert_close(post.means, exact_means[order], atol=1e-12, rtol=1e-10)
    # draws of the most probable component have the Kalman covariance s^2 I - gain A s^2 (20000 draws: ~2% error)
    single = GaussianMixturePrior(means[:1], s)
    one = mixture_posterior(problem, single, top=1, batched=True)
    draws = one.sample(20000, seed=1)
    exact_cov = s**2 * (torch.eye(n, dtype=torch.float64) - gain @ op)
    assert float((torch.cov(draws.T) - exact_cov).abs().max()) < 0.03 * float(exact_cov.abs().max())
    assert (post.calls.forward, post.calls.linearized) == (3 + 3, 3)  # K screens, then one per Jacobian
