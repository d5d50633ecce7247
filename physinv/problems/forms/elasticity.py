r"""Plane-strain linear elasticity with an unknown Young's modulus field, as a :class:`~physinv.fem.FormSimulator`.

Strong form, on the rectangle :math:`\Omega = (0, L) \times (0, H)` (or a user mesh):

.. math::

    -\nabla\cdot\sigma(u) = f \ \text{in } \Omega, \qquad
    u = 0 \ \text{on } \Gamma_D = \{x = x_{\min}\} \ \text{(clamped)}, \qquad
    \sigma(u)\, n = t_N \ \text{on } \Gamma_N = \{x = x_{\max}\}, \qquad
    \sigma(u)\, n = 0 \ \text{elsewhere},

    \sigma(u) = 2 \mu\, \varepsilon(u) + \lambda\, \mathrm{tr}\,\varepsilon(u)\, I, \qquad
    \varepsilon(u) = \tfrac12 (\nabla u + \nabla u^T),

    \mu = \frac{E}{2 (1 + \nu)}, \qquad \lambda = \frac{E \nu}{(1 + \nu)(1 - 2 \nu)} \ \text{(plane strain)},
    \qquad E = E_{\mathrm{ref}}\, e^{m(x)}.

Weak form (``u`` vector P1, ``v`` vanishing on :math:`\Gamma_D`):

.. math::

    F(u, m; v) = \int_\Omega \sigma(u) : \varepsilon(v) \, dx - \int_\Omega f \cdot v \, dx
               - \int_{\Gamma_N} t_N \cdot v \, ds = 0 \quad \forall v.

Units: ``x`` and ``u`` in m, ``E`` and ``E_ref`` in Pa, ``f`` in N/m^3, ``t_N``
in N/m^2 (Pa); ``nu`` dimensionless.  The control is the log-modulus
``m = ln(E / E_ref)`` (dimensionless), DG0 (per cell) or P1 (nodal); both
displacement components are observed at sensor points.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from physinv.core.errors import InvalidParameterError
from physinv.fem.form_simulator import FormSimulator
from physinv.problems.forms.diffusion import control_space

__all__ = ["ELASTICITY_SENSORS", "lame_parameters", "linear_elasticity"]

#: Sensor points (m) of the default 2 m x 1 m plate, away from the clamped side.
ELASTICITY_SENSORS = np.array([[0.8, 0.25], [1.2, 0.75], [1.6, 0.5], [1.9, 0.1], [1.9, 0.9]])


def lame_parameters(E, nu: float):
    """Plane-strain Lamé parameters ``(mu, lambda)`` of Young's modulus ``E`` (Pa) and Poisson ratio ``nu``."""
    return E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))


