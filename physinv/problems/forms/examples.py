r"""The registered examples of the UFL form library: ``physinv verify form-...`` runs the ladder on each.

* ``form-nonlinear-diffusion``: :func:`~physinv.problems.forms.diffusion.nonlinear_diffusion`
  with its defaults,

  .. math::

      -\nabla\cdot\big(e^{m(x)} (1 + u^2) \nabla u\big) = 10 x y \ \text{in } (0, 1)^2, \qquad
      u = x \ \text{on the boundary},

  6x6 mesh, P1 ``m``, five sensors (Newton forward);
* ``form-elasticity``: :func:`~physinv.problems.forms.elasticity.linear_elasticity`,
  plane strain on a 2 m x 1 m plate (6x3 squares), DG0 log-modulus, clamped at
  ``x = 0``, body force and end traction, five two-component sensors;
* ``form-advection-diffusion``:
  :func:`~physinv.problems.forms.advection_diffusion.advection_diffusion_reaction`,
  5x5 mesh, P1 source ``m(x)`` switched on as ``g(t) = 1 - e^{-5 t}``,
  Crank-Nicolson, 10 steps of 0.05 s, five sensors at every step.

Each example's linearization point is a smooth field with no zero (the
verification perturbs ``m`` relative to itself).  Registration does not import
DOLFINx; each factory does, when called.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.core.simulator import LinearOperatorPair, SimulatorExample, register_simulator
from physinv.problems.forms.advection_diffusion import advection_diffusion_reaction
from physinv.problems.forms.diffusion import SENSORS, nonlinear_diffusion
from physinv.problems.forms.elasticity import linear_elasticity

__all__ = ["SENSORS", "nonlinear_diffusion", "smooth_log_kappa", "smooth_source", "switch_on"]


def smooth_log_kappa(sim) -> torch.Tensor:
    """``m0 = log(1.5 + 0.5 sin(2 pi x) cos(pi y))`` in the simulator's control space."""
    return sim.interpolate_control(lambda x: np.log(1.5 + 0.5 * np.sin(2 * np.pi * x[0]) * np.cos(np.pi * x[1])))


def smooth_source(sim) -> torch.Tensor:
    """``m0 = 1 + 0.5 sin(2 pi x) sin(pi y)`` (mol/(m^3 s)) in the simulator's control space."""
    return sim.interpolate_control(lambda x: 1 + 0.5 * np.sin(2 * np.pi * x[0]) * np.sin(np.pi * x[1]))


def switch_on(t):
    """``g(t) = 1 - exp(-5 t)``: a source switched on with a 0.2 s time constant (UFL, imported on use)."""
    import ufl

    return 1 - ufl.exp(-5 * t)


def _float64(dtype) -> None:
    if dtype != torch.float64:
        raise InvalidParameterError(f"the DOLFINx form simulators compute in float64; got {dtype}")


def _observation_pair(sim) -> LinearOperatorPair:
    P_t = torch.from_numpy(sim.observation_matrix.toarray())
    return LinearOperatorPair("observation", lambda u: P_t @ u, lambda y: P_t.T @ y,
                              (sim.num_states,), (P_t.shape[0],))


@register_simulator("form-nonlinear-diffusion",
                    "DOLFINx UFL form -div(exp(m)(1+u^2) grad u) = f, Newton, P1 m, point sensors")
def _example(dtype, device) -> SimulatorExample:
    _float64(dtype)
    sim = nonlinear_diffusion()
    return SimulatorExample(sim, smooth_log_kappa(sim).to(device), [_observation_pair(sim)])


@register_simulator("form-elasticity",
                    "DOLFINx UFL form: plane-strain elasticity, E = exp(m), DG0 m, clamped plate, 2D sensors")
def _elasticity_example(dtype, device) -> SimulatorExample:
    _float64(dtype)
    sim = linear_elasticity(cells=3)
    m0 = sim.interpolate_control(lambda x: np.log(1.5 + 0.5 * np.sin(np.pi * x[0]) * np.cos(np.pi * x[1])))
    return SimulatorExample(sim, m0.to(device), [_observation_pair(sim)])


@register_simulator("form-advection-diffusion",
                    "DOLFINx UFL time stepping: du/dt - div(D grad u) + b.grad u + r u = m(x) g(t), "
                    "Crank-Nicolson, adjoint sweep")
def _advection_diffusion_example(dtype, device) -> SimulatorExample:
    _float64(dtype)
    sim = advection_diffusion_reaction(cells=5, n_steps=10, dt=0.05, time_profile=switch_on)
    return SimulatorExample(sim, smooth_source(sim).to(device), [_observation_pair(sim)])
