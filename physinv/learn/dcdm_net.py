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
from physinv.learn.checkpoint import CheckpointCorruptError, CheckpointMismatchError, read_checkpoint


class _ResidualConv(nn.Module):
    def __init__(self, conv, channels: int, bias: bool):
        super().__init__()
        self.conv = conv(channels, channels, kernel_size=3, padding=1, bias=bias)

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
    bias
        Bias terms in the convolutions.  Off by default: with biases the
        output has a part that does not depend on the residual, the same
        vector at every DCDM iteration, which the A-orthogonalization
        against the previous directions removes, leaving little of use
        (measured: DCDM stalled from its second iteration with biases).
        Without biases the map is positively homogeneous, q(c r) = c q(r).
    """

    def __init__(self, ndim: int = 3, channels: int = 16, blocks: int = 3, bias: bool = False):
        super().__init__()
        if ndim not in (2, 3):
            raise InvalidParameterError(f"DCDMNet supports 2D and 3D grids; got ndim={ndim}")
        if channels < 1 or blocks < 1:
            raise InvalidParameterError("channels and blocks must be >= 1")
        self.ndim = ndim
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.pool = nn.AvgPool3d(2) if ndim == 3 else nn.AvgPool2d(2)
        self.lift = conv(1, channels, kernel_size=3, padding=1, bias=bias)
        self.fine = nn.Sequential(*[_ResidualConv(conv, channels, bias) for _ in range(blocks)])
        self.coarse = nn.Sequential(*[_ResidualConv(conv, channels, bias) for _ in range(blocks)])
        self.after = nn.Sequential(*[_ResidualConv(conv, channels, bias) for _ in range(blocks)])
        self.project = conv(channels, 1, kernel_size=3, padding=1, bias=bias)

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


def network_signature(net: DCDMNet) -> dict:
    """What a checkpoint stores to rebuild ``net`` (and what resuming must match)."""
    return {"ndim": net.ndim, "channels": net.lift.out_channels, "blocks": len(net.fine),
            "bias": net.lift.bias is not None}


def load_dcdm_network(path, ndim: int, device="cpu") -> DCDMNet:
    """The DCDM network of a training checkpoint (:mod:`physinv.learn.checkpoint` format).

    The network's :func:`network_signature` is the checkpoint's user
    signature (``signature["user"]``, as :class:`~physinv.learn.trainer.Trainer`
    writes it).  Raises :class:`~physinv.learn.checkpoint.CheckpointMismatchError`
    when the checkpoint holds a network for another grid dimension than
    ``ndim``, and :class:`~physinv.core.errors.InvalidParameterError` (a
    :class:`~physinv.learn.checkpoint.CheckpointCorruptError` for a damaged
    file or another format) when it is not a DCDM network checkpoint.
    """
    try:
        payload = read_checkpoint(path, map_location=device)
    except CheckpointCorruptError as exc:
        raise CheckpointCorruptError(f"{path} is not a DCDM network checkpoint: {exc}") from exc
    signature = payload["signature"].get("user", {}) if isinstance(payload["signature"], dict) else {}
    needed = {"ndim", "channels", "blocks", "bias"}
    if not needed <= set(signature):
        raise InvalidParameterError(
            f"{path} is not a DCDM network checkpoint (needs a user signature with {sorted(needed)}; "
            f"found {sorted(signature)})"
        )
    if signature["ndim"] != ndim:
        raise CheckpointMismatchError(
            f"checkpoint {path} holds a DCDM network for {signature['ndim']}D grids; this grid is {ndim}D "
            "(train one for this dimension)"
        )
    net = DCDMNet(signature["ndim"], signature["channels"], signature["blocks"], bias=signature["bias"])
    net.load_state_dict(payload["model"])
    return net.to(device).eval()


class NetworkDirection:
    """A trained :class:`DCDMNet` as the direction map of :class:`~physinv.linalg.dcdm.DCDMSolver`.

    ``prepare(operator, theta)`` returns ``r -> q`` for residuals of shape
    ``(..., *operator.state_shape)``: the network runs in its own dtype and
    device (float32 as trained), odd grid axes are zero-padded by one cell at
    their high end and cropped back, and ``q`` is zeroed where the operator
    has no unknowns (solid cells of a fluid operator, Dirichlet nodes of a
    finite-difference one), then cast to the residual's dtype and device.
    """

    def __init__(self, net: DCDMNet):
        self.net = net.eval()

    def prepare(self, operator, theta=None):
        shape = tuple(operator.state_shape)
        if len(shape) != self.net.ndim:
            raise ShapeMismatchError(
                f"the DCDM network works on {self.net.ndim}D grids; the operator's state shape is {shape}"
            )
        param = next(self.net.parameters())
        pad = []
        for n in reversed(shape):
            pad += [0, n % 2]
        crop = (slice(None),) + tuple(slice(0, n) for n in shape)
        free = _unknowns_mask(operator)
        masks: dict[tuple, torch.Tensor] = {}  # the mask in each residual dtype/device, made once

        def direction(r: torch.Tensor) -> torch.Tensor:
            flat = r.reshape((-1,) + shape).to(dtype=param.dtype, device=param.device)
            with torch.no_grad():
                q = self.net(torch.nn.functional.pad(flat, pad))[crop]
            q = q.reshape(r.shape).to(dtype=r.dtype, device=r.device)
            if free is None:
                return q
            key = (r.dtype, r.device)
            if key not in masks:
                masks[key] = free.to(dtype=r.dtype, device=r.device)
            return q.mul_(masks[key])

        return direction


def _unknowns_mask(operator) -> torch.Tensor | None:
    if hasattr(operator, "fluid_mask"):
        return operator.fluid_mask()
    if hasattr(operator, "dirichlet_mask"):
        return ~operator.dirichlet_mask
    return None


def dcdm_loss(matvec, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Unsupervised DCDM loss, mean over the batch of ``|| b - A q (q^T b)/(q^T A q) ||^2``.

    ``b`` (normalized right-hand sides) and ``q = net(b)`` have shape ``(batch, *grid)``.
    It vanishes iff ``q`` is parallel to ``A^{-1} b``.
    """
    dims = tuple(range(1, b.ndim))
    aq = matvec(q)
    scale = (q * b).sum(dims, keepdim=True) / (q * aq).sum(dims, keepdim=True)
    return ((b - scale * aq) ** 2).sum(dims).mean()
