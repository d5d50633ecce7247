r"""A trained diffusion prior: diffusers' ``UNet2DModel`` behind the variance-exploding denoiser protocol.

The network is trained as in DDPM (Ho et al. 2020), in the variance-preserving (VP) convention
on normalized fields :math:`x_0^n = (x_0 - \mu)/s` (``mean`` :math:`\mu`, ``std`` :math:`s` of
the training data, physical units):

.. math::

    x_t = \sqrt{\bar\alpha_t}\, x_0^n + \sqrt{1 - \bar\alpha_t}\,\varepsilon, \qquad
    \varepsilon_\theta(x_t, t) \approx E[\varepsilon \mid x_t],

with :math:`\bar\alpha_t` the ``alphas_cumprod`` of diffusers'
``DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")`` (:func:`ddpm_alphas_cumprod`).
:class:`UNetPrior` turns it into the denoiser :math:`D(x, \sigma) = E[x_0 \mid x_0 + \sigma\varepsilon = x]`
of :mod:`physinv.learn.diffusion.prior` (variance exploding, physical units):

.. math::

    x^n = \frac{x - \mu}{s}, \quad \sigma^n = \frac{\sigma}{s}, \quad
    x_{vp} = \frac{x^n}{\sqrt{1 + (\sigma^n)^2}}, \quad
    t = \text{the timestep with } \sqrt{(1-\bar\alpha_t)/\bar\alpha_t} = \sigma^n,

    D(x, \sigma) = \mu + s\,\big(x^n - \sigma^n\,\varepsilon_\theta(x_{vp}, t)\big),

where :math:`t` is continuous: :math:`\log\sigma^n` is interpolated linearly on the table
:math:`\log\sqrt{(1-\bar\alpha_t)/\bar\alpha_t}`, :math:`t = 0..999` (``UNet2DModel`` embeds float
timesteps).  Outside the table (:math:`\sigma^n` below :math:`\sigma_0 \approx 0.01` or above
:math:`\sigma_{999} \approx 157`) ``t`` is clamped to 0 or 999; ``sigma_min``/``sigma_max`` of the
prior are the table's ends times ``std``, the range a sampler should stay in.

:func:`make_unet` builds the network offline (never from the hub): ``DownBlock2D``/``UpBlock2D``
without attention, and, for periodic fields, circular padding in every convolution that pads
(diffusers has no option for it), which makes the network equivariant to periodic shifts by
multiples of ``2**(levels - 1)`` grid cells.
"""

from __future__ import annotations

import math

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.extras import require
from physinv.learn.diffusion.prior import check_prior_input

__all__ = ["NUM_TRAIN_TIMESTEPS", "UNetPrior", "ddpm_alphas_cumprod", "make_unet", "set_circular_padding",
           "unet_channels"]

#: Number of discrete DDPM timesteps the network is trained on.
NUM_TRAIN_TIMESTEPS = 1000


def _diffusers():
    return require("diffusers", "diffusion", "the UNet diffusion prior")


def ddpm_alphas_cumprod() -> torch.Tensor:
    r""":math:`\bar\alpha_t`, ``t = 0..999`` (float32, as diffusers computes it) of
    ``DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)``
    (betas linear from 1e-4 to 0.02)."""
    sched = _diffusers().DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="linear",
                                        clip_sample=False)
    return sched.alphas_cumprod.clone()


def unet_channels(width: int, levels: int) -> tuple[int, ...]:
    """Channels per resolution level: ``width`` at full resolution, ``2 * width`` below (``(32, 64, 64)``)."""
    return tuple(width * (1 if i == 0 else 2) for i in range(levels))


