"""The simulator protocol and the registry every simulator joins.

A simulator is a :class:`torch.nn.Module` mapping parameters ``m`` to states or
observations, differentiably.  Registering it (with a factory of a tiny
example) subjects it to every generic check in :mod:`physinv.core.verify`:
Taylor test, dot-product test of its linearization and linear operators, and
``torch.autograd.gradcheck``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from physinv.core.registry import SIMULATORS, same_example_registration


class Simulator(torch.nn.Module):
    """Base class: ``forward(m) -> F(m)``, differentiable in ``m``.

    Subclasses set :attr:`parameter_shape` and implement :meth:`forward`;
    :meth:`check_parameters` raises a clear error on inadmissible ``m``.
    """

    parameter_shape: tuple[int, ...] = ()

    def check_parameters(self, m: torch.Tensor) -> None:  # pragma: no cover - default
        """Raise :class:`physinv.core.errors.PhysinvError` if ``m`` is inadmissible."""


@dataclass
class LinearOperatorPair:
    """A linear map and its adjoint, for the dot-product test.

    ``apply(x)`` maps a tensor of ``domain_shape`` to one of ``range_shape``;
    ``adjoint(y)`` maps back.  The test checks <A x, y> = <x, A^T y>.
    """

    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    adjoint: Callable[[torch.Tensor], torch.Tensor]
    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]


@dataclass
class SimulatorExample:
    """A tiny, fully set up instance of a simulator for the generic checks.

    ``m0`` is the point of linearization; ``simulator(m0)`` must be defined.
    ``linear_operators`` lists the simulator's linear operators with adjoints.
    """

    simulator: Simulator
    m0: torch.Tensor
    linear_operators: list[LinearOperatorPair] = field(default_factory=list)


@dataclass(frozen=True)
class SimulatorSpec:
    name: str
    description: str
    make_example: Callable[[torch.dtype, torch.device], SimulatorExample]



def register_simulator(
    name: str, description: str
) -> Callable[[Callable[[torch.dtype, torch.device], SimulatorExample]], Callable]:
    """Decorator registering ``make_example(dtype, device)`` under ``name`` in :data:`physinv.core.registry.SIMULATORS`."""

    def deco(make_example):
        SIMULATORS.add(name, SimulatorSpec(name, description, make_example),
                       same=same_example_registration)
        return make_example

    return deco


def registered_simulators() -> dict[str, SimulatorSpec]:
    """All registered simulators by name (the problem packages are imported on the first call)."""
    return dict(SIMULATORS.items())


def get_simulator_spec(name: str) -> SimulatorSpec:
    return SIMULATORS.get(name)
