"""The UNet of the diffusion prior and the VP (DDPM epsilon) -> VE (denoiser) conversion of UNetPrior."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.diffusion import DiffusionPrior, UNetPrior, ddpm_alphas_cumprod, make_unet, sample_prior

pytest.importorskip("diffusers")


class ExactGaussianEps(torch.nn.Module):
    """The exact E[eps | x_t] of normalized data N(0, v I) in the VP convention, at float timesteps t.

    sigma(t) is the log-linear interpolation of the table sqrt((1 - ab_t) / ab_t) (what UNetPrior
    inverts), ab = 1 / (1 + sigma^2), and for x_t = sqrt(ab) x0 + sqrt(1 - ab) eps with x0 ~ N(0, v):
    E[eps | x_t] = sqrt(1 - ab) x_t / (ab v + 1 - ab).
    """

    def __init__(self, alphas_cumprod, variance):
        super().__init__()
        ab = alphas_cumprod.double()
        self.log_sigmas = 0.5 * torch.log((1 - ab) / ab)
        self.variance = variance

    def forward(self, x_t, t):
        t = t.double()
        lo = t.floor().long().clamp(0, len(self.log_sigmas) - 2)
        frac = t - lo
        log_sigma = (1 - frac) * self.log_sigmas[lo] + frac * self.log_sigmas[lo + 1]
        ab = (1 / (1 + torch.exp(2 * log_sigma))).reshape(-1, 1, 1, 1)
        return torch.sqrt(1 - ab) * x_t / (ab * self.variance + 1 - ab)


def test_circular_padding_makes_the_unet_equivariant_to_periodic_shifts():
    torch.manual_seed(0)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10.5, 600.0])
    errors = {}
    for periodic in (True, False):
        net = make_unet((16, 16), width=8, levels=3, periodic=periodic).eval()
        with torch.no_grad():
            shifted = net(torch.roll(x, (4, -8), (2, 3)), t).sample
            rolled = torch.roll(net(x, t).sample, (4, -8), (2, 3))
        errors[periodic] = float((shifted - rolled).abs().max() / rolled.abs().max())
    # 4 and 8 are multiples of 2**(levels - 1) = 4: circular padding commutes with them up to float32 rounding
    assert errors[True] < 1e-5
    assert errors[False] > 1e-3  # zero padding sees the boundary
    conv = [m for m in make_unet((8, 8), width=8, levels=2).modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.padding_mode == "circular" for m in conv if m.padding != (0, 0))


def test_make_unet_refuses_sizes_it_cannot_pool():
    with pytest.raises(InvalidParameterError, match="divisible by 2\\*\\*\\(levels - 1\\) = 4"):
        make_unet((12, 10), levels=3)
    with pytest.raises(InvalidParameterError, match="multiple of 8"):
        make_unet((8, 8), width=12)
    with pytest.raises(ShapeMismatchError):
        make_unet((8,))


def test_vp_to_ve_conversion_reproduces_the_exact_gaussian_denoiser():
    ab = ddpm_alphas_cumprod()
    mean, std, field_std = 0.3, 2.0, 1.5  # physical data N(0.3, 1.5^2 I), normalized by std 2
    prior = UNetPrior(ExactGaussianEps(ab, (field_std / std) ** 2), ab, mean, std, (8, 8))
    assert isinstance(prior, DiffusionPrior)
    table = std * torch.sqrt((1 - ab.double()) / ab.double())
    assert prior.sigma_min == pytest.approx(float(table[0])) and prior.sigma_max == pytest.approx(float(table[-1]))
    # integer timesteps come back exactly from their own sigma
    t_int = torch.tensor([0, 1, 17, 500, 998, 999])
    assert torch.allclose(prior.timestep(table[t_int] / std), t_int.double(), atol=1e-9)
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for sigma in torch.logspace(math.log10(prior.sigma_min), math.log10(prior.sigma_max), 25, dtype=torch.float64):
        x0 = mean + field_std * torch.randn(3, 8, 8, dtype=torch.float64, generator=gen)
        x = x0 + sigma * torch.randn(3, 8, 8, dtype=torch.float64, generator=gen)
        exact = mean + field_std**2 / (field_std**2 + sigma**2) * (x - mean)
        got = prior.denoise(x, float(sigma))
        worst = max(worst, float(((got - exact).abs() / (1 + exact.abs())).max()))
    assert worst < 1e-6


def test_unet_prior_with_the_exact_network_samples_the_gaussian():
    """End to end through sample_prior: the draws have the data's variance (to the sampling error)."""
    ab = ddpm_alphas_cumprod()
    prior = UNetPrior(ExactGaussianEps(ab, 0.25), ab, -1.0, 2.0, (8, 8))  # N(-1, 1 I)
    draws = sample_prior(prior, 64, steps=40, seed=1)
    assert float(draws.mean()) == pytest.approx(-1.0, abs=0.05)  # 4096 values: std error 0.016
    assert float(draws.var()) == pytest.approx(1.0, rel=0.08)


def test_unet_prior_is_differentiable_multichannel_and_checks_its_input():
    torch.manual_seed(0)
    net = make_unet((2, 8, 8), width=8, levels=2).eval()
    prior = UNetPrior(net, ddpm_alphas_cumprod(), torch.tensor([0.5, -0.5]).reshape(2, 1, 1), 3.0, (2, 8, 8))
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    out = prior.denoise(x, torch.tensor([0.1, 1.0, 30.0], dtype=torch.float64))
    assert out.shape == x.shape and out.dtype == torch.float64
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    with pytest.raises(ShapeMismatchError):
        prior.denoise(torch.randn(3, 8, 8), 1.0)
    with pytest.raises(InvalidParameterError):
        prior.denoise(torch.randn(3, 2, 8, 8), -1.0)
    with pytest.raises(InvalidParameterError):
        UNetPrior(net, ddpm_alphas_cumprod(), 0.0, 0.0, (2, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_unet_prior_on_cuda_denoises_cpu_fields_and_returns_them_on_cpu():
    torch.manual_seed(0)
    net = make_unet((8, 8), width=8, levels=2).eval()
    cpu = UNetPrior(net, ddpm_alphas_cumprod(), 0.5, 2.0, (8, 8))
    x = torch.randn(3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = cpu.denoise(x, 1.0)
        gpu = UNetPrior(net.to("cuda"), ddpm_alphas_cumprod(), 0.5, 2.0, (8, 8))
        out = gpu.denoise(x, 1.0)
    assert out.device.type == "cpu" and out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