def set_circular_padding(model: torch.nn.Module) -> int:
    """Give every ``nn.Conv2d`` of ``model`` that pads ``padding_mode="circular"``; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and any(p > 0 for p in _pads(module)):
            module.padding_mode = "circular"
            # nn.Conv2d pads by hand (F.pad) in this mode, in the order (left, right, top, bottom)
            module._reversed_padding_repeated_twice = [p for p in reversed(_pads(module)) for _ in range(2)]
            count += 1
    return count


def _pads(conv: torch.nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        raise InvalidParameterError(f"convolution with padding={conv.padding!r}; circular padding needs integers")
    return tuple(conv.padding)


def _check_int(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidParameterError(f"{name} must be an integer >= {least}; got {value!r}")
    return value


def make_unet(shape: tuple[int, ...], width: int = 32, levels: int = 3, layers_per_block: int = 1,
              periodic: bool = True, attention: bool = False):
    """A small ``diffusers.UNet2DModel`` for fields of ``shape`` ``(H, W)`` or ``(C, H, W)``, built offline.

    Parameters
    ----------
    shape
        One field without the batch axis; ``(H, W)`` is one channel.
    width
        Channels at full resolution (:func:`unet_channels`); a multiple of 8 (group norm of 8 groups).
    levels
        Resolution levels; ``levels - 1`` down-samplings by 2, so ``H`` and ``W`` must be
        divisible by ``2**(levels - 1)``.
    layers_per_block
        Residual blocks per level (down path; the up path has one more, as in diffusers).
    periodic
        Circular padding in every padded convolution (:func:`set_circular_padding`), for fields
        on a periodic grid; False keeps diffusers' zero padding.
    attention
        Self-attention in the middle block (off by default: small and fast on a CPU).

    Raises
    ------
    InvalidParameterError
        Bad sizes (the message says which divisibility is missing).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ShapeMismatchError(f"a UNet prior needs fields of shape (H, W) or (C, H, W); got {shape}")
    _check_int("width", width, 8)
    if width % 8:
        raise InvalidParameterError(f"width must be a multiple of 8 (group norm of 8 groups); got {width}")
    _check_int("levels", levels, 1)
    _check_int("layers_per_block", layers_per_block, 1)
    channels = 1 if len(shape) == 2 else shape[0]
    height, wide = shape[-2:]
    factor = 2 ** (levels - 1)
    if height % factor or wide % factor:
        raise InvalidParameterError(
            f"fields of {height} x {wide} cannot go through {levels} levels: H and W must be divisible by "
            f"2**(levels - 1) = {factor}; use fewer levels or a grid divisible by {factor}")
    model = _diffusers().UNet2DModel(
        sample_size=(height, wide), in_channels=channels, out_channels=channels,
        block_out_channels=unet_channels(width, levels), down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels, layers_per_block=layers_per_block, norm_num_groups=8,
        add_attention=attention, attention_head_dim=8)
    if periodic:
        set_circular_padding(model)
    return model


