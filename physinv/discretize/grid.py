"""Vertex-centred uniform grids on boxes in 2D and 3D."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from physinv.core.errors import InvalidParameterError

AXIS_NAMES = "xyz"


def _sequence(name: str, value, count: str = "") -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidParameterError(
            f"{name} must be a sequence{count} (one entry per axis, 2 or 3 axes); got {value!r}"
        )
    return tuple(value)


def _cell_count(n) -> int:
    """``n`` as an int: integers and integral floats; NaN, 8.5, strings... are refused."""
    try:
        value = float(n)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(n, (bool, str, bytes)) or not value.is_integer():
        raise InvalidParameterError(f"cells must hold integer cell counts (>= 2 per axis); got {n!r}")
    return int(value)


def _length(v, given) -> float:
    try:
        value = float(v)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"lengths must be finite and > 0 (box side lengths, e.g. m); got {given}")
    return value


@dataclass(frozen=True)
class UniformGrid:
    """Uniform grid on ``[0, L_0] x ... x [0, L_{d-1}]`` with ``cells[a]`` cells per axis.

    Nodes sit at ``x_a = i h_a`` for ``i = 0..cells[a]``, ``h_a = L_a / cells[a]``
    (units of the lengths, e.g. m).  Fields on the grid have shape
    ``(..., cells[0] + 1, ..., cells[d-1] + 1)`` in ``ij`` (matrix) order.
    Sides are named ``x0, x1, y0, y1[, z0, z1]`` (``x0``: ``x = 0``).
    ``cells`` must be integers >= 2 (integral floats are accepted) and ``lengths``
    (default all 1) finite and > 0; anything else raises ``InvalidParameterError``.
    """

    cells: tuple[int, ...]
    lengths: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        cells = tuple(_cell_count(n) for n in _sequence("cells", self.cells))
        if len(cells) not in (2, 3):
            raise InvalidParameterError(f"UniformGrid supports 2D and 3D; got {len(cells)} axes")
        if min(cells) < 2:
            raise InvalidParameterError(f"a grid needs at least 2 cells per axis; got cells={cells}")
        if self.lengths is None:
            lengths = (1.0,) * len(cells)
        else:
            raw = _sequence("lengths", self.lengths, f" of {len(cells)} numbers")
            if len(raw) != len(cells):
                raise InvalidParameterError(
                    f"lengths must be a sequence of {len(cells)} numbers, one per axis; got {self.lengths}"
                )
            lengths = tuple(_length(v, self.lengths) for v in raw)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "lengths", lengths)

    @property
    def ndim(self) -> int:
        return len(self.cells)

    @property
    def node_shape(self) -> tuple[int, ...]:
        return tuple(n + 1 for n in self.cells)

    @property
    def num_nodes(self) -> int:
        return math.prod(self.node_shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(length / n for length, n in zip(self.lengths, self.cells))

    @property
    def sides(self) -> tuple[str, ...]:
        return tuple(f"{AXIS_NAMES[a]}{end}" for a in range(self.ndim) for end in (0, 1))

    def axes(self, dtype=torch.float64, device=None) -> list[torch.Tensor]:
        """1D node coordinates per axis."""
        return [
            torch.linspace(0.0, length, n + 1, dtype=dtype, device=device)
            for length, n in zip(self.lengths, self.cells)
        ]

    def coordinates(self, dtype=torch.float64, device=None) -> tuple[torch.Tensor, ...]:
        """Node coordinates, one array of :attr:`node_shape` per axis."""
        return torch.meshgrid(*self.axes(dtype, device), indexing="ij")

    def side_mask(self, side: str, device=None) -> torch.Tensor:
        """Boolean mask of the nodes on ``side`` (e.g. ``"x0"``)."""
        if side not in self.sides:
            raise InvalidParameterError(f"unknown side {side!r}; allowed: {', '.join(self.sides)}")
        axis, end = AXIS_NAMES.index(side[0]), int(side[1])
        mask = torch.zeros(self.node_shape, dtype=torch.bool, device=device)
        index = [slice(None)] * self.ndim
        index[axis] = -1 if end else 0
        mask[tuple(index)] = True
        return mask

    def boundary_mask(self, device=None) -> torch.Tensor:
        mask = torch.zeros(self.node_shape, dtype=torch.bool, device=device)
        for side in self.sides:
            mask |= self.side_mask(side, device)
        return mask

    def half_weights(self, axis: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """1D weights along ``axis``: 1 inside, 1/2 at both end nodes (dual-cell fractions)."""
        w = torch.ones(self.cells[axis] + 1, dtype=dtype, device=device)
        w[0] = w[-1] = 0.5
        return w

    def control_volumes(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Volume of each node's dual cell: ``prod_a h_a`` halved per boundary axis."""
        vol = torch.ones((), dtype=dtype, device=device)
        for a, h in enumerate(self.spacing):
            shape = [1] * self.ndim
            shape[a] = -1
            vol = vol * (h * self.half_weights(a, dtype, device)).reshape(shape)
        return vol.expand(self.node_shape).contiguous()
