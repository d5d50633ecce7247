"""Neural Inverse Operator (NIO, Molinaro, Yang, Engquist, Mishra 2023).

A DeepONet encodes each of the ``L`` boundary measurements as a function on
the grid, then an FNO maps the *set* of encoded functions to the coefficient:

1. branch (shared over ``l``): ``beta(v_l) in R^p`` from the ``l``-th input
   pair ``v_l = (g_l, Lambda_a g_l)`` at the ``n_boundary`` nodes, ``(n_boundary, C)``;
   trunk: ``tau(x) in R^p`` at the grid nodes; encoded function
   ``phi_l(x) = beta(v_l) . tau(x) / p``;
2. permutation-invariant lifting (DeepSets): a pointwise network ``psi``
   shared over ``l`` lifts ``(phi_l(x), x, y)`` to ``width`` channels, and the
   lifts are averaged over ``l``:  ``z(x) = (1/L) sum_l psi(phi_l(x), x, y)``;
3. an FNO (``neuralop.models.FNO``, grid coordinates appended) maps ``z`` to
   ``a`` on the ``n x n`` grid.

The mean over ``l`` is the only place where the ``L`` inputs meet, so the
output is invariant to their order (exactly, up to the rounding of the sum;
``tests/learn/test_learn_models.py`` measures it).  The paper's lifting is the
linear special case (``psi`` affine with one weight shared by the ``L``
channels, divided by ``L``); ``psi`` here is a small MLP, which keeps the
invariance and lets the pooling see nonlinear features of each ``phi_l``.
With ``subsample=True`` each training forward pass uses a random subset of
``2..L`` inputs (the paper's training trick; ``torch`` RNG, so seeded runs
and resumed runs repeat it); evaluation always uses all ``L``.

Custom branches: ``NIO(..., branch=module)`` replaces the branch MLP by any
module mapping ``(B, L, *sample)`` to ``(B, L, p)`` (shared over ``l``: it
must treat the ``L`` inputs independently, which keeps the invariance), and
the output grid may be ``nz x nx`` (``n=(nz, nx)``; the trunk and the lifting
read the node coordinates of the ``nz x nx`` grid of the unit square).
:class:`GatherNIO` is the NIO of seismic full-waveform inversion: the ``L``
inputs are the shot gathers ``(n_receivers, nt)`` of one sample, and the
branch is a small CNN (:class:`GatherBranch`) that encodes one gather.
"""

from __future__ import annotations

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.models.deeponet import ACTIVATIONS, Trunk, grid_coordinates, mlp
from physinv.learn.models.fno import neuralop_fno
from physinv.learn.models.inversionnet import ConvBlock, time_strides


def grid_coordinates_2d(nz: int, nx: int) -> torch.Tensor:
    """Node coordinates of the ``nz x nx`` grid of the unit square, ``(nz * nx, 2)``, ``ij`` order (first axis
    first); equal to :func:`~physinv.learn.models.deeponet.grid_coordinates` for ``nz == nx``."""
    if nz == nx:
        return grid_coordinates(nz)
    a, b = torch.meshgrid(torch.linspace(0.0, 1.0, nz), torch.linspace(0.0, 1.0, nx), indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=-1)