class UNetPrior:
    r"""A :class:`~physinv.learn.diffusion.prior.DiffusionPrior` from a DDPM epsilon-network (module docstring).

    Parameters
    ----------
    model
        ``model(x_vp, t).sample -> eps`` for ``x_vp`` ``(B, C, H, W)`` and float timesteps ``t``
        ``(B,)`` (a ``UNet2DModel`` or any module with that call; a plain tensor output is accepted too).
    alphas_cumprod
        :math:`\bar\alpha_t`, ``t = 0..T-1`` (:func:`ddpm_alphas_cumprod`), decreasing.
    mean, std
        Normalization of the training fields (physical units): ``mean`` a number or a tensor
        broadcastable to ``shape`` (e.g. per channel ``(C, 1, 1)``), ``std > 0`` a number.
    shape
        The fields' shape ``(H, W)`` or ``(C, H, W)``; ``(H, W)`` gets a channel axis internally.

    Notes
    -----
    :meth:`denoise` is differentiable in ``x``; it runs the network on the network's device and
    in its dtype, and returns ``x``'s device and dtype (a prior trained on CUDA denoises CPU fields).
    """

    name = "unet"

    def __init__(self, model: torch.nn.Module, alphas_cumprod: torch.Tensor, mean, std: float,
                 shape: tuple[int, ...]):
        self.model = model
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) not in (2, 3):
            raise ShapeMismatchError(f"shape must be (H, W) or (C, H, W); got {self.shape}")
        std = float(std)
        if not (math.isfinite(std) and std > 0):
            raise InvalidParameterError(f"std must be finite and > 0; got {std!r}")
        ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
        if ab.numel() < 2 or not bool(((ab > 0) & (ab < 1)).all()) or not bool((ab[1:] < ab[:-1]).all()):
            raise InvalidParameterError("alphas_cumprod must be a decreasing sequence in (0, 1) of length >= 2")
        mean = torch.as_tensor(mean, dtype=torch.float64)
        try:
            torch.broadcast_shapes(mean.shape, self.shape)
        except RuntimeError:
            raise ShapeMismatchError(f"mean of shape {tuple(mean.shape)} does not broadcast to {self.shape}") from None
        if not bool(torch.isfinite(mean).all()):
            raise InvalidParameterError("mean must be finite")
        self.mean, self.std = mean, std
        self.log_sigmas = 0.5 * torch.log((1 - ab) / ab)  # increasing in t
        self.sigma_min = std * float(self.log_sigmas[0].exp())
        self.sigma_max = std * float(self.log_sigmas[-1].exp())

    def timestep(self, sigma_n: torch.Tensor) -> torch.Tensor:
        """Continuous timesteps ``(B,)`` (float64) of normalized noise levels ``sigma_n``.

        ``log sigma_n`` is interpolated linearly on the table ``log sqrt((1 - ab_t) / ab_t)`` and
        clamped to its ends (``t`` in ``[0, T - 1]``).
        """
        table = self.log_sigmas.to(sigma_n.device)
        log_s = sigma_n.double().log().clamp(float(table[0]), float(table[-1]))
        hi = torch.searchsorted(table, log_s).clamp(1, len(table) - 1)
        lo = hi - 1
        frac = (log_s - table[lo]) / (table[hi] - table[lo])
        return lo.double() + frac

    def _dtype(self, x: torch.Tensor) -> torch.dtype:
        for tensor in self.model.parameters():
            return tensor.dtype
        return x.dtype

    def _device(self, x: torch.Tensor) -> torch.device:
        for tensor in self.model.parameters():
            return tensor.device
        return x.device

    def epsilon(self, x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's noise prediction on ``x_vp`` ``(B, C, H, W)`` at float timesteps ``t`` ``(B,)``."""
        out = self.model(x_vp, t)
        return out.sample if hasattr(out, "sample") else out

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r""":math:`D(x, \sigma) = \mu + s\,(x^n - \sigma^n \varepsilon_\theta(x^n / \sqrt{1 + (\sigma^n)^2},
        t(\sigma^n)))` (module docstring); ``x`` ``(B, *shape)``, ``sigma`` a number or ``(B,)``."""
        sigma = check_prior_input(self, x, sigma)
        dtype, device = self._dtype(x), self._device(x)
        mean = self.mean.to(device=device, dtype=dtype)
        xn = (x.to(device=device, dtype=dtype) - mean) / self.std
        if len(self.shape) == 2:
            xn = xn.unsqueeze(1)
        sn = (sigma.double() / self.std).to(device)
        t = self.timestep(sn)
        scale = (1.0 / torch.sqrt(1.0 + sn**2)).to(dtype).reshape(-1, 1, 1, 1)
        eps = self.epsilon(xn * scale, t.to(dtype))
        x0n = xn - sn.to(dtype).reshape(-1, 1, 1, 1) * eps
        if len(self.shape) == 2:
            x0n = x0n.squeeze(1)
        return (mean + self.std * x0n).to(device=x.device, dtype=x.dtype)

    def to(self, device) -> "UNetPrior":
        """Move the network to ``device`` (returns self)."""
        self.model.to(device)
        return self

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
