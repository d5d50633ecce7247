r"""Time-dependent advection-diffusion-reaction with an unknown source field, as a
:class:`~physinv.fem.TimeSteppingFormSimulator`.

Strong form, on a domain :math:`\Omega` (the unit square by default), for
:math:`0 < t \le T = N \Delta t`:

.. math::

    \frac{\partial u}{\partial t} - \nabla\cdot(D \nabla u) + b \cdot \nabla u + r u = m(x)\, g(t)
    \ \text{in } \Omega, \qquad u = 0 \ \text{on } \partial\Omega, \qquad u(\cdot, 0) = u_0,

with ``g = 1`` (a steady source) unless a time profile is given.  Weak form of
the spatial operator and the theta scheme (:func:`~physinv.fem.theta_scheme`;
``theta = 1`` implicit Euler, ``1/2`` Crank-Nicolson), ``u`` in P1:

.. math::

    A(u, m, t; v) = \int_\Omega D \nabla u \cdot \nabla v + (b \cdot \nabla u)\, v + r u v
                    - m\, g(t)\, v \, dx,

    F_k = \int_\Omega \frac{u_k - u_{k-1}}{\Delta t} v \, dx + \theta A(u_k, m, t_k; v)
          + (1 - \theta) A(u_{k-1}, m, t_{k-1}; v) = 0 \quad \forall v.

Units: ``x`` in m, ``t`` and ``dt`` in s, ``u`` a concentration (mol/m^3),
``D`` in m^2/s, ``b`` in m/s, ``r`` in 1/s, the source ``m g`` in
mol/(m^3 s) (``g`` dimensionless).  The control is the source field ``m``
(P1 nodal or DG0 per cell); observations are point values of ``u`` at chosen
steps (default every step).  The step Jacobian ``M/dt + theta K`` depends on
neither ``u``, ``m`` nor ``t``: one LU factorization serves every step of
every forward, adjoint and tangent sweep.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np

from physinv.core.errors import InvalidParameterError
from physinv.fem.time_stepping import TimeSteppingFormSimulator, theta_scheme
from physinv.problems.forms.diffusion import SENSORS, control_space, unit_square

__all__ = ["advection_diffusion_reaction"]


def advection_diffusion_reaction(
    cells: int = 6,
    n_steps: int = 10,
    dt: float = 0.05,
    *,
    theta: float = 0.5,
    diffusivity: float = 0.1,
    velocity: Sequence[float] = (0.5, 0.25),
    reaction: float = 0.1,
    control: str = "P1",
    time_profile: Callable[[Any], Any] | None = None,
    u0: Any = 0.0,
    sensors: np.ndarray | str = SENSORS,
    observe_steps: Sequence[int] | None = None,
    observe_times: Sequence[float] | None = None,
    bcs: Sequence | None = None,
    mesh=None,
    **options,
) -> TimeSteppingFormSimulator:
    r"""``m -> u(x_i, t_k)`` for ``du/dt - div(D grad u) + b . grad u + r u = m(x) g(t)`` (module docstring).

    Parameters
    ----------
    cells
        Cells per side of the unit square; ignored when ``mesh`` is given.
    n_steps, dt
        Number of steps ``N`` and time step (s): ``T = N dt``.
    theta
        Theta scheme, in ``[1/2, 1]`` (A-stable: ``1`` implicit Euler, ``1/2`` Crank-Nicolson).
    diffusivity
        ``D`` (m^2/s), > 0 (a number or a positive UFL expression).
    velocity
        ``b`` (m/s): two numbers or a UFL vector.
    reaction
        ``r`` (1/s), >= 0 (a number or a UFL expression).
    control
        ``"P1"`` (``m`` nodal) or ``"DG0"`` (``m`` per cell).
    time_profile
        ``g(t) -> UFL expression`` of the time ``t`` (s; a UFL expression: use ``ufl.sin``,
        ``ufl.exp``...); default ``None``: ``g = 1``.
    u0
        Initial state: a number, ``x -> values`` (interpolated), a ``Function`` or dof array.
    sensors
        ``(n_points, 2)`` sensor coordinates (m), or ``"state"``.
    observe_steps, observe_times
        Observed steps (indices ``0..N``) or times (s, multiples of ``dt``); default every step.
    bcs
        Dirichlet conditions; default ``u = 0`` on the whole boundary.
    mesh
        A serial 2D DOLFINx mesh instead of the unit square.
    **options
        Passed to :class:`~physinv.fem.TimeSteppingFormSimulator` (``petsc_options``, ``cache_size``...).

    Returns
    -------
    TimeSteppingFormSimulator
        ``forward(m)``: ``(n_observed_steps, n_points)``.

    Warns
    -----
    UserWarning
        When the mesh Péclet number ``|b| h / (2 D)`` exceeds 1 (plain Galerkin P1, no
        stabilization: the solution may oscillate).

    Examples
    --------
    >>> import torch, ufl
    >>> sim = advection_diffusion_reaction(cells=16, n_steps=40, dt=0.025, time_profile=lambda t: ufl.exp(-t))
    >>> m = torch.ones(sim.num_controls, dtype=torch.float64, requires_grad=True)
    >>> sim(m).square().sum().backward()            # 40 solves forward, one adjoint sweep back
    """
    from physinv.fem.dolfinx import import_dolfinx

    import_dolfinx("the advection-diffusion-reaction form")
    import ufl
    from dolfinx import fem

    if not (0.5 <= theta <= 1.0):
        raise InvalidParameterError(
            f"theta must lie in [0.5, 1] (A-stable: 1 implicit Euler, 0.5 Crank-Nicolson); got {theta}; explicit "
            "schemes need a step restriction this form does not check")
    msh = unit_square(cells) if mesh is None else mesh
    V = fem.functionspace(msh, ("Lagrange", 1))
    M = control_space(msh, control)
    for name, value, low in (("diffusivity", diffusivity, 0.0), ("reaction", reaction, None)):
        if isinstance(value, (int, float, np.floating, np.integer)):
            if not np.isfinite(value) or (value <= low if low is not None else value < 0):
                raise InvalidParameterError(f"{name} must be finite and {'> 0' if low is not None else '>= 0'}; "
                                            f"got {value}")
    if isinstance(velocity, ufl.core.expr.Expr):
        b = velocity
    else:
        arr = np.asarray(velocity, dtype=np.float64)
        if arr.shape != (msh.geometry.dim,) or not np.all(np.isfinite(arr)):
            raise InvalidParameterError(f"velocity must be {msh.geometry.dim} finite numbers (m/s) or a UFL vector; "
                                        f"got {velocity!r}")
        if isinstance(diffusivity, (int, float, np.floating, np.integer)):
            tdim = msh.topology.dim
            n_cells = msh.topology.index_map(tdim).size_local
            h = float(msh.h(tdim, np.arange(n_cells, dtype=np.int32)).max())
            peclet = float(np.linalg.norm(arr)) * h / (2 * float(diffusivity))
            if peclet > 1:
                warnings.warn(f"mesh Peclet number |b| h / (2 D) = {peclet:.2f} > 1: plain Galerkin P1 may "
                              "oscillate; refine the mesh or raise D", stacklevel=2)
        b = fem.Constant(msh, arr)
    # numbers as Constants: the compiled kernels serve any value
    D = fem.Constant(msh, float(diffusivity)) if isinstance(diffusivity, (int, float, np.number)) else diffusivity
    r = fem.Constant(msh, float(reaction)) if isinstance(reaction, (int, float, np.number)) else reaction
    if time_profile is not None and not callable(time_profile):
        raise InvalidParameterError("time_profile must be a callable g(t) -> UFL expression (e.g. lambda t: "
                                    f"ufl.sin(t)); got {time_profile!r}")

    def spatial(u, m, v, t):
        source = m if time_profile is None else m * time_profile(t)
        return (D * ufl.inner(ufl.grad(u), ufl.grad(v)) + ufl.dot(b, ufl.grad(u)) * v
                + r * u * v - source * v) * ufl.dx

    return TimeSteppingFormSimulator(
        V, M, theta_scheme(spatial, dt, theta), u0, n_steps, dt,
        bcs=[("boundary", 0.0)] if bcs is None else bcs, observe=sensors,
        observe_steps=observe_steps, observe_times=observe_times, **options)
