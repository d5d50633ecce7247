r"""A nonlinear diffusion problem written in UFL: the registered example of :class:`~physinv.fem.FormSimulator`.

.. math::

    -\nabla\cdot\big(e^{m(x)} (1 + u^2) \nabla u\big) = f \ \text{in } (0, 1)^2, \qquad
    u = x \ \text{on the boundary},

with ``f = 10 x y``, ``u`` in P1, the log-diffusivity ``m`` in P1 (nodal) or
DG0 (per cell), and ``u`` observed at sensor points.  Weak form, as the user
writes it:

.. math::

    F(u, m; v) = \int_\Omega e^{m} (1 + u^2)\, \nabla u \cdot \nabla v \, dx
               - \int_\Omega f v \, dx = 0 \quad \forall v.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.core.simulator import LinearOperatorPair, SimulatorExample, register_simulator
from physinv.fem.form_simulator import FormSimulator

#: Interior sensor points of the registered example.
SENSORS = np.array([[0.3, 0.3], [0.5, 0.6], [0.7, 0.2], [0.25, 0.75], [0.8, 0.8]])


def nonlinear_diffusion(cells: int = 6, control: str = "P1", sensors=SENSORS) -> FormSimulator:
    """The nonlinear diffusion :class:`FormSimulator` on a ``cells x cells`` unit square (serial).

    Parameters
    ----------
    cells
        Cells per side of the unit square (each square split into two triangles).
    control
        ``"P1"`` (``m`` nodal) or ``"DG0"`` (``m`` per cell).
    sensors
        ``(n_points, 2)`` sensor coordinates (m), or ``"state"`` to observe the dof vector.
    """
    from physinv.fem.dolfinx import import_dolfinx

    import_dolfinx("the nonlinear diffusion form example")
    import ufl
    from dolfinx import fem, mesh
    from mpi4py import MPI

    if control not in ("P1", "DG0"):
        raise InvalidParameterError(f"control must be 'P1' or 'DG0'; got {control!r}")
    msh = mesh.create_unit_square(MPI.COMM_SELF, cells, cells)
    V = fem.functionspace(msh, ("Lagrange", 1))
    M = fem.functionspace(msh, ("Lagrange", 1) if control == "P1" else ("DG", 0))
    x = ufl.SpatialCoordinate(msh)

    def residual(u, m, v):
        return ufl.exp(m) * (1 + u**2) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - 10 * x[0] * x[1] * v * ufl.dx

    return FormSimulator(V, M, residual, bcs=[("boundary", lambda x: x[0])], observe=sensors)


def smooth_log_kappa(sim: FormSimulator) -> torch.Tensor:
    """``m0 = log(1.5 + 0.5 sin(2 pi x) cos(pi y))`` in the simulator's control space."""
    return sim.interpolate_control(lambda x: np.log(1.5 + 0.5 * np.sin(2 * np.pi * x[0]) * np.cos(np.pi * x[1])))


@register_simulator("form-nonlinear-diffusion",
                    "DOLFINx UFL form -div(exp(m)(1+u^2) grad u) = f, Newton, P1 m, point sensors")
def _example(dtype, device) -> SimulatorExample:
    if dtype != torch.float64:
        raise InvalidParameterError(f"the DOLFINx form simulator computes in float64; got {dtype}")
    sim = nonlinear_diffusion()
    P = sim.observation_matrix
    P_t = torch.from_numpy(P.toarray())
    pair = LinearOperatorPair("observation", lambda u: P_t @ u, lambda y: P_t.T @ y,
                              (sim.num_states,), (P.shape[0],))
    return SimulatorExample(sim, smooth_log_kappa(sim).to(device), [pair])