def linear_elasticity(
    cells: int = 4,
    control: str = "DG0",
    sensors: np.ndarray | str = ELASTICITY_SENSORS,
    *,
    nu: float = 0.3,
    E_ref: float = 1.0,
    body_force: Sequence[float] = (0.0, -1.0),
    traction: Sequence[float] = (0.0, -0.5),
    length: float = 2.0,
    height: float = 1.0,
    mesh=None,
    **options,
) -> FormSimulator:
    r"""``m -> u(x_i)`` (both components) for plane-strain elasticity with ``E = E_ref e^m`` (module docstring).

    Parameters
    ----------
    cells
        Cells across the height; the ``length x height`` rectangle gets
        ``round(cells * length / height) x cells`` squares of two triangles.
        Ignored when ``mesh`` is given.
    control
        ``"DG0"`` (``m`` per cell) or ``"P1"`` (``m`` nodal).
    sensors
        ``(n_points, 2)`` sensor coordinates (m), or ``"state"`` for the dof vector
        (DOLFINx's blocked order: ``u_x, u_y`` of each node).
    nu
        Poisson ratio, in ``(-1, 0.5)``.
    E_ref
        Reference Young's modulus (Pa), > 0: ``E = E_ref`` at ``m = 0``.
    body_force
        ``f`` (N/m^3): two numbers or a UFL vector.
    traction
        ``t_N`` (N/m^2) on the side ``x = x_max``: two numbers or a UFL vector.
    length, height
        Size of the default rectangle (m).
    mesh
        A serial 2D DOLFINx mesh instead of the rectangle; it is clamped at its smallest
        ``x`` and loaded by ``traction`` at its largest ``x``.
    **options
        Passed to :class:`~physinv.fem.FormSimulator`.

    Returns
    -------
    FormSimulator
        Linear in ``u``: one LU factorization per control.  ``forward(m)``:
        ``(n_points, 2)`` displacements (m).

    Examples
    --------
    >>> import torch
    >>> sim = linear_elasticity(cells=8, nu=0.25, E_ref=70e9, traction=(0.0, -1e6))
    >>> m = torch.zeros(sim.num_controls, dtype=torch.float64, requires_grad=True)
    >>> sim(m).square().sum().backward()            # one solve, one adjoint solve
    """
    from physinv.fem.dolfinx import import_dolfinx

    import_dolfinx("the linear elasticity form")
    import ufl
    from dolfinx import fem
    from dolfinx import mesh as dmesh
    from mpi4py import MPI

    if not (-1.0 < nu < 0.5):
        raise InvalidParameterError(f"the Poisson ratio nu must lie in (-1, 0.5) (plane strain); got {nu}")
    if not (np.isfinite(E_ref) and E_ref > 0):
        raise InvalidParameterError(f"E_ref must be a finite Young's modulus > 0 (Pa); got {E_ref}")
    if mesh is None:
        if not (length > 0 and height > 0):
            raise InvalidParameterError(f"length and height must be > 0 (m); got {length}, {height}")
        if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
            raise InvalidParameterError(f"cells must be an int >= 1; got {cells!r}")
        nx = max(1, int(round(cells * length / height)))
        mesh = dmesh.create_rectangle(MPI.COMM_SELF, [[0.0, 0.0], [length, height]], [nx, int(cells)])
    msh = mesh
    if msh.geometry.dim != 2:
        raise InvalidParameterError(f"linear_elasticity is plane strain: it needs a 2D mesh; got {msh.geometry.dim}D")
    V = fem.functionspace(msh, ("Lagrange", 1, (2,)))
    M = control_space(msh, control)
    coords = msh.geometry.x[:, 0]
    x_min, x_max = float(coords.min()), float(coords.max())
    tol = 1e-10 * max(1.0, x_max - x_min)
    tdim = msh.topology.dim
    right = dmesh.locate_entities_boundary(msh, tdim - 1, lambda x: x[0] >= x_max - tol)
    tags = dmesh.meshtags(msh, tdim - 1, np.sort(right).astype(np.int32), np.full(len(right), 1, dtype=np.int32))
    ds = ufl.Measure("ds", domain=msh, subdomain_data=tags)

    def vector(value, name):
        if isinstance(value, ufl.core.expr.Expr):
            return value
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (2,) or not np.all(np.isfinite(arr)):
            raise InvalidParameterError(f"{name} must be two finite numbers or a UFL vector; got {value!r}")
        return fem.Constant(msh, arr)

    f, t_N = vector(body_force, "body_force"), vector(traction, "traction")
    E0, poisson = fem.Constant(msh, float(E_ref)), fem.Constant(msh, float(nu))  # kernels serve any value

    def residual(u, m, v):
        mu, lam = lame_parameters(E0 * ufl.exp(m), poisson)
        eps = ufl.sym(ufl.grad(u))
        sigma = 2 * mu * eps + lam * ufl.tr(eps) * ufl.Identity(2)
        return (ufl.inner(sigma, ufl.sym(ufl.grad(v))) * ufl.dx - ufl.dot(f, v) * ufl.dx
                - ufl.dot(t_N, v) * ds(1))

    clamped = [(lambda x: x[0] <= x_min + tol, 0.0)]
    return FormSimulator(V, M, residual, bcs=clamped, observe=sensors, **options)
