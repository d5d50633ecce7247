"""The DCDM network: a residual CNN with one down/up-sampling level (Kaneda et al. 2023).

It maps a normalized residual ``r / ||r||`` on the grid to a search direction
``q ~ c A^{-1} r`` (the constant c is irrelevant: DCDM line-searches along q).
Fully convolutional, so a model trained on one grid size applies to others
(sizes divisible by 2).  Shapes: ``(batch, *grid)`` in and out; each input is
rescaled to unit RMS first (the output's scale is irrelevant to DCDM).
"""

from __future__ import annotations

import torch
from torch import nn

from physinv.core.errors import InvalidParameterError, ShapeMismatchError


class _ResidualConv(nn.Module):
    def __init__(self, conv, channels: int):
        super().__init__()
        self.conv = conv(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.nn.functional.relu(self.conv(x))


class DCDMNet(nn.Module):
    """Residual CNN ``r -> q`` for 2D or 3D grids.

    Parameters
    ----------
    ndim
        2 or 3 (grid dimension).
    channels
        Feature channels (the paper uses about 16).
    blocks
        Residual 3x3(x3) convolutions per stage; three stages (fine, coarse,
        fine after upsampling), so ``3 * blocks + 2`` convolutions in all.
    """

    def __init__(self, ndim: int = 3, channels: int = 16, blocks: int = 3):
        super().__init__()
        if ndim not in (2, 3):
            raise InvalidParameterError(f"DCDMNet supports 2D and 3D grids; got ndim={ndim}")
        if channels < 1 or blocks < 1:
            raise InvalidParameterError("channels and blocks must be >= 1")
        self.ndim = ndim
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.pool = nn.AvgPool3d(2) if ndim == 3 else nn.AvgPool2d(2)
        self.lift = conv(1, channels, kernel_size=3, padding=1)
        self.fine = nn.Sequential(*[_ResidualConv(conv, channels) for _ in range(blocks)])
        self.coarse = nn.Sequential(*[_ResidualConv(conv, channels) for _ in range(blocks)])
        self.after = nn.Sequential(*[_ResidualConv(conv, channels) for _ in range(blocks)])
        self.project = conv(channels, 1, kernel_size=3, padding=1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        if r.ndim != self.ndim + 1:
            raise ShapeMismatchError(
                f"DCDMNet(ndim={self.ndim}) takes (batch, *grid) with {self.ndim} grid axes; got shape {tuple(r.shape)}"
            )
        if any(n % 2 for n in r.shape[1:]):
            raise ShapeMismatchError(f"grid sizes must be even (one 2x down-sampling level); got {tuple(r.shape[1:])}")
        # the direction is scale-free: feed unit-RMS inputs (a unit-norm residual on
        # 32^3 cells has entries ~ 5e-3, too small for the default initialization)
        dims = tuple(range(1, r.ndim))
        r = r / r.pow(2).mean(dim=dims, keepdim=True).sqrt().clamp_min(torch.finfo(r.dtype).tiny)
        x = self.fine(self.lift(r.unsqueeze(1)))
        coarse = self.coarse(self.pool(x))
        up = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="nearest")
        return self.project(self.after(x + up)).squeeze(1)


def dcdm_loss(matvec, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Unsupervised DCDM loss, mean over the batch of ``|| b - A q (q^T b)/(q^T A q) ||^2``.

    ``b`` (normalized right-hand sides) and ``q = net(b)`` have shape ``(batch, *grid)``.
    It vanishes iff ``q`` is parallel to ``A^{-1} b``.
    """
    dims = tuple(range(1, b.ndim))
    aq = matvec(q)
    scale = (q * b).sum(dims, keepdim=True) / (q * aq).sum(dims, keepdim=True)
    return ((b - scale * aq) ** 2).sum(dims).mean()
