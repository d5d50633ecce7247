r"""2D smoke on a staggered MAC grid: semi-Lagrangian advection, buoyancy, pressure projection.

Grid and layout
---------------
``nx x ny`` square cells of side ``h`` [m] covering :math:`[0, n_x h] \times [0, n_y h]`; axis 0
is ``x`` (to the right), axis 1 is ``y`` (**up**; gravity points to ``-y``).  Arrays are indexed
``[..., i, j]``:

* smoke density ``d`` (a dimensionless concentration) and pressure ``p`` at cell centres
  :math:`((i + 1/2) h, (j + 1/2) h)`, shape ``(..., nx, ny)``;
* ``u`` (x velocity, m/s) on the vertical faces :math:`(i h, (j + 1/2) h)`, shape ``(..., nx + 1, ny)``;
* ``v`` (y velocity, m/s) on the horizontal faces :math:`((i + 1/2) h, j h)`, shape ``(..., nx, ny + 1)``.

Boundaries
----------
The left, right and bottom sides of the box are solid walls.  The top is **open** by default
(``open_top=True``): a layer of air cells at ``p = 0`` sits just above the box, smoke and air may
leave (or enter) through it, and it is what makes the pressure matrix nonsingular.  Solid
obstacles are a boolean cell mask (True = solid).  The pressure matrix is
:class:`~physinv.discretize.fluid.FluidPoissonOperator` with these flags (obstacles ``SOLID``, the
top side in ``open_sides``).  Every connected fluid region must touch the open top: a pocket
sealed off by obstacles (or a closed box, ``open_top=False``) would be a pure-Neumann problem whose
pressure is fixed only up to a constant; the constructor raises
:class:`~physinv.core.errors.InvalidParameterError` for it (pass ``isolated="solidify"`` to turn
such pockets solid instead).  A face is *solid* when a cell on either side is solid or it lies on
a wall; its normal velocity is held at 0 (free slip).

One time step (``dt`` [s])
--------------------------
1. **Advection** (``advection="semi-lagrangian"``, default): every sample point ``x`` of ``d``,
   ``u`` and ``v`` is traced back along the velocity, ``x_d = x - dt U(x)``, with ``U``
   bilinearly interpolated from the two face grids, and the quantity is bilinearly interpolated
   at ``x_d`` (points outside the sample grid are clamped to its boundary).  Semi-Lagrangian
   advection is **unconditionally stable** (interpolation never creates new extrema), so no CFL
   limit is imposed and no ``dt`` is refused; accuracy, not stability, degrades with the Courant
   number ``max|U| dt / h`` (reported by :meth:`SmokeSimulator.run`).
   ``advection="maccormack"``: the MacCormack / BFECC correction of Selle et al. (2008),
   :math:`\hat q = SL_{dt}(q)`, :math:`\check q = SL_{-dt}(\hat q)`,
   :math:`q^+ = \hat q + (q - \check q)/2`, clamped to the min/max of the four interpolation nodes
   of the forward trace (so it is stable as well; the clamp makes the map only piecewise smooth).
2. **Inflow**: ``d += dt * s`` with the source rate ``s`` [1/s] (a field, zero outside the source
   region).
3. **Buoyancy**: ``v += dt * alpha * d_f`` on the horizontal faces, with ``alpha`` (``buoyancy``)
   in m/s^2 per unit density and ``d_f`` the average of the two adjacent cell densities (the one
   adjacent cell on the top face).  Positive ``alpha``: smoke rises.
4. Normal velocity on solid faces is set to 0; density in solid cells to 0.
5. **Projection** (fluid density 1, so ``p`` is a kinematic pressure in m^2/s^2): with the
   MAC divergence :math:`(\nabla_h\cdot u)_{ij} = (u_{i+1,j} - u_{ij} + v_{i,j+1} - v_{ij}) / h`,
   solve on the fluid cells

   .. math::

       A p = b, \qquad b = -\frac{h^2}{dt} \nabla_h\cdot u^*,\qquad A = h^2(-\Delta_h)

   (``A`` from :class:`~physinv.discretize.fluid.FluidPoissonOperator`, Neumann at solid faces,
   ``p = 0`` in the air cells above an open top), then on every non-solid face
   :math:`u = u^* - \frac{dt}{h}(p_{i} - p_{i-1})` (likewise ``v``).  Then
   :math:`\nabla_h\cdot u = \nabla_h\cdot u^* + \frac{dt}{h^2} A p = -\frac{dt}{h^2}(b - A p)`:
   the divergence after projection is the scaled solver residual, so
   :math:`\max|\nabla_h\cdot u| \le \text{rtol}\,\lVert\nabla_h\cdot u^*\rVert_2` for an iterative
   solver with relative tolerance ``rtol`` and round-off for ``"direct"``.

The pressure solve is :func:`physinv.linalg.implicit.implicit_solve`: both AD modes
differentiate it implicitly (one solve with the same symmetric matrix per backward / tangent
solve, reusing the forward solve's preparation: LU factors, AMG hierarchy), never by unrolling
solver iterations.  Solvers by name (``"direct"``, ``"cg"``, ``"cg-jacobi"``, ``"cg-amg"``,
``"dcdm"``), or any object with the :mod:`physinv.linalg.solvers` interface
(``prepare(operator, theta)(b) -> x``).  ``"dcdm"`` is the learned solver of
:mod:`physinv.linalg.dcdm`: pass ``dcdm_direction`` = a trained
:class:`~physinv.learn.dcdm_net.DCDMNet` (wrapped in
:class:`~physinv.learn.dcdm_net.NetworkDirection`), a ``NetworkDirection`` or any direction map;
it runs with a :class:`~physinv.linalg.dcdm.StallFallback` so a simulation step always reaches
``rtol``.

Differentiability
-----------------
Bilinear interpolation is piecewise smooth in the trace-back points (its derivative jumps when a
point crosses a grid line or the clamp), so the map is smooth only away from such crossings: the
registered example has a generic initial velocity (no point on a grid line) and a small buoyancy,
so the small perturbations of the Taylor test and of gradcheck cross none.  With zero initial
velocity and no buoyancy the density map is linear.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from physinv.core.checks import check_finite
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.simulator import LinearOperatorPair, Simulator, SimulatorExample, register_simulator
from physinv.discretize.fluid import FLUID, SOLID, FluidPoissonOperator
from physinv.linalg.implicit import implicit_solve
from physinv.linalg.solvers import make_solver

__all__ = ["SmokeSimulator", "SmokeRun", "divergence", "divergence_adjoint", "SOLVER_NAMES", "ADVECTION_SCHEMES"]

SOLVER_NAMES = ("direct", "cg", "cg-jacobi", "cg-amg", "dcdm")
ADVECTION_SCHEMES = ("semi-lagrangian", "maccormack")


# ----------------------------------------------------------------------------- helpers
def divergence(u: torch.Tensor, v: torch.Tensor, h: float) -> torch.Tensor:
    """MAC divergence at cell centres, ``(u[i+1,j] - u[i,j] + v[i,j+1] - v[i,j]) / h``, shape ``(..., nx, ny)``."""
    return (u[..., 1:, :] - u[..., :-1, :] + v[..., :, 1:] - v[..., :, :-1]) / h


def divergence_adjoint(phi: torch.Tensor, h: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Adjoint of :func:`divergence` (minus the MAC gradient with ``phi = 0`` outside the box):
    ``(u, v)`` with ``u[i, j] = (phi[i-1, j] - phi[i, j]) / h`` and likewise ``v``."""
    px = torch.nn.functional.pad(phi, (0, 0, 1, 1))
    py = torch.nn.functional.pad(phi, (1, 1))
    return (px[..., :-1, :] - px[..., 1:, :]) / h, (py[..., :, :-1] - py[..., :, 1:]) / h


