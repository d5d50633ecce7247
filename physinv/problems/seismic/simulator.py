"""The 2D constant-density acoustic wave equation on Deepwave: velocity -> shot gathers.

For each shot ``s`` the pressure ``u_s(x, t)`` solves

    (1 / v(x)^2) d^2u/dt^2 - Laplacian u = -dx^2 w(t) delta(x - x_s),     u = du/dt = 0 at t = 0,

in the half-space below the surface, truncated by a perfectly matched layer
(PML) on all four sides; the data are ``d_s(x_r, t_k) = u_s(x_r, t_k)`` at the
receivers.  Velocity ``v`` in m/s on the survey's grid, ``(nz, nx)`` cells of
``dx`` metres.

Discretization (Deepwave's ``scalar`` propagator, C/CUDA kernels with their
own adjoint): second-order leapfrog in time, central differences of order
``accuracy`` (2, 4, 6 or 8) in space, convolutional PML of ``pml_width``
cells tuned to the peak frequency.  Stability of the leapfrog scheme on the
stencil's largest symbol ``lambda`` (von Neumann, homogeneous medium) needs

    dt <= 2 dx / (v_max sqrt(2 lambda)),

:func:`max_stable_dt`; a survey that breaks it is refused with that number
(Deepwave itself would sub-step silently).  The wavespeed bound ``v_max`` is
the top of the simulator's ``velocity_range`` and is passed to Deepwave as a
constant, so the time step and the PML do not depend on the model and the
gradient is that of one fixed discrete map.

The source term is Deepwave's: after step ``n`` it adds ``-v(x_s)^2 dt^2 w_n``
to the source cell (hence the ``-dx^2`` above, ``physinv validate seismic``
pins it), and a receiver records the field before the step's update.

Gradients: ``backend="compiled"`` (default) uses Deepwave's compiled adjoint;
because the survey's ``dt`` is never sub-stepped (the Courant number is set
from it, so Deepwave's step ratio is 1) and the gradient is sampled every
step, it is the exact adjoint of the discrete map (Born dot-product test
~1e-15 in float64, ``physinv validate seismic``).  Had Deepwave sub-stepped,
its gradient would sample the time integral every few steps and differ by
1e-6..1e-3.  ``backend="eager"`` runs the same scheme in PyTorch with
autograd: slower, the same numbers.
:meth:`AcousticSimulator.born` is the linearized
(Born) operator ``dv -> J(v) dv`` (Deepwave's ``scalar_born``).

Registered as ``seismic-acoustic`` (``physinv verify``: Taylor, Born
dot-product and gradcheck on a tiny example).
"""

from __future__ import annotations

import math
import warnings

import torch

from physinv.core.checks import check_finite, check_tensor
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnstableTimeStepError
from physinv.core.extras import require
from physinv.core.simulator import LinearOperatorPair, Simulator, SimulatorExample, register_simulator
from physinv.problems.seismic.survey import Survey

__all__ = ["AcousticSimulator", "DispersionWarning", "max_stable_dt", "points_per_wavelength", "SECOND_DERIVATIVE"]

#: Central second-derivative stencils ``c_0, c_1, ..., c_p`` (``u'' ~ (c_0 u_i + sum_k c_k (u_{i+k} + u_{i-k})) / dx^2``).
SECOND_DERIVATIVE = {
    2: (-2.0, 1.0),
    4: (-5 / 2, 4 / 3, -1 / 12),
    6: (-49 / 18, 3 / 2, -3 / 20, 1 / 90),
    8: (-205 / 72, 8 / 5, -1 / 5, 8 / 315, -1 / 560),
}
BACKENDS = ("compiled", "eager")
MIN_POINTS_PER_WAVELENGTH = 6.0


class DispersionWarning(UserWarning):
    """Fewer grid points per wavelength than the scheme resolves without visible numerical dispersion."""


def _check_accuracy(accuracy: int) -> int:
    if accuracy not in SECOND_DERIVATIVE:
        raise InvalidParameterError(f"accuracy must be one of {sorted(SECOND_DERIVATIVE)}; got {accuracy!r}")
    return int(accuracy)


def max_stable_dt(dx: float, max_velocity: float, accuracy: int = 4, ndim: int = 2) -> float:
    """Largest stable leapfrog time step (s) for grid spacing ``dx`` (m) and wavespeed ``max_velocity`` (m/s).

    The stencil's largest symbol is ``lambda = -(c_0 + 2 sum_k (-1)^k c_k)`` (at the Nyquist
    wavenumber); the scheme is stable for ``v^2 dt^2 ndim lambda / dx^2 <= 4``.
    """
    c = SECOND_DERIVATIVE[_check_accuracy(accuracy)]
    lam = -(c[0] + 2 * sum((-1) ** k * ck for k, ck in enumerate(c[1:], start=1)))
    return 2.0 * dx / (max_velocity * math.sqrt(ndim * lam))


