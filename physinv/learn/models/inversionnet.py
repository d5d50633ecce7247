"""InversionNet (Wu & Lin 2019), the OpenFWI baseline: shot gathers -> velocity map, an encoder-decoder CNN.

Written from the paper and the OpenFWI benchmark description (Deng et al. 2022).  The input is a batch of
shot gathers ``(B, n_shots, n_receivers, nt)`` (the layout of physinv's seismic data sets); it is
transposed to OpenFWI's ``(B, n_shots, nt, n_receivers)`` image -- the shots are the input channels, time
the first image axis, receivers the second.  Every block is convolution + BatchNorm + LeakyReLU(0.2).
Channel sizes ``32, 64, 128, 256, 512`` times ``width``; at the published size (input ``(5, 1000, 70)``,
output 70 x 70) the shapes are:

encoder
    1. ``(7 x 1)`` conv, stride ``(2, 1)`` along time: ``5 -> 32`` channels, ``1000 x 70 -> 500 x 70``;
    2. three stages of a ``(3 x 1)`` conv with stride ``(2, 1)`` and a ``(3 x 1)`` conv with stride 1:
       ``32 -> 64 -> 64 -> 128`` channels, time ``500 -> 250 -> 125 -> 63``;
    3. three stages of a ``3 x 3`` conv with stride 2 and a ``3 x 3`` conv with stride 1:
       ``128 -> 128 -> 256 -> 256`` channels, ``63 x 70 -> 32 x 35 -> 16 x 18 -> 8 x 9``;
    4. a *global* convolution, kernel = the whole remaining ``8 x 9`` image, to the ``512``-channel code
       at ``1 x 1``;
decoder
    5. ``5 x 5`` transposed conv: ``1 x 1 -> 5 x 5``, then a ``3 x 3`` conv (512 channels);
    6. four stages of a ``4 x 4`` transposed conv with stride 2 (size doubles) and a ``3 x 3`` conv:
       ``5 -> 10 -> 20 -> 40 -> 80``, channels ``512 -> 256 -> 128 -> 64 -> 32``;
    7. centred crop ``80 x 80 -> 70 x 70``; a ``3 x 3`` conv to one channel with BatchNorm and ``tanh``:
       the output is in ``[-1, 1]``, the normalized velocity ``2 (v - vmin) / (vmax - vmin) - 1``
       (:func:`physinv.problems.seismic.metrics.normalize_velocity`).

With ``width=1`` this has 24.4 M parameters (the published count;
``tests/learn/test_inversionnet.py`` checks it).

Other input and output sizes (e.g. the CPU quick run: gathers ``(5, 35, 500)`` -> 35 x 35 maps):

* time strides: the four time-axis stages of the encoder use stride 2 only as long as it brings the
  time axis towards the receiver axis: ``k = clip(round(log2(nt / n_receivers)), 0, 4)`` of them stride
  in time (``round(log2(1000 / 70)) = 4`` and ``round(log2(500 / 35)) = 4``), the rest stride 1
  (:func:`time_strides`), so the image reaching the ``3 x 3`` stages is roughly square;
* code: the kernel of the global convolution is the encoder's output size, computed from the input
  size (:meth:`InversionNet.code_kernel`: ``8 x 9`` for ``(1000, 70)``, ``4 x 5`` for ``(500, 35)``), so
  the code is always ``1 x 1`` -- the model is built for one input size (an
  :class:`~physinv.learn.models.guard.InputGuard` pins it);
* decoder: ``u = clip(ceil(log2(max(nz, nx) / 5)), 1, 4)`` of the four doubling stages are used (the
  first ``u``; ``u = 4`` -> 80 for 70 x 70, ``u = 3`` -> 40 for 35 x 35), then a centred crop to
  ``(nz, nx)`` (non-square outputs are fine); outputs larger than 80 are reached by bilinear
  interpolation of the 80 x 80 features before the last convolution.

OpenFWI training defaults (Deng et al. 2022): AdamW, learning rate 1e-4, weight decay 1e-4, batch 256,
120 epochs, L1 loss on the normalized velocity (InversionNet paper: L1 or L2), inputs log-scaled
``sign(x) log(1 + |x|)`` and normalized to ``[-1, 1]``.
"""

from __future__ import annotations

import math

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["InversionNet", "ConvBlock", "time_strides"]

_DIMS = (32, 64, 128, 256, 512)


class ConvBlock(torch.nn.Sequential):
    """``Conv2d`` (or ``ConvTranspose2d``) + ``BatchNorm2d`` + ``LeakyReLU(0.2)`` (or ``tanh``)."""

    def __init__(self, cin: int, cout: int, kernel=3, stride=1, padding=1, transpose: bool = False,
                 last: str = "leaky"):
        conv = (torch.nn.ConvTranspose2d if transpose else torch.nn.Conv2d)(cin, cout, kernel, stride, padding)
        act = torch.nn.Tanh() if last == "tanh" else torch.nn.LeakyReLU(0.2)
        super().__init__(conv, torch.nn.BatchNorm2d(cout), act)