def _grid_field(name: str, value, shape: tuple[int, ...]) -> torch.Tensor:
    """``value`` as a detached float64 tensor of ``shape``, finite (a clear error otherwise)."""
    field = torch.as_tensor(value).detach().to(torch.float64)
    if tuple(field.shape) != tuple(shape):
        raise ShapeMismatchError(f"{name} must have shape {tuple(shape)}; got {tuple(field.shape)}")
    check_finite(name, field)
    return field


def _positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a positive finite number; got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name} must be a positive finite number; got {value}")
    return value


def _mask(name: str, mask, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    arr = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    if arr.shape != shape:
        raise ShapeMismatchError(f"{name} must have the grid shape {shape}; got {arr.shape}")
    if arr.dtype != bool:
        raise InvalidParameterError(f"{name} must be a boolean cell mask (True = {name} cell); got dtype {arr.dtype}")
    return arr.copy()


class _Interpolator:
    """Bilinear interpolation on one sample grid with sample points ``((i + ox) h, (j + oy) h)``.

    Points are clamped to the grid's bounding box.  The integer stencil is computed from detached
    coordinates (piecewise constant), the weights differentiably (both AD modes).
    """

    def __init__(self, shape: tuple[int, int], offset: tuple[float, float], h: float):
        self.shape, self.offset, self.h = shape, offset, h

    def __call__(self, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor, with_bounds: bool = False):
        nx, ny = self.shape
        fx = (x / self.h - self.offset[0]).clamp(0.0, nx - 1)
        fy = (y / self.h - self.offset[1]).clamp(0.0, ny - 1)
        i0 = torch.floor(fx.detach()).long().clamp(0, max(nx - 2, 0))
        j0 = torch.floor(fy.detach()).long().clamp(0, max(ny - 2, 0))
        tx, ty = fx - i0.to(fx.dtype), fy - j0.to(fy.dtype)
        i1, j1 = (i0 + 1).clamp(max=nx - 1), (j0 + 1).clamp(max=ny - 1)
        lead = q.shape[:-2]
        flat = q.reshape(lead + (nx * ny,))
        pts = x.shape[-2:]

        def take(i, j):
            idx = (i * ny + j).reshape(i.shape[:-2] + (-1,)).expand(lead + (-1,))
            return torch.gather(flat, -1, idx).reshape(lead + pts)

        q00, q10, q01, q11 = take(i0, j0), take(i1, j0), take(i0, j1), take(i1, j1)
        out = (q00 * (1 - tx) * (1 - ty) + q10 * tx * (1 - ty) + q01 * (1 - tx) * ty + q11 * tx * ty)
        if not with_bounds:
            return out
        lo = torch.minimum(torch.minimum(q00, q10), torch.minimum(q01, q11))
        hi = torch.maximum(torch.maximum(q00, q10), torch.maximum(q01, q11))
        return out, lo, hi


@dataclass
class SmokeRun:
    """Diagnostics of :meth:`SmokeSimulator.run` (one entry per step; for a batch, ``mass`` is the
    batch mean, the others the batch maximum).

    ``density``: final density ``(..., nx, ny)``; ``u``, ``v``: final face velocities;
    ``step_time``: wall time per step [s]; ``solve_time``: of which the pressure solve [s];
    ``divergence``: ``max|div_h u|`` after projection [1/s]; ``divergence_before``: before it;
    ``relative_divergence``: ``max|div_h u| / ||div_h u*||_2`` (bounded by the solver's rtol);
    ``mass``: total smoke ``h^2 sum d`` [m^2] after each step (``mass0``: initial);
    ``courant``: ``max(|u|, |v|) dt / h`` after each step; ``setup_time``: solver preparation
    (factorization, AMG hierarchy; made on the first run only) [s]; ``total_time`` [s].
    """

    density: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    step_time: list[float] = field(default_factory=list)
    solve_time: list[float] = field(default_factory=list)
    divergence: list[float] = field(default_factory=list)
    divergence_before: list[float] = field(default_factory=list)
    relative_divergence: list[float] = field(default_factory=list)
    mass: list[float] = field(default_factory=list)
    mass0: float = 0.0
    courant: list[float] = field(default_factory=list)
    setup_time: float = 0.0
    total_time: float = 0.0


# ----------------------------------------------------------------------------- simulator
class SmokeSimulator(Simulator):
    r"""2D buoyant smoke in a box with obstacles (MAC grid, semi-Lagrangian, pressure projection).

    ``forward(m)`` maps the parameter ``m`` (shape ``(nx, ny)`` or ``(B, nx, ny)``) to the density
    after ``steps`` steps, ``(..., nx, ny)``, or to its values at the sensor cells ``(..., S)``.
    See the module docstring for the grid, boundaries and scheme.

    Parameters
    ----------
    shape
        ``(nx, ny)`` cells (each >= 2).
    h
        Cell size [m].
    dt
        Time step [s] (any size: semi-Lagrangian advection is unconditionally stable).
    steps
        Number of time steps.
    obstacles
        Boolean ``(nx, ny)`` mask, True on solid cells (default: none).
    buoyancy
        ``alpha`` [m/s^2 per unit density]: upward acceleration ``alpha * d``.
    source
        Inflow rate field ``s`` [1/s] ``(nx, ny)``, ``>= 0``: ``d += dt * s`` each step.  Its
        support is the source region, which must not overlap an obstacle.  Default: no inflow.
    solver
        ``"direct"``, ``"cg"``, ``"cg-jacobi"``, ``"cg-amg"``, ``"dcdm"`` (needs
        ``dcdm_direction``) or a solver object (``prepare(operator, theta)(b) -> x``).
    rtol
        Relative residual tolerance of the iterative solvers.
    parameter
        What ``m`` is: ``"initial"`` (default): the initial density ``d0`` (>= 0 expected, not
        required), with the fixed ``source``; ``"source"``: the inflow rate field (``m`` is
        multiplied by the source region indicator -- the support of ``source`` if given, else
        all fluid cells -- so values elsewhere are ignored), starting from ``initial_density``.
    initial_density
        ``(nx, ny)`` initial density for ``parameter="source"`` (default 0).
    initial_velocity
        ``(u0, v0)`` of shapes ``(nx + 1, ny)``, ``(nx, ny + 1)`` [m/s] (default: rest); it is
        projected before the first step.
    sensors
        Boolean ``(nx, ny)`` mask of observed cells (default: the whole field).
    open_top
        Open top side (``p = 0`` in a layer of air cells above the box; default).  ``False``
        closes the box: the pressure is then a pure-Neumann problem (defined up to a constant)
        that the solvers do not handle, so the constructor raises
        :class:`~physinv.core.errors.InvalidParameterError`.
    isolated
        ``"raise"`` (default) or ``"solidify"`` (with a warning), for fluid pockets that obstacles
        seal off from the open top.
    maxiter
        Iteration cap of the iterative solvers (default: theirs).
    advection
        ``"semi-lagrangian"`` or ``"maccormack"``.
    dcdm_direction
        For ``solver="dcdm"``: a trained ``DCDMNet``, a ``NetworkDirection``, or any direction map.
    """

    def __init__(self, shape, h: float, dt: float, steps: int, obstacles=None, buoyancy: float = 1.0,
                 source=None, solver="cg", rtol: float = 1e-10, parameter: str = "initial",
                 initial_density=None, initial_velocity=None, sensors=None, open_top: bool = True,
                 isolated: str = "raise", advection: str = "semi-lagrangian", dcdm_direction=None,
                 maxiter: int | None = None):
        super().__init__()
        try:
            nx, ny = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise ShapeMismatchError(f"shape must be (nx, ny); got {shape!r}") from None
        if nx < 2 or ny < 2:
            raise ShapeMismatchError(f"shape must have >= 2 cells per axis; got {(nx, ny)}")
        self.nx, self.ny = nx, ny
        self.h, self.dt = _positive("h [m]", h), _positive("dt [s]", dt)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise InvalidParameterError(f"steps must be a positive integer; got {steps!r}")
        self.steps = int(steps)
        try:
            self.buoyancy = float(buoyancy)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"buoyancy must be a finite number [m/s^2]; got {buoyancy!r}") from None
        if not math.isfinite(self.buoyancy):
            raise InvalidParameterError(f"buoyancy must be a finite number [m/s^2]; got {buoyancy}")
        self.rtol = _positive("rtol", rtol)
        if parameter not in ("initial", "source"):
            raise InvalidParameterError(f"parameter must be 'initial' or 'source'; got {parameter!r}")
        self.parameter = parameter
        if advection not in ADVECTION_SCHEMES:
            raise UnknownNameError(f"unknown advection scheme {advection!r}; allowed: {', '.join(ADVECTION_SCHEMES)}")
        self.advection = advection

        solid = _mask("obstacles", obstacles, (nx, ny))
        flags = np.where(solid, SOLID, FLUID).astype(np.int8)
        self.operator = FluidPoissonOperator(flags, open_sides=("y1",) if open_top else (),
                                             isolated=isolated)
        self.open_top = bool(open_top)
        fluid = self.operator.flags.numpy() == FLUID
        self.register_buffer("fluid", torch.from_numpy(fluid.copy()), persistent=False)

        if source is None:
            src = torch.zeros(nx, ny, dtype=torch.float64)
        else:
            src = _grid_field("source", source, (nx, ny))
            if bool((src < 0).any()):
                raise InvalidParameterError("source (inflow rate, 1/s) must be >= 0 everywhere")
            covered = (src != 0).numpy() & ~fluid
            if covered.any():
                raise InvalidParameterError(
                    f"the source region overlaps {int(covered.sum())} solid cell(s) (obstacles or cells made solid); "
                    "move the source or the obstacle: smoke cannot flow in inside a solid")
        self.register_buffer("source", src, persistent=False)
        region = (src != 0) if source is not None else torch.from_numpy(fluid.copy())
        self.register_buffer("source_region", region, persistent=False)

        if initial_density is None:
            d0 = torch.zeros(nx, ny, dtype=torch.float64)
        else:
            d0 = _grid_field("initial_density", initial_density, (nx, ny))
        self.register_buffer("initial_density", d0, persistent=False)

        if initial_velocity is None:
            u0, v0 = torch.zeros(nx + 1, ny, dtype=torch.float64), torch.zeros(nx, ny + 1, dtype=torch.float64)
        else:
            try:
                u0, v0 = (torch.as_tensor(c).detach().to(torch.float64) for c in initial_velocity)
            except (TypeError, ValueError):
                raise InvalidParameterError("initial_velocity must be a pair (u0, v0)") from None
            if tuple(u0.shape) != (nx + 1, ny) or tuple(v0.shape) != (nx, ny + 1):
                raise ShapeMismatchError(
                    f"initial_velocity must have shapes ({nx + 1}, {ny}) and ({nx}, {ny + 1}); "
                    f"got {tuple(u0.shape)} and {tuple(v0.shape)}")
            check_finite("initial_velocity", u0)
            check_finite("initial_velocity", v0)
        self.register_buffer("u0", u0, persistent=False)
        self.register_buffer("v0", v0, persistent=False)

        if sensors is not None:
            sens = torch.from_numpy(_mask("sensors", sensors, (nx, ny)))
            if not bool(sens.any()):
                raise InvalidParameterError("sensors mask selects no cell")
        else:
            sens = None
        self.sensors = sens

        # open (non-solid) faces: between two non-solid cells; the top faces when open_top
        pad = np.pad(fluid, ((1, 1), (1, 1)), constant_values=False)
        if open_top:
            pad[1:-1, -1] = True  # air above the box
        u_open = pad[:-1, 1:-1] & pad[1:, 1:-1]
        v_open = pad[1:-1, :-1] & pad[1:-1, 1:]
        self.register_buffer("u_open", torch.from_numpy(u_open.copy()), persistent=False)
        self.register_buffer("v_open", torch.from_numpy(v_open.copy()), persistent=False)

        self.solver = self._make_solver(solver, maxiter, dcdm_direction)
        self._prepared = None
        self._theta = torch.empty(0, dtype=torch.float64)
        hh = self.h
        self._interp_c = _Interpolator((nx, ny), (0.5, 0.5), hh)
        self._interp_u = _Interpolator((nx + 1, ny), (0.0, 0.5), hh)
        self._interp_v = _Interpolator((nx, ny + 1), (0.5, 0.0), hh)
        self.parameter_shape = (nx, ny)
        self.last_run: SmokeRun | None = None

    # ------------------------------------------------------------------ setup
    def _make_solver(self, solver, maxiter, dcdm_direction):
        if not isinstance(solver, str):
            if not hasattr(solver, "prepare"):
                raise InvalidParameterError(
                    f"solver must be a name ({', '.join(SOLVER_NAMES)}) or an object with "
                    f"prepare(operator, theta) -> solve; got {type(solver).__name__}")
            return solver
        if solver not in SOLVER_NAMES:
            raise UnknownNameError(f"unknown solver {solver!r}; allowed: {', '.join(SOLVER_NAMES)}")
        if solver == "direct":
            return make_solver("direct")
        if solver == "dcdm":
            if dcdm_direction is None:
                raise InvalidParameterError(
                    "solver='dcdm' needs dcdm_direction: a trained DCDMNet, a NetworkDirection or a direction map")
            from physinv.linalg.dcdm import DCDMSolver, StallFallback

            direction = dcdm_direction
            if isinstance(direction, torch.nn.Module):
                from physinv.learn.dcdm_net import NetworkDirection

                direction = NetworkDirection(direction)
            return DCDMSolver(direction, rtol=self.rtol, maxiter=maxiter or 10 * self.nx * self.ny,
                              fallback=StallFallback())
        return make_solver(solver, rtol=self.rtol, maxiter=maxiter)

    def prepared_solve(self):
        """The solver's prepared solve (factorization / AMG hierarchy), made once and reused."""
        if self._prepared is None:
            self._prepared = self.solver.prepare(self.operator, self._theta)
        return self._prepared

    def check_parameters(self, m: torch.Tensor) -> None:
        if not torch.is_tensor(m):
            raise InvalidParameterError(f"m must be a torch.Tensor; got {type(m).__name__}")
        if m.ndim not in (2, 3) or tuple(m.shape[-2:]) != (self.nx, self.ny):
            what = "initial density" if self.parameter == "initial" else "source rate"
            raise ShapeMismatchError(
                f"m ({what}) must have shape ({self.nx}, {self.ny}) or (B, {self.nx}, {self.ny}); got {tuple(m.shape)}")
        if not m.is_floating_point():
            raise InvalidParameterError(f"m must be a floating-point tensor; got dtype {m.dtype}")
        check_finite("m", m)

    # ------------------------------------------------------------------ one step
    def _points(self, dtype, device):
        key = (dtype, device)
        cache = getattr(self, "_pts_cache", {})
        if key not in cache:
            h = self.h
            def grid(nx, ny, ox, oy):
                i = (torch.arange(nx, dtype=dtype, device=device) + ox) * h
                j = (torch.arange(ny, dtype=dtype, device=device) + oy) * h
                return torch.meshgrid(i, j, indexing="ij")
            cache[key] = (grid(self.nx, self.ny, 0.5, 0.5), grid(self.nx + 1, self.ny, 0.0, 0.5),
                          grid(self.nx, self.ny + 1, 0.5, 0.0))
            self._pts_cache = cache
        return cache[key]

    def _velocity_at(self, u, v, x, y):
        return self._interp_u(u, x, y), self._interp_v(v, x, y)

    def _trace(self, u, v, x, y, dt):
        ux, vy = self._velocity_at(u, v, x, y)
        return x - dt * ux, y - dt * vy

    def _advect_one(self, q, interp, x, y, u, v):
        xb, yb = self._trace(u, v, x, y, self.dt)
        if self.advection == "semi-lagrangian":
            return interp(q, xb, yb)
        fwd, lo, hi = interp(q, xb, yb, with_bounds=True)
        xf, yf = self._trace(u, v, x, y, -self.dt)
        back = interp(fwd, xf, yf)
        corrected = fwd + 0.5 * (q - back)
        return torch.minimum(torch.maximum(corrected, lo), hi)

    def _project(self, u, v):
        """Pressure projection; returns ``(u, v, max|div| before, ||div||_2 before, solve seconds)``."""
        fl = self.fluid.to(u.device)
        div = divergence(u, v, self.h)
        zero = torch.zeros((), dtype=u.dtype, device=u.device)
        b = torch.where(fl, -(self.h**2 / self.dt) * div, zero)
        t0 = time.perf_counter()
        p = implicit_solve(self.operator, self._theta, b, self.solver, prepared=self.prepared_solve())
        t_solve = time.perf_counter() - t0
        p = torch.where(fl, p, zero)  # non-fluid rows of A are identity with b = 0: p = 0 there anyway
        c = self.dt / self.h
        # pressure padded with p = 0 outside (only used across open faces: the air above the box)
        pp = torch.nn.functional.pad(p, (1, 1, 1, 1))
        gx = pp[..., 1:, 1:-1] - pp[..., :-1, 1:-1]
        gy = pp[..., 1:-1, 1:] - pp[..., 1:-1, :-1]
        u = torch.where(self.u_open.to(u.device), u - c * gx, zero)
        v = torch.where(self.v_open.to(v.device), v - c * gy, zero)
        with torch.no_grad():
            dmax = float(div.abs().amax()) if div.numel() else 0.0
            dnorm = float(torch.where(fl, div, zero).flatten(-2).norm(dim=-1).amax())
        return u, v, dmax, dnorm, t_solve

    def step(self, d, u, v, rate):
        """One time step from ``(d, u, v)``; returns ``(d, u, v, diagnostics)``."""
        (xc, yc), (xu, yu), (xv, yv) = self._points(d.dtype, d.device)
        zero = torch.zeros((), dtype=d.dtype, device=d.device)
        d_new = self._advect_one(d, self._interp_c, xc, yc, u, v)
        u_new = self._advect_one(u, self._interp_u, xu, yu, u, v)
        v_new = self._advect_one(v, self._interp_v, xv, yv, u, v)
        if rate is not None:
            d_new = d_new + self.dt * rate
        d_new = torch.where(self.fluid.to(d.device), d_new, zero)
        if self.buoyancy != 0.0:
            # density on horizontal faces: mean of the two cells; the one cell on bottom/top faces
            dp = torch.cat([d_new[..., :1], d_new, d_new[..., -1:]], dim=-1)
            d_face = 0.5 * (dp[..., :-1] + dp[..., 1:])
            v_new = v_new + (self.dt * self.buoyancy) * d_face
        u_new = torch.where(self.u_open.to(d.device), u_new, zero)
        v_new = torch.where(self.v_open.to(d.device), v_new, zero)
        u_new, v_new, dmax, dnorm, t_solve = self._project(u_new, v_new)
        return d_new, u_new, v_new, (dmax, dnorm, t_solve)

    # ------------------------------------------------------------------ runs
    def _initial_state(self, m):
        dtype, device = m.dtype, m.device
        lead = m.shape[:-2]
        fl = self.fluid.to(device)
        zero = torch.zeros((), dtype=dtype, device=device)
        if self.parameter == "initial":
            d, rate = torch.where(fl, m, zero), None
            if bool((self.source != 0).any()):
                rate = self.source.to(dtype=dtype, device=device)
        else:
            d = self.initial_density.to(dtype=dtype, device=device).expand(lead + (self.nx, self.ny))
            d = torch.where(fl, d, zero)
            rate = torch.where(self.source_region.to(device), m, zero)
        u = self.u0.to(dtype=dtype, device=device).expand(lead + (self.nx + 1, self.ny))
        v = self.v0.to(dtype=dtype, device=device).expand(lead + (self.nx, self.ny + 1))
        if bool(self.u0.any()) or bool(self.v0.any()):
            u = torch.where(self.u_open.to(device), u, zero)
            v = torch.where(self.v_open.to(device), v, zero)
            u, v, *_ = self._project(u, v)
        return d, u, v, rate

    def run(self, m: torch.Tensor) -> SmokeRun:
        """Simulate from ``m`` and record per-step diagnostics (:class:`SmokeRun`); differentiable."""
        self.check_parameters(m)
        t_start = time.perf_counter()
        d, u, v, rate = self._initial_state(m)
        prep = time.perf_counter()
        self.prepared_solve()
        prep = time.perf_counter() - prep
        out = SmokeRun(density=d, u=u, v=v)
        area = self.h**2
        out.mass0 = float(d.detach().sum()) * area
        for _ in range(self.steps):
            t0 = time.perf_counter()
            d, u, v, (dmax, dnorm, t_solve) = self.step(d, u, v, rate)
            out.step_time.append(time.perf_counter() - t0)
            out.solve_time.append(t_solve)
            with torch.no_grad():
                div_after = divergence(u, v, self.h)
                div_after = torch.where(self.fluid.to(d.device), div_after, torch.zeros((), dtype=d.dtype))
                a = float(div_after.abs().amax())
                out.divergence.append(a)
                out.divergence_before.append(dmax)
                out.relative_divergence.append(a / dnorm if dnorm > 0 else 0.0)
                out.mass.append(float(d.detach().sum()) * area / max(1, int(np.prod(d.shape[:-2]))))
                out.courant.append(float(torch.maximum(u.abs().amax(), v.abs().amax())) * self.dt / self.h)
        out.density, out.u, out.v = d, u, v
        out.setup_time = prep
        out.total_time = time.perf_counter() - t_start
        self.last_run = out
        return out

    def observe(self, d: torch.Tensor) -> torch.Tensor:
        """Density at the sensor cells ``(..., S)``, or the whole field without sensors."""
        if self.sensors is None:
            return d
        return d[..., self.sensors.to(d.device)]

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.observe(self.run(m).density)

    def extra_repr(self) -> str:
        name = self.solver if isinstance(self.solver, str) else getattr(self.solver, "name", type(self.solver).__name__)
        return (f"shape=({self.nx}, {self.ny}), h={self.h}, dt={self.dt}, steps={self.steps}, "
                f"buoyancy={self.buoyancy}, solver={name}, rtol={self.rtol}, parameter={self.parameter!r}, "
                f"advection={self.advection!r}, open_top={self.open_top}")


