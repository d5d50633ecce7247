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
"""

from __future__ import annotations

import torch

from physinv.core.errors import InvalidParameterError
from physinv.learn.models.deeponet import ACTIVATIONS, Trunk, grid_coordinates, mlp
from physinv.learn.models.fno import neuralop_fno


class NIO(torch.nn.Module):
    """NIO: ``(B, L, n_boundary, C)`` -> ``(B, n, n)``, invariant to the order of the ``L`` inputs.

    Parameters
    ----------
    n
        Output grid (``n x n`` nodes of the unit square).
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
    """

    def __init__(self, n: int, n_boundary: int, channels: int = 2, basis: int = 50, branch_width: int = 128,
                 branch_depth: int = 3, trunk_width: int = 128, trunk_depth: int = 4, width: int = 32,
                 modes: int = 12, layers: int = 2, activation: str = "gelu", subsample: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InvalidParameterError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        self.n = int(n)
        self.basis = int(basis)
        self.subsample = bool(subsample)
        self.branch = mlp([n_boundary * channels] + [branch_width] * branch_depth + [basis], activation)
        self.trunk = Trunk(n, basis, trunk_width, trunk_depth, activation)
        self.lift = mlp([3, width, width], activation)  # psi, shared over l
        self.register_buffer("coords", grid_coordinates(n), persistent=False)
        self.fno = neuralop_fno((modes, modes), in_channels=width, out_channels=1, hidden_channels=width,
                                n_layers=layers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """DeepONet encodings ``phi_l`` of the inputs: ``(B, L, n_boundary, C)`` -> ``(B, L, n * n)``."""
        beta = self.branch(x.flatten(2))  # (B, L, p)
        return beta @ self.trunk().T / self.basis**0.5

    def pool(self, phi: torch.Tensor) -> torch.Tensor:
        """Permutation-invariant lifting: ``(B, L, n * n)`` -> ``(B, width, n, n)``."""
        b, L, m = phi.shape
        coords = self.coords.to(phi.dtype).expand(b, L, m, 2)
        z = self.lift(torch.cat([phi.unsqueeze(-1), coords], dim=-1)).mean(dim=1)  # (B, n*n, width)
        return z.transpose(1, 2).reshape(b, -1, self.n, self.n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.subsample and x.shape[1] > 2:
            keep = int(torch.randint(2, x.shape[1] + 1, ()))
            x = x[:, torch.randperm(x.shape[1])[:keep]]
        return self.fno(self.pool(self.encode(x)))[:, 0]