def time_strides(nt: int, n_receivers: int, stages: int = 4) -> tuple[int, ...]:
    """Strides along time of the ``stages`` time-axis encoder stages: ``k`` 2s then 1s, ``k`` as in the module doc."""
    if nt < 1 or n_receivers < 1:
        raise InvalidParameterError(f"nt and n_receivers must be >= 1; got {nt}, {n_receivers}")
    k = min(max(round(math.log2(nt / n_receivers)), 0), stages)
    return (2,) * k + (1,) * (stages - k)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class InversionNet(torch.nn.Module):
    """InversionNet: shot gathers ``(B, n_shots, n_receivers, nt)`` -> normalized velocity ``(B, nz, nx)`` in [-1, 1].

    Parameters
    ----------
    nz, nx
        Output map (depth x lateral cells); ``nx`` defaults to ``nz``.
    n_shots, n_receivers, nt
        Input gather size per sample (OpenFWI: 5, 70, 1000).
    width
        Channel multiplier: channels ``round(c * width)`` for ``c`` in ``32, 64, 128, 256, 512``
        (``width=1``: the published 24.4 M-parameter network).
    """

    def __init__(self, nz: int = 70, nx: int | None = None, n_shots: int = 5, n_receivers: int = 70,
                 nt: int = 1000, width: float = 1.0):
        super().__init__()
        nx = nz if nx is None else nx
        if min(nz, nx, n_shots, n_receivers, nt) < 1 or not width > 0:
            raise InvalidParameterError(f"need positive sizes and width; got nz={nz}, nx={nx}, n_shots={n_shots}, "
                                        f"n_receivers={n_receivers}, nt={nt}, width={width}")
        self.out_shape = (int(nz), int(nx))
        self.in_shape = (int(n_shots), int(n_receivers), int(nt))
        d1, d2, d3, d4, d5 = (max(1, round(c * width)) for c in _DIMS)
        s = time_strides(nt, n_receivers)
        tk = (3, 0)  # (k x 1) kernels: padding only along time
        self.encoder = torch.nn.Sequential(
            ConvBlock(n_shots, d1, (7, 1), (s[0], 1), tk),
            ConvBlock(d1, d2, (3, 1), (s[1], 1), (1, 0)), ConvBlock(d2, d2, (3, 1), 1, (1, 0)),
            ConvBlock(d2, d2, (3, 1), (s[2], 1), (1, 0)), ConvBlock(d2, d2, (3, 1), 1, (1, 0)),
            ConvBlock(d2, d3, (3, 1), (s[3], 1), (1, 0)), ConvBlock(d3, d3, (3, 1), 1, (1, 0)),
            ConvBlock(d3, d3, 3, 2, 1), ConvBlock(d3, d3),
            ConvBlock(d3, d4, 3, 2, 1), ConvBlock(d4, d4),
            ConvBlock(d4, d4, 3, 2, 1), ConvBlock(d4, d4),
        )
        self.strides = s
        self.code = ConvBlock(d4, d5, self.code_kernel(), 1, 0)  # global conv -> (d5, 1, 1)
        self.n_up = min(max(math.ceil(math.log2(max(nz, nx) / 5)), 1), 4)
        chans = [d5, d4, d3, d2, d1][: self.n_up + 1]
        stages = [ConvBlock(d5, d5, 5, 1, 0, transpose=True), ConvBlock(d5, d5)]
        for a, b in zip(chans[:-1], chans[1:]):
            stages += [ConvBlock(a, b, 4, 2, 1, transpose=True), ConvBlock(b, b)]
        self.decoder = torch.nn.Sequential(*stages)
        self.head = ConvBlock(chans[-1], 1, 3, 1, 1, last="tanh")

    def code_kernel(self) -> tuple[int, int]:
        """Size of the encoder's output image, the kernel of the global convolution (see the module doc)."""
        _, r, t = self.in_shape
        t = _conv_out(t, 7, self.strides[0], 3)
        for st in self.strides[1:]:
            t = _conv_out(t, 3, st, 1)
        for _ in range(3):
            t, r = _conv_out(t, 3, 2, 1), _conv_out(r, 3, 2, 1)
        return t, r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ShapeMismatchError(f"InversionNet expects gathers (B, n_shots, n_receivers, nt) = "
                                     f"(B, {', '.join(map(str, self.in_shape))}); got {tuple(x.shape)}")
        z = self.decoder(self.code(self.encoder(x.transpose(2, 3))))  # (B, c, 5 * 2^u, 5 * 2^u)
        nz, nx = self.out_shape
        size = z.shape[-1]
        if nz > size or nx > size:
            z = torch.nn.functional.interpolate(z, size=(max(nz, size), max(nx, size)), mode="bilinear",
                                                align_corners=False)
        top, left = (z.shape[-2] - nz) // 2, (z.shape[-1] - nx) // 2
        z = z[..., top:top + nz, left:left + nx]
        return self.head(z)[:, 0]