# ----------------------------------------------------------------------------- registration
def _swirl(nx: int, ny: int, h: float, amplitude: float, dtype=torch.float64):
    """A smooth velocity from the stream function ``psi = A sin(pi x / Lx) sin(pi y / Ly) + shear``,
    taken as MAC differences (discretely divergence-free), plus a small generic tilt."""
    xs = torch.arange(nx + 1, dtype=dtype) * h
    ys = torch.arange(ny + 1, dtype=dtype) * h
    X, Y = torch.meshgrid(xs, ys, indexing="ij")  # cell corners
    Lx, Ly = nx * h, ny * h
    psi = amplitude * (torch.sin(math.pi * X / Lx) * torch.sin(math.pi * Y / Ly) * (1 + 0.3 * X / Lx)
                       + 0.05 * torch.sin(2 * math.pi * X / Lx) * Y / Ly)
    u = (psi[:, 1:] - psi[:, :-1]) / h  # u = dpsi/dy on vertical faces
    v = -(psi[1:, :] - psi[:-1, :]) / h  # v = -dpsi/dx on horizontal faces
    return u, v


@register_simulator("fluid-smoke",
                    "2D buoyant smoke, MAC grid, semi-Lagrangian advection, implicit-differentiated pressure "
                    "projection with obstacles: initial density -> final density")