class NIO(torch.nn.Module):
    """NIO: ``(B, L, n_boundary, C)`` -> ``(B, n, n)``, invariant to the order of the ``L`` inputs.

    Parameters
    ----------
    n
        Output grid: ``n x n`` nodes of the unit square, or ``(nz, nx)`` for an ``nz x nx`` grid
        (then the output is ``(B, nz, nx)``).
    n_boundary, channels
        Shape of one input pair (the model accepts any ``L``; a
        :class:`~physinv.learn.models.guard.InputGuard` pins it).
    basis
        Number ``p`` of DeepONet basis functions.
    branch_width, branch_depth, trunk_width, trunk_depth
        Branch and trunk MLPs.
    width, modes, layers
        Lifting channels / FNO hidden channels, Fourier modes per axis, Fourier layers.
    subsample
        Random subsets of the inputs during training (see the module doc).
    branch
        Optional custom branch ``(B, L, *sample) -> (B, L, basis)`` replacing the MLP (then
        ``n_boundary``, ``channels``, ``branch_width`` and ``branch_depth`` are not used).
    """

    def __init__(self, n: int | tuple[int, int], n_boundary: int, channels: int = 2, basis: int = 50,
                 branch_width: int = 128, branch_depth: int = 3, trunk_width: int = 128, trunk_depth: int = 4,
                 width: int = 32, modes: int = 12, layers: int = 2, activation: str = "gelu",
                 subsample: bool = False, branch: torch.nn.Module | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InvalidParameterError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        nz, nx = (int(n[0]), int(n[1])) if isinstance(n, (tuple, list)) else (int(n), int(n))
        self.n = nz if nz == nx else (nz, nx)
        self.grid = (nz, nx)
        self.basis = int(basis)
        self.subsample = bool(subsample)
        self.custom_branch = branch is not None
        if branch is None:
            branch = mlp([n_boundary * channels] + [branch_width] * branch_depth + [basis], activation)
        self.branch = branch
        self.trunk = Trunk(nz, basis, trunk_width, trunk_depth, activation)
        if nz != nx:
            self.trunk.coords = grid_coordinates_2d(nz, nx)  # non-persistent buffer: the nz x nx nodes
        self.lift = mlp([3, width, width], activation)  # psi, shared over l
        self.register_buffer("coords", grid_coordinates_2d(nz, nx), persistent=False)
        self.fno = neuralop_fno((modes, modes), in_channels=width, out_channels=1, hidden_channels=width,
                                n_layers=layers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """DeepONet encodings ``phi_l`` of the inputs: ``(B, L, n_boundary, C)`` -> ``(B, L, n * n)``."""
        beta = self.branch(x) if self.custom_branch else self.branch(x.flatten(2))  # (B, L, p)
        return beta @ self.trunk().T / self.basis**0.5

    def pool(self, phi: torch.Tensor) -> torch.Tensor:
        """Permutation-invariant lifting: ``(B, L, n * n)`` -> ``(B, width, n, n)``."""
        b, L, m = phi.shape
        coords = self.coords.to(phi.dtype).expand(b, L, m, 2)
        z = self.lift(torch.cat([phi.unsqueeze(-1), coords], dim=-1)).mean(dim=1)  # (B, n*n, width)
        return z.transpose(1, 2).reshape(b, -1, *self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.subsample and x.shape[1] > 2:
            keep = int(torch.randint(2, x.shape[1] + 1, ()))
            x = x[:, torch.randperm(x.shape[1])[:keep]]
        return self.fno(self.pool(self.encode(x)))[:, 0]


class GatherBranch(torch.nn.Module):
    """CNN encoding ONE shot gather ``(n_receivers, nt)`` to ``basis`` coefficients, applied to each of the ``L``.

    ``(B, L, n_receivers, nt)`` -> ``(B, L, basis)``; the gathers are encoded independently (the ``B * L``
    gathers form one batch of one-channel images ``(nt, n_receivers)``).  Layers, as the InversionNet
    encoder (:mod:`~physinv.learn.models.inversionnet`) at one input channel: a ``(7 x 1)`` conv and three
    ``(3 x 1)`` convs along time (strides from :func:`~physinv.learn.models.inversionnet.time_strides`,
    so the image becomes roughly square), ``down`` ``3 x 3`` convs with stride 2, channels
    ``channels * (1, 2, 2, 4, 4, ...)``, each conv + BatchNorm + LeakyReLU(0.2); adaptive average pooling
    to ``pool x pool`` and a linear layer to ``basis``.  In ``eval()`` mode BatchNorm uses its running
    statistics, so each gather's code depends on that gather only; in training mode the batch statistics
    are taken over all ``B * L`` gathers, which are permutation invariant too.
    """

    def __init__(self, n_receivers: int, nt: int, basis: int, channels: int = 16, down: int = 3, pool: int = 4):
        super().__init__()
        if min(n_receivers, nt, basis, channels, pool) < 1 or down < 0:
            raise InvalidParameterError(f"GatherBranch needs positive sizes; got n_receivers={n_receivers}, nt={nt}, "
                                        f"basis={basis}, channels={channels}, down={down}, pool={pool}")
        self.shape = (int(n_receivers), int(nt))
        s = time_strides(nt, n_receivers)
        c = [channels * 2 ** ((i + 1) // 2) for i in range(down + 1)]  # c, 2c, 2c, 4c, 4c, ...
        layers = [ConvBlock(1, c[0], (7, 1), (s[0], 1), (3, 0))]
        layers += [ConvBlock(c[0], c[0], (3, 1), (st, 1), (1, 0)) for st in s[1:]]
        layers += [ConvBlock(a, b, 3, 2, 1) for a, b in zip(c[:-1], c[1:])]
        self.net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(pool), torch.nn.Flatten(),
                                       torch.nn.Linear(c[-1] * pool * pool, basis))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[2:]) != self.shape:
            raise ShapeMismatchError(f"GatherBranch expects gathers (B, L, n_receivers, nt) = (B, L, {self.shape[0]}, "
                                     f"{self.shape[1]}); got {tuple(x.shape)}")
        b, L = x.shape[:2]
        img = x.reshape(b * L, 1, *self.shape).transpose(2, 3)  # (B*L, 1, nt, n_receivers)
        return self.net(img).reshape(b, L, -1)


class GatherNIO(NIO):
    """NIO for seismic FWI: shot gathers ``(B, n_shots, n_receivers, nt)`` -> velocity ``(B, nz, nx)``.

    The NIO of :class:`NIO` with the branch MLP replaced by :class:`GatherBranch` (one CNN shared over the
    shots): each shot gather is encoded as ``phi_l = beta(gather_l) . tau / sqrt(p)`` on the ``nz x nx``
    grid (``nz != nx`` supported), the encodings are lifted and averaged over the ``L = n_shots`` shots
    (permutation invariant; any number of shots runs), and the FNO maps the pooled features to the map.
    The output is unbounded (no ``tanh``): train it on normalized velocity, e.g. with
    :class:`~physinv.learn.workflow.Standardized`.

    Parameters
    ----------
    nz, nx
        Output grid (``nx`` defaults to ``nz``).
    n_receivers, nt
        Size of one gather.
    basis
        Number ``p`` of DeepONet basis functions (branch outputs).
    channels, down, pool
        :class:`GatherBranch` channels, stride-2 ``3 x 3`` stages and pooled size.
    trunk_width, trunk_depth, width, modes, layers, activation, subsample
        As :class:`NIO` (``modes`` is capped at ``min(nz, nx) // 2``).
    """

    def __init__(self, nz: int, nx: int | None = None, n_receivers: int = 70, nt: int = 1000, basis: int = 50,
                 channels: int = 16, down: int = 3, pool: int = 4, trunk_width: int = 128, trunk_depth: int = 4,
                 width: int = 32, modes: int = 12, layers: int = 2, activation: str = "gelu",
                 subsample: bool = False):
        nx = nz if nx is None else nx
        branch = GatherBranch(n_receivers, nt, basis, channels, down, pool)
        super().__init__((nz, nx), n_receivers, nt, basis=basis, trunk_width=trunk_width, trunk_depth=trunk_depth,
                         width=width, modes=min(modes, max(1, min(nz, nx) // 2)), layers=layers,
                         activation=activation, subsample=subsample, branch=branch)