def points_per_wavelength(min_velocity: float, peak_frequency: float, dx: float) -> float:
    """``v_min / (f_peak dx)``: grid points per shortest wavelength at the peak frequency."""
    return min_velocity / (peak_frequency * dx)


class AcousticSimulator(Simulator):
    """Velocity ``v`` (m/s) -> shot gathers ``u(x_r, t_k)`` for every shot of a :class:`Survey`.

    ``forward(v)`` takes ``(nz, nx)`` or a batch ``(B, nz, nx)`` and returns
    ``(n_shots, n_receivers, nt)`` or ``(B, n_shots, n_receivers, nt)``; all
    shots of all samples run in one Deepwave call.  Device and dtype follow ``v``.

    Parameters
    ----------
    survey
        Grid, time sampling, wavelet, sources and receivers.
    velocity_range
        ``(v_min, v_max)`` in m/s: velocities outside are refused; ``v_max`` sets the time-step
        bound and the PML, ``v_min`` the dispersion check (warning below
        :data:`MIN_POINTS_PER_WAVELENGTH` points per wavelength at the peak frequency).
    accuracy
        Spatial order of the finite differences: 2, 4, 6 or 8.
    pml_width
        Absorbing layer width in cells on each side (0 makes the sides reflecting).
    backend
        ``"compiled"`` (Deepwave's C/CUDA kernels) or ``"eager"`` (PyTorch autograd; exact adjoint).
    """

    def __init__(self, survey: Survey, velocity_range: tuple[float, float] = (1500.0, 4500.0), accuracy: int = 4,
                 pml_width: int = 20, backend: str = "compiled"):
        super().__init__()
        if not isinstance(survey, Survey):
            raise InvalidParameterError(f"survey must be a physinv Survey; got {type(survey).__name__}")
        vmin, vmax = (float(v) for v in velocity_range)
        if not (0 < vmin < vmax and math.isfinite(vmax)):
            raise InvalidParameterError(f"velocity_range must be (v_min, v_max) with 0 < v_min < v_max finite (m/s); "
                                        f"got {velocity_range}")
        if backend not in BACKENDS:
            raise InvalidParameterError(f"backend must be one of {BACKENDS}; got {backend!r}")
        if int(pml_width) != pml_width or pml_width < 0:
            raise InvalidParameterError(f"pml_width must be an integer >= 0 (cells); got {pml_width!r}")
        self.survey, self.velocity_range = survey, (vmin, vmax)
        self.accuracy, self.pml_width, self.backend = _check_accuracy(accuracy), int(pml_width), backend
        self.parameter_shape = survey.shape
        limit = max_stable_dt(survey.dx, vmax, self.accuracy)
        if survey.dt > limit:
            raise UnstableTimeStepError(
                f"dt = {survey.dt:.4g} s is unstable for dx = {survey.dx:g} m, v_max = {vmax:g} m/s and accuracy "
                f"{self.accuracy}: the maximum stable dt is {limit:.4g} s")
        ppw = points_per_wavelength(vmin, survey.peak_frequency, survey.dx)
        if ppw < MIN_POINTS_PER_WAVELENGTH:
            warnings.warn(
                f"{ppw:.1f} grid points per wavelength at the peak frequency {survey.peak_frequency:g} Hz and "
                f"v_min = {vmin:g} m/s (dx = {survey.dx:g} m): below {MIN_POINTS_PER_WAVELENGTH:g}, numerical "
                f"dispersion will be visible; use dx <= {vmin / (MIN_POINTS_PER_WAVELENGTH * survey.peak_frequency):.3g} m "
                "or a lower frequency", DispersionWarning, stacklevel=2)
        # Deepwave's Courant number dt v_max sqrt(2) / dx, nudged up so that it never sub-steps our dt.
        self._courant = survey.dt * vmax * math.sqrt(2.0) / survey.dx * (1 + 1e-9)
        self.register_buffer("source_locations", torch.as_tensor(survey.sources).unsqueeze(1), persistent=False)
        self.register_buffer("receiver_locations", torch.as_tensor(survey.receivers), persistent=False)
        self.register_buffer("wavelet", survey.wavelet.clone(), persistent=False)

    # ------------------------------------------------------------------ checks
    def check_parameters(self, v: torch.Tensor) -> None:
        check_tensor("velocity", v)
        if v.ndim not in (2, 3) or tuple(v.shape[-2:]) != self.survey.shape:
            raise ShapeMismatchError(f"velocity must have shape {self.survey.shape} or (B, *{self.survey.shape}) "
                                     f"(m/s on the survey's grid); got {tuple(v.shape)}")
        check_finite("velocity", v)
        vmin, vmax = self.velocity_range
        lo, hi = float(v.detach().min()), float(v.detach().max())
        if lo <= 0:
            raise InvalidParameterError(f"velocity must be > 0 m/s everywhere; got a minimum of {lo:g}")
        if lo < vmin * (1 - 1e-6) or hi > vmax * (1 + 1e-6):
            raise InvalidParameterError(
                f"velocity spans [{lo:g}, {hi:g}] m/s, outside the simulator's velocity_range [{vmin:g}, {vmax:g}] "
                "(the time step and the absorbing layer are set for it); build the simulator with a wider range")

    def deepwave_arguments(self, n_models: int, dtype: torch.dtype) -> dict:
        """The keyword arguments of ``deepwave.scalar`` for ``n_models`` models of all shots (``n_models * n_shots``
        propagations): wavelet, cells, accuracy, PML, the fixed ``max_vel`` and Courant number, backend."""
        s = self.survey
        shots = s.n_shots
        amplitudes = self.wavelet.to(dtype).expand(n_models * shots, 1, s.nt).contiguous()
        sources = self.source_locations.repeat(n_models, 1, 1)
        receivers = self.receiver_locations.expand(n_models * shots, -1, -1).contiguous()
        return dict(source_amplitudes=amplitudes, source_locations=sources, receiver_locations=receivers,
                    accuracy=self.accuracy, pml_width=self.pml_width, pml_freq=float(s.peak_frequency),
                    max_vel=self.velocity_range[1], courant_number=self._courant, backend=self.backend,
                    location_interpolation="none")

    def per_shot(self, v: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        """The model repeated for each shot, ``(B * n_shots, nz, nx)``, and the batch size (None: unbatched)."""
        batch = v.shape[0] if v.ndim == 3 else None
        models = v if batch is not None else v.unsqueeze(0)
        return models.repeat_interleave(self.survey.n_shots, dim=0), batch

    def _shape_output(self, d: torch.Tensor, batch: int | None) -> torch.Tensor:
        d = d.reshape(-1, *self.survey.data_shape)
        return d if batch is not None else d[0]

    # ----------------------------------------------------------------- physics
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Shot gathers ``(n_shots, n_receivers, nt)`` (or ``(B, ...)``) of velocity ``v`` (m/s)."""
        self.check_parameters(v)
        deepwave = require("deepwave", "seismic", "the acoustic wave simulator")
        models, batch = self.per_shot(v)
        out = deepwave.scalar(models, self.survey.dx, self.survey.dt,
                              **self.deepwave_arguments(models.shape[0] // self.survey.n_shots, v.dtype))
        return self._shape_output(out[-1], batch)

    def born(self, v: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
        """Linearized data ``J(v) dv`` (Born approximation), the shape of :meth:`forward`'s output.

        Differentiable in ``dv``: its vector-Jacobian product is the Born adjoint ``J(v)^T r``
        (the FWI gradient of a residual ``r``).
        """
        self.check_parameters(v)
        if dv.shape != v.shape:
            raise ShapeMismatchError(f"dv must have the shape of v {tuple(v.shape)}; got {tuple(dv.shape)}")
        check_finite("dv", dv)
        deepwave = require("deepwave", "seismic", "the Born operator")
        models, batch = self.per_shot(v)
        perturbations, _ = self.per_shot(dv)
        arguments = self.deepwave_arguments(models.shape[0] // self.survey.n_shots, v.dtype)
        arguments["sc_receiver_locations"] = arguments.pop("receiver_locations")
        with warnings.catch_warnings():  # dv at the model's edge is extended into the PML: the true linearization
            warnings.filterwarnings("ignore", category=deepwave.MigrationWarning)
            out = deepwave.scalar_born(models, self.survey.dx, self.survey.dt, dv=perturbations, **arguments)
        return self._shape_output(out[-1], batch)

    def born_adjoint(self, v: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``J(v)^T r``: the adjoint of :meth:`born` applied to data-shaped ``r`` (shape of ``v``)."""
        dv = torch.zeros_like(v, requires_grad=True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.born(v.detach(), dv), dv, grad_outputs=residual)
        return g


def _layered(shape: tuple[int, int], dtype, device) -> torch.Tensor:
    """A smooth two-layer model with a lateral bump (tiny examples, tests)."""
    nz, nx = shape
    z = torch.linspace(0, 1, nz, dtype=dtype, device=device)[:, None]
    x = torch.linspace(0, 1, nx, dtype=dtype, device=device)[None, :]
    return 2000.0 + 800.0 * torch.sigmoid(12 * (z - 0.5 - 0.1 * torch.sin(3 * x)))


@register_simulator("seismic-acoustic", "2D acoustic waves (Deepwave, 4th order, PML): velocity -> shot gathers")
def _example(dtype, device) -> SimulatorExample:
    from physinv.problems.seismic.survey import surface_line

    shape = (6, 8)
    survey = Survey(shape, 10.0, 1.5e-3, 40, 25.0, surface_line(2, shape[1]), surface_line(4, shape[1]))
    sim = AcousticSimulator(survey, (1500.0, 3500.0), accuracy=4, pml_width=4).to(device)
    v0 = _layered(shape, dtype, device)
    born = LinearOperatorPair("born", lambda dv: sim.born(v0, dv), lambda r: sim.born_adjoint(v0, r), shape,
                              survey.data_shape)
    return SimulatorExample(sim, v0, [born])
