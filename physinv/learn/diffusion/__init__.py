"""Diffusion priors over fields: the denoiser protocol, exact Gaussian priors, sampling, a trained UNet."""

from physinv.learn.diffusion.gaussian import GaussianMixturePrior, StationaryGaussianPrior
from physinv.learn.diffusion.prior import DiffusionPrior, check_prior_input
from physinv.learn.diffusion.sampling import (SAMPLERS, ancestral_step, euler_step, flow_to_data, heun_step, karras_sigmas,
                                              sample_prior)
from physinv.learn.diffusion.statistics import energy_spectrum, spectrum_relative_error, two_point_correlation
from physinv.learn.diffusion.training import PriorConfig, PriorFileError, PriorTraining, load_prior, train_prior
from physinv.learn.diffusion.unet import UNetPrior, ddpm_alphas_cumprod, make_unet

__all__ = [
    "SAMPLERS",
    "DiffusionPrior",
    "GaussianMixturePrior",
    "PriorConfig",
    "PriorFileError",
    "PriorTraining",
    "StationaryGaussianPrior",
    "UNetPrior",
    "ancestral_step",
    "check_prior_input",
    "ddpm_alphas_cumprod",
    "energy_spectrum",
    "euler_step",
    "flow_to_data",
    "heun_step",
    "karras_sigmas",
    "load_prior",
    "make_unet",
    "sample_prior",
    "spectrum_relative_error",
    "train_prior",
    "two_point_correlation",
]