def _example(dtype: torch.dtype, device: torch.device) -> SimulatorExample:
    nx = ny = 8
    h = 1.0 / nx
    obstacles = torch.zeros(nx, ny, dtype=torch.bool)
    obstacles[3:5, 2:3] = True
    u0, v0 = _swirl(nx, ny, h, amplitude=0.09)
    sim = SmokeSimulator((nx, ny), h=h, dt=0.1, steps=2, obstacles=obstacles, buoyancy=0.5,
                         solver="direct", initial_velocity=(u0, v0)).to(device)
    x = (torch.arange(nx, dtype=torch.float64) + 0.5) * h
    X, Y = torch.meshgrid(x, x, indexing="ij")
    d0 = (0.5 + torch.exp(-((X - 0.45) ** 2 + (Y - 0.3) ** 2) / 0.05)).to(dtype=dtype, device=device)
    nu, nv = (nx + 1) * ny, nx * (ny + 1)

    def div(x):
        return divergence(x[:nu].reshape(nx + 1, ny), x[nu:].reshape(nx, ny + 1), h)

    def div_adjoint(y):
        a, b = divergence_adjoint(y, h)
        return torch.cat([a.reshape(-1), b.reshape(-1)])

    return SimulatorExample(sim, d0, [LinearOperatorPair("mac-divergence", div, div_adjoint, (nu + nv,), (nx, ny))])
