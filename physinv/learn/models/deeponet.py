"""DeepONet (Lu et al. 2021) in plain torch, for maps from measurements to fields on a grid.

``G(v)(x) = sum_{k=1..p} beta_k(v) tau_k(x) + b_0``: a *branch* network
``beta`` reads the input data ``v`` (here the flattened measurement matrix),
a *trunk* network ``tau`` reads a coordinate ``x``; the output is evaluated at
the ``n x n`` grid nodes of the unit square.
"""

from __future__ import annotations

import torch

from physinv.core.errors import InvalidParameterError

ACTIVATIONS = {"gelu": torch.nn.GELU, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "silu": torch.nn.SiLU}


def mlp(sizes: list[int], activation: str = "gelu", last_activation: bool = False) -> torch.nn.Sequential:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between layers."""
    if activation not in ACTIVATIONS:
        raise InvalidParameterError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    if len(sizes) < 2 or min(sizes) < 1:
        raise InvalidParameterError(f"an MLP needs at least 2 positive layer sizes; got {sizes}")
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)


def grid_coordinates(n: int) -> torch.Tensor:
    """Node coordinates of the ``n x n`` grid of the unit square, ``(n * n, 2)``, ``ij`` order (x first)."""
    t = torch.linspace(0.0, 1.0, n)
    x, y = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


class Trunk(torch.nn.Module):
    """Trunk network evaluated at the fixed grid nodes: ``() -> (n * n, p)`` basis functions."""

    def __init__(self, n: int, basis: int, width: int, depth: int, activation: str = "gelu"):
        super().__init__()
        self.net = mlp([2] + [width] * depth + [basis], activation, last_activation=True)
        self.register_buffer("coords", grid_coordinates(n), persistent=False)

    def forward(self) -> torch.Tensor:
        return self.net(self.coords)


class DeepONet(torch.nn.Module):
    """DeepONet baseline: ``(B, L, n_boundary, C)`` measurements -> ``(B, n, n)`` field.

    The branch MLP reads the whole flattened measurement matrix
    (``L * n_boundary * C`` numbers), so the model depends on the order of the
    ``L`` inputs (unlike :class:`~physinv.learn.models.nio.NIO`).

    Parameters
    ----------
    n
        Output grid (``n x n`` nodes of the unit square).
    L, n_boundary, channels
        Input shape per sample.
    basis
        Number ``p`` of basis functions (branch outputs = trunk outputs).
    width, branch_depth, trunk_depth
        Hidden width and number of hidden layers of the branch and trunk MLPs.
    """

    def __init__(self, n: int, L: int, n_boundary: int, channels: int = 2, basis: int = 64, width: int = 128,
                 branch_depth: int = 3, trunk_depth: int = 4, activation: str = "gelu"):
        super().__init__()
        self.n = int(n)
        self.input_shape = (int(L), int(n_boundary), int(channels))
        self.branch = mlp([L * n_boundary * channels] + [width] * branch_depth + [basis], activation)
        self.trunk = Trunk(n, basis, width, trunk_depth, activation)
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.basis = int(basis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.branch(x.flatten(1))  # (B, p)
        tau = self.trunk()  # (n*n, p)
        out = beta @ tau.T / self.basis**0.5 + self.bias
        return out.reshape(-1, self.n, self.n)
