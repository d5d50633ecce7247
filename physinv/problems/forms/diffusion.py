r"""Nonlinear diffusion with an unknown log-coefficient field, as a :class:`~physinv.fem.FormSimulator`.

Strong form, on a domain :math:`\Omega` (the unit square by default):

.. math::

    -\nabla\cdot\big(e^{m(x)}\, q(u)\, \nabla u\big) = f \ \text{in } \Omega, \qquad
    u = g \ \text{on } \partial\Omega, \qquad q(u) = 1 + u^2 \ \text{(default)},

weak form (``u`` in P1, ``v`` vanishing on the Dirichlet boundary):

.. math::

    F(u, m; v) = \int_\Omega e^{m} q(u)\, \nabla u \cdot \nabla v \, dx
               - \int_\Omega f v \, dx = 0 \quad \forall v.

Units: ``x`` in m, ``u`` in the state's unit (e.g. K for a temperature),
``kappa = e^m q(u)`` in m^2/s (or W/(m K) with ``f`` in W/m^3), ``f`` in
``[u]`` m^2/s per m^2.  The control is the log-coefficient ``m = ln kappa_0``
(dimensionless; ``kappa_0`` in the coefficient's unit), P1 (nodal) or DG0
(per cell); observations are point values of ``u``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from physinv.core.errors import InvalidParameterError
from physinv.fem.form_simulator import FormSimulator

__all__ = ["SENSORS", "nonlinear_diffusion"]

#: Interior sensor points (m) of the unit-square examples.
SENSORS = np.array([[0.3, 0.3], [0.5, 0.6], [0.7, 0.2], [0.25, 0.75], [0.8, 0.8]])


def control_space(msh, control: str):
    """The control space ``"P1"`` (nodal) or ``"DG0"`` (per cell) on ``msh``."""
    from dolfinx import fem

    if control not in ("P1", "DG0"):
        raise InvalidParameterError(f"control must be 'P1' or 'DG0'; got {control!r}")
    return fem.functionspace(msh, ("Lagrange", 1) if control == "P1" else ("DG", 0))


def unit_square(cells: int):
    """A serial ``cells x cells`` unit square of triangles."""
    from dolfinx import mesh
    from mpi4py import MPI

    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
        raise InvalidParameterError(f"cells must be an int >= 1; got {cells!r}")
    return mesh.create_unit_square(MPI.COMM_SELF, int(cells), int(cells))


def nonlinear_diffusion(
    cells: int = 6,
    control: str = "P1",
    sensors: np.ndarray | str = SENSORS,
    *,
    q: Callable[[Any], Any] | None = None,
    source: float | Callable[[Any], Any] | None = None,
    bcs: Sequence | None = None,
    mesh=None,
    **options,
) -> FormSimulator:
    r"""``m -> u(x_i)`` for ``-div(e^m q(u) grad u) = f``, ``u = g`` on the boundary (module docstring).

    Parameters
    ----------
    cells
        Cells per side of the unit square (each square split into two triangles);
        ignored when ``mesh`` is given.
    control
        ``"P1"`` (``m`` nodal) or ``"DG0"`` (``m`` per cell).
    sensors
        ``(n_points, 2)`` sensor coordinates (m), or ``"state"`` to observe the dof vector.
    q
        ``q(u) -> UFL expression``, the dependence of the coefficient on the state
        (dimensionless, positive); default ``1 + u**2``.
    source
        ``f``: a number or ``f(x) -> UFL expression`` of the spatial coordinate ``x``;
        default ``10 x y``.
    bcs
        Dirichlet conditions as for :class:`~physinv.fem.FormSimulator`; default
        ``u = x`` on the whole boundary (``[("boundary", lambda x: x[0])]``).
    mesh
        A serial DOLFINx mesh to use instead of the unit square.
    **options
        Passed to :class:`~physinv.fem.FormSimulator` (``petsc_options``, ``rtol``,
        ``initial_guess``, ``experiments`` is not supported here).

    Returns
    -------
    FormSimulator
        ``forward(m)``: ``(n_points,)`` (or ``(n_u,)`` for ``sensors="state"``).

    Examples
    --------
    >>> import torch
    >>> sim = nonlinear_diffusion(cells=16, control="DG0", q=lambda u: 1 + 0.5 * u**2)
    >>> m = torch.zeros(sim.num_controls, dtype=torch.float64, requires_grad=True)
    >>> sim(m).sum().backward()                     # Newton forward, one adjoint solve
    """
    from physinv.fem.dolfinx import import_dolfinx

    import_dolfinx("the nonlinear diffusion form")
    import ufl
    from dolfinx import fem

    msh = unit_square(cells) if mesh is None else mesh
    V = fem.functionspace(msh, ("Lagrange", 1))
    M = control_space(msh, control)
    x = ufl.SpatialCoordinate(msh)
    q = (lambda u: 1 + u**2) if q is None else q
    f = 10 * x[0] * x[1] if source is None else (source(x) if callable(source) else source)
    if not callable(q):
        raise InvalidParameterError(f"q must be a callable q(u) -> UFL expression (e.g. lambda u: 1 + u**2); got {q!r}")

    def residual(u, m, v):
        return ufl.exp(m) * q(u) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - f * v * ufl.dx

    bcs = [("boundary", lambda x: x[0])] if bcs is None else bcs
    return FormSimulator(V, M, residual, bcs=bcs, observe=sensors, **options)
