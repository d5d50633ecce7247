r"""2D incompressible Navier-Stokes in vorticity form, pseudo-spectral, on the periodic square.

The vorticity ``w(x, y, t)`` on :math:`[0, 2\pi)^2` (periodic) solves

.. math::

    w_t + \mathbf u\cdot\nabla w = \nu \Delta w - \alpha w + f, \qquad
    \mathbf u = (\partial_y\psi, -\partial_x\psi), \qquad -\Delta\psi = w,

with viscosity ``nu`` (:math:`\nu = 1/Re`), linear drag ``alpha`` (``drag``) and the
Kolmogorov forcing

.. math::

    f(x, y) = -A\, k_f \cos(k_f y),

amplitude ``A`` (``forcing_amplitude``, default 1) and wavenumber ``k_f``
(``forcing_wavenumber``, default 4): the defaults give EnKG's ``f = -4 cos(4y)``
(and jax-cfd's ``kolmogorov_forcing`` of the velocity, ``sin(4y)`` in x, taken to vorticity).
The mean of ``w`` is conserved; ``psi`` has zero mean.

Grid and layout
---------------
``n x n`` points ``x_i = 2 pi i / n``, ``y_j = 2 pi j / n`` (``n`` even, ``h = 2 pi / n``);
arrays are ``(..., n, n)`` indexed ``w[..., i, j] = w(x_i, y_j)`` ('ij' indexing, as jax-cfd), so
axis -2 is x and axis -1 is y.  Spectra are ``torch.fft.rfft2`` over the last two axes:
``(..., n, n // 2 + 1)``, integer wavenumbers ``k_x in {-n/2, ..., n/2 - 1}`` (axis -2) and
``k_y in {0, ..., n/2}`` (axis -1).

Dealiasing (symmetric 2/3 rule)
-------------------------------
The advection term is the product of two fields; it is formed from the spectra truncated to the
modes

.. math::

    |k_x| \le K \ \text{and}\ |k_y| \le K, \qquad K = \lceil n/3 \rceil - 1
    \quad(\text{i.e. } |k| < n/3 \text{ strictly}),

and the product's spectrum is truncated to the same set (:func:`dealias_mask`).  With
``|k| <= K`` and ``3K < n`` every aliased wavenumber ``k_1 + k_2 -+ n`` falls outside the kept set,
so the truncated product is alias-free.  For ``n = 128``: ``K = 42``, kept ``k_x = -42..42``,
``k_y = 0..42`` (jax-cfd 0.2.1's filter keeps ``k_x = -43..41`` at 128^2: asymmetric; compare
with matched filters).  For ``n = 64``: ``K = 21``.  The Nyquist modes are never kept.  Modes
outside the set are not zeroed in the state: they only decay (viscosity, drag) and are forced.

Time stepping: integrating-factor RK4 (Lawson)
----------------------------------------------
In Fourier space ``w_hat' = L w_hat + N(w_hat)`` with the diagonal linear part
``L = -nu |k|^2 - alpha`` and ``N = -(u.grad w)^ + f^``.  With ``E = exp(L dt)``,
``E2 = exp(L dt / 2)`` one step is

.. math::

    k_1 &= N(w), & a &= E_2 (w + \tfrac{dt}{2} k_1), & k_2 &= N(a),\\
    b &= E_2 w + \tfrac{dt}{2} k_2, & k_3 &= N(b), & c &= E w + dt\, E_2 k_3, \quad k_4 = N(c),\\
    w^{+} &= E w + \tfrac{dt}{6}\,(E k_1 + 2 E_2 (k_2 + k_3) + k_4).

The viscous/drag term is integrated exactly (a Taylor-Green vortex, for which ``N = 0``, decays
exactly to round-off for any ``dt``); the scheme is fourth-order in time (measured 4.0 by
``physinv validate fluid``) and, unlike Crank-Nicolson-RK4 (jax-cfd, Chandler & Kerswell), has no
viscous time-step limit at all.

Options matching jax-cfd: ``scheme="cnrk4"`` and ``dealias="jaxcfd"``
----------------------------------------------------------------------
For cross-checks against jax-cfd 0.2.1 (:mod:`physinv.problems.fluid.reference`) two non-default
options reproduce its spectral Kolmogorov solver (``jax_cfd.spectral.equations.NavierStokes2D``
stepped by ``jax_cfd.spectral.time_stepping.crank_nicolson_rk4``); the defaults
(``scheme="ifrk4"``, ``dealias="symmetric"``) are unchanged.

* ``scheme="cnrk4"``: the semi-implicit low-storage Runge-Kutta / Crank-Nicolson scheme
  (Canuto et al. 2007, App. D.3; jax-cfd calls its 4th-order coefficient set "Carpenter-Kennedy";
  its CN-RK2 cites Chandler & Kerswell 2013).  With ``L`` as above and ``N`` the explicit term,
  five stages ``s = 0..4`` from ``u = w`` and ``h = 0``:

  .. math::

      h \leftarrow N(u) + \beta_s h, \qquad \mu_s = \tfrac{dt}{2}(\alpha_{s+1} - \alpha_s), \qquad
      u \leftarrow \frac{u + \gamma_s\, dt\, h + \mu_s L u}{1 - \mu_s L},

  ``w^+ = u``, with ``alpha = (0, 0.1496590219993, 0.3704009573644, 0.6222557631345,
  0.9582821306748, 1)``, ``beta = (0, -0.4178904745, -1.192151694643, -1.697784692471,
  -1.514183444257)``, ``gamma = (0.1496590219993, 0.3792103129999, 0.8229550293869,
  0.6994504559488, 0.1530572479681)`` (:data:`CNRK4_ALPHAS` ...).  Fourth order in the explicit
  (advection, forcing) part, second order in the viscous/drag part (Crank-Nicolson: a Taylor-Green
  vortex is no longer exact).  The same step-size check as IF-RK4 is applied.
* ``dealias="jaxcfd"``: jax-cfd's ``brick_wall_filter_2d``: with ``a = int(2/3 n)``, kept
  ``k_x in {-ceil(a/2), ..., floor(a/2) - 1}`` and ``k_y in {0, ..., int(2/3 (n/2 + 1)) - 1}``
  (``n = 32``: ``k_x = -11..9``, ``k_y = 0..10``; 64: ``-21..20``, ``0..21``; 128: ``-43..41``,
  ``0..42``: asymmetric in ``k_x``, and at 32^2 not alias-free).  As in jax-cfd, only the
  advection product is filtered; the factors use the whole state (identical to filtering them too
  when the state lies in the kept modes, where it then stays: forcing ``k_f`` is kept).

Time step and stability
-----------------------
The explicit part is RK4 on the advection operator, whose frozen-coefficient symbol
``-i (u k_x + v k_y)`` has modulus at most ``K U`` with ``U = max_x (|u| + |v|)`` on the
dealiased modes.  RK4 is stable on the imaginary axis up to ``|z| = 2 sqrt 2``, so

.. math::

    dt \le dt_{max} = \frac{2\sqrt 2}{K\, U} \;\approx\; 1.35\, \frac{h}{U}
    \quad (K \approx n/3),

:func:`max_stable_dt` (a sufficient bound: measured on a random 32^2 flow, 1.5 ``dt_max`` still ran
stably for 400 steps and 2 ``dt_max`` blew up).  By default ``dt = C h / U`` with ``C = 0.5`` (EnKG's ``0.5 h / |u|max``;
a factor ~2.7 below the bound), then reduced so that ``T`` is hit exactly:
``n_steps = ceil(T / dt)``, ``dt = T / n_steps`` (so ``dt`` is piecewise constant in ``w0`` and
the map stays smooth for the derivative tests).  Both use the initial state; forced flows that
speed up later are guarded by a check that the result is finite.  An explicit ``dt`` above
``dt_max`` raises :class:`~physinv.core.errors.UnstableTimeStepError` naming ``dt_max``.
A batch uses the smallest per-sample ``dt``.

Differentiation and memory
--------------------------
Everything is PyTorch autograd (reverse and forward mode): the result is differentiable in
``w0`` and, where they are tensors with ``requires_grad``, in ``nu``, ``forcing_amplitude``
and ``drag``.  ``checkpoint_segments = S`` splits the steps into ``S`` segments run under
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``: the graph kept between forward and
backward holds ``S`` states instead of every stage of every step (independent of the number of
steps); backward recomputes one segment at a time (``n_steps / S`` steps of saved tensors at once;
``S ~ sqrt(n_steps)`` balances the two).  Gradients equal the uncheckpointed ones bitwise on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from physinv.core.checks import check_finite, check_tensor
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnstableTimeStepError
from physinv.core.simulator import Simulator, SimulatorExample, register_simulator

__all__ = [
    "CFL_NUMBER",
    "CNRK4_ALPHAS",
    "CNRK4_BETAS",
    "CNRK4_GAMMAS",
    "DEALIAS_OPTIONS",
    "SCHEMES",
    "RK4_IMAGINARY_LIMIT",
    "VorticitySimulator",
    "cutoff_wavenumber",
    "dealias_mask",
    "kolmogorov_forcing",
    "max_stable_dt",
    "cfl_dt",
    "simulate",
    "simulate_trajectory",
    "smooth_random_vorticity",
    "taylor_green",
    "velocity",
    "grid_coordinates",
]

#: Default Courant number ``C`` of ``dt = C h / max(|u| + |v|)``.
CFL_NUMBER = 0.5
#: Extent of RK4's stability region on the imaginary axis.
RK4_IMAGINARY_LIMIT = 2.0 * math.sqrt(2.0)
#: Time-stepping schemes: ``"ifrk4"`` (default, integrating-factor RK4) and ``"cnrk4"`` (jax-cfd's CN/RK4).
SCHEMES = ("ifrk4", "cnrk4")
#: Dealiasing filters: ``"symmetric"`` (default 2/3 rule) and ``"jaxcfd"`` (jax-cfd 0.2.1's brick wall).
DEALIAS_OPTIONS = ("symmetric", "jaxcfd")
#: Low-storage RK / Crank-Nicolson coefficients of ``scheme="cnrk4"`` (as jax-cfd's ``crank_nicolson_rk4``).
CNRK4_ALPHAS = (0.0, 0.1496590219993, 0.3704009573644, 0.6222557631345, 0.9582821306748, 1.0)
CNRK4_BETAS = (0.0, -0.4178904745, -1.192151694643, -1.697784692471, -1.514183444257)
CNRK4_GAMMAS = (0.1496590219993, 0.3792103129999, 0.8229550293869, 0.6994504559488, 0.1530572479681)


# ----------------------------------------------------------------------------- grid and spectra
def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4 or n % 2:
        raise InvalidParameterError(f"n (grid points per side) must be an even integer >= 4; got {n!r}")
    return int(n)


def cutoff_wavenumber(n: int) -> int:
    """``K = ceil(n / 3) - 1``: the largest ``|k_x|``, ``|k_y|`` kept by the 2/3 rule (``|k| < n/3``)."""
    return -(-_check_n(n) // 3) - 1


def grid_coordinates(n: int, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``, each ``(n, n)``, ``x[i, j] = 2 pi i / n``, ``y[i, j] = 2 pi j / n``."""
    t = torch.arange(_check_n(n), dtype=dtype, device=device) * (2 * math.pi / n)
    return torch.meshgrid(t, t, indexing="ij")


def _check_option(name: str, value, options) -> str:
    if value not in options:
        raise InvalidParameterError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def dealias_mask(n: int, device=None, dealias: str = "symmetric") -> torch.Tensor:
    """Boolean ``(n, n // 2 + 1)`` mask of the rfft2 modes kept.

    ``dealias="symmetric"`` (default): ``|k_x| <= K`` and ``k_y <= K``, ``K = ceil(n/3) - 1``.
    ``dealias="jaxcfd"``: jax-cfd 0.2.1's ``brick_wall_filter_2d`` (module docstring): with
    ``a = int(2/3 n)``, ``-ceil(a/2) <= k_x <= floor(a/2) - 1`` and ``k_y <= int(2/3 (n/2 + 1)) - 1``.
    """
    n = _check_n(n)
    _check_option("dealias", dealias, DEALIAS_OPTIONS)
    kx = torch.fft.fftfreq(n, 1.0 / n, device=device).round()
    ky = torch.fft.rfftfreq(n, 1.0 / n, device=device).round()
    if dealias == "symmetric":
        K = cutoff_wavenumber(n)
        return (kx.abs()[:, None] <= K) & (ky[None, :] <= K)
    a = int(2 / 3 * n)
    ky_max = int(2 / 3 * (n // 2 + 1)) - 1
    return ((kx >= (-a) // 2) & (kx <= a // 2 - 1))[:, None] & (ky[None, :] <= ky_max)


@dataclass(frozen=True)
class _Spectral:
    kx: torch.Tensor        # (n, 1) real
    ky: torch.Tensor        # (1, n//2+1) real
    k2: torch.Tensor        # |k|^2
    inv_k2: torch.Tensor    # 1/|k|^2, 0 at k = 0
    mask: torch.Tensor      # dealias mask as the real dtype (0/1)


@lru_cache(maxsize=32)
def _spectral(n: int, dtype: torch.dtype, device: torch.device, dealias: str = "symmetric") -> _Spectral:
    kx = torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device).round()[:, None]
    ky = torch.fft.rfftfreq(n, 1.0 / n, dtype=dtype, device=device).round()[None, :]
    k2 = kx**2 + ky**2
    inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    mask = dealias_mask(n, device, dealias).to(dtype)
    return _Spectral(kx, ky, k2, inv_k2, mask)


def _ops(w: torch.Tensor) -> _Spectral:
    return _spectral(w.shape[-1], w.dtype, w.device)


def velocity(w: torch.Tensor, dealias: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, v) = (psi_y, -psi_x)`` with ``-lap psi = w``, for ``w`` of shape ``(..., n, n)``."""
    _check_field("w", w)
    ops = _ops(w)
    w_hat = torch.fft.rfft2(w)
    if dealias:
        w_hat = w_hat * ops.mask
    psi_hat = w_hat * ops.inv_k2
    n = w.shape[-1]
    u = torch.fft.irfft2(1j * ops.ky * psi_hat, s=(n, n))
    v = torch.fft.irfft2(-1j * ops.kx * psi_hat, s=(n, n))
    return u, v


def kolmogorov_forcing(n: int, amplitude=1.0, wavenumber: int = 4, dtype=torch.float64,
                       device=None) -> torch.Tensor:
    """``f = -A k_f cos(k_f y)`` on the ``(n, n)`` grid (differentiable in a tensor ``amplitude``)."""
    _, y = grid_coordinates(n, dtype, device)
    return torch.as_tensor(amplitude, dtype=dtype, device=device) * (-wavenumber * torch.cos(wavenumber * y))


def taylor_green(n: int, t: float, nu: float, k: int = 1, drag: float = 0.0, amplitude: float = 1.0,
                 dtype=torch.float64, device=None) -> torch.Tensor:
    r"""Taylor-Green vortex ``w = 2 A k cos(k x) cos(k y) exp(-(2 nu k^2 + drag) t)`` on the ``(n, n)`` grid.

    Stream function ``psi = (A / k) cos(kx) cos(ky) e^{...}``; ``u.grad w = 0`` exactly, so this
    solves the unforced equations (``forcing_amplitude = 0``).  ``k = 1, A = 1`` gives
    ``2 cos x cos y exp(-2 nu t)``.
    """
    x, y = grid_coordinates(n, dtype, device)
    return 2.0 * amplitude * k * torch.cos(k * x) * torch.cos(k * y) * math.exp(-(2.0 * nu * k * k + drag) * t)


# ----------------------------------------------------------------------------- checks
def _check_field(name: str, w: torch.Tensor) -> None:
    check_tensor(name, w, "of shape (n, n) or (batch, n, n)")
    if w.ndim not in (2, 3) or w.shape[-1] != w.shape[-2]:
        raise ShapeMismatchError(f"{name} must have shape (n, n) or (batch, n, n) on a square grid; "
                                 f"got {tuple(w.shape)}")
    n = w.shape[-1]
    if n < 4 or n % 2:
        raise ShapeMismatchError(f"{name}: the grid must have an even number n >= 4 of points per side; got n = {n}")
    if not w.is_floating_point() or w.dtype not in (torch.float32, torch.float64):
        raise InvalidParameterError(f"{name} must be float32 or float64; got {w.dtype}")
    check_finite(name, w)


def _scalar(name: str, value, w: torch.Tensor, positive: bool = False, nonnegative: bool = False) -> torch.Tensor:
    t = value if torch.is_tensor(value) else torch.as_tensor(value, dtype=torch.float64)
    if t.numel() != 1:
        raise InvalidParameterError(f"{name} must be a scalar; got shape {tuple(t.shape)}")
    x = float(t.detach())
    if not math.isfinite(x):
        raise InvalidParameterError(f"{name} must be finite; got {x}")
    if positive and x <= 0:
        raise InvalidParameterError(f"{name} must be > 0; got {x:g}")
    if nonnegative and x < 0:
        raise InvalidParameterError(f"{name} must be >= 0; got {x:g}")
    return t.reshape(()).to(dtype=w.dtype, device=w.device)


def _check_time(T) -> float:
    T = float(T)
    if not (math.isfinite(T) and T > 0):
        raise InvalidParameterError(f"T (final time) must be finite and > 0; got {T}")
    return T


# ----------------------------------------------------------------------------- time step
def _velocity_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-sample ``max_x (|u| + |v|)`` on the dealiased modes, shape ``w.shape[:-2]``."""
    with torch.no_grad():
        u, v = velocity(w.detach(), dealias=True)
        return (u.abs() + v.abs()).amax(dim=(-2, -1))


def max_stable_dt(w: torch.Tensor) -> float:
    """``dt_max = 2 sqrt(2) / (K max_x(|u| + |v|))``: the advective RK4 limit at state ``w`` (smallest over a batch)."""
    _check_field("w", w)
    U = float(_velocity_scale(w).max())
    K = cutoff_wavenumber(w.shape[-1])
    return math.inf if U == 0 else RK4_IMAGINARY_LIMIT / (K * U)


def cfl_dt(w: torch.Tensor, cfl: float = CFL_NUMBER) -> float:
    """``C h / max_x(|u| + |v|)`` at state ``w`` (``h = 2 pi / n``; a flow at rest gives ``C h``)."""
    _check_field("w", w)
    if not (0 < cfl and math.isfinite(cfl)):
        raise InvalidParameterError(f"cfl must be > 0; got {cfl}")
    U = float(_velocity_scale(w).max())
    h = 2 * math.pi / w.shape[-1]
    return cfl * h / max(U, 1.0 if U == 0 else U)


def _steps(w: torch.Tensor, duration: float, dt, cfl: float) -> tuple[int, float]:
    """Number of steps and the step that hit ``duration`` exactly; refuses an unstable explicit ``dt``."""
    if dt is None:
        dt0 = cfl_dt(w, cfl)
    else:
        dt0 = float(dt)
        if not (math.isfinite(dt0) and dt0 > 0):
            raise InvalidParameterError(f"dt must be finite and > 0 (or None for the CFL step); got {dt}")
        limit = max_stable_dt(w)
        if dt0 > limit:
            raise UnstableTimeStepError(
                f"dt = {dt0:.4g} is unstable for this initial vorticity on the {w.shape[-1]}^2 grid "
                f"(max(|u|+|v|) = {float(_velocity_scale(w).max()):.4g}, cutoff K = {cutoff_wavenumber(w.shape[-1])}): "
                f"the largest stable dt is {limit:.4g} (RK4 advective limit 2 sqrt(2) / (K max(|u|+|v|)))")
    n_steps = max(1, math.ceil(duration / dt0 - 1e-9))
    return n_steps, duration / n_steps


# ----------------------------------------------------------------------------- the stepper
def _nonlinear(w_hat: torch.Tensor, ops: _Spectral, f_hat: torch.Tensor, n: int,
               truncate_factors: bool = True) -> torch.Tensor:
    """``-(u.grad w)^ + f^`` with the 2/3 truncation of the product (and of the factors unless told not to)."""
    wf = w_hat * ops.mask if truncate_factors else w_hat
    psi = wf * ops.inv_k2
    u = torch.fft.irfft2(1j * ops.ky * psi, s=(n, n))
    v = torch.fft.irfft2(-1j * ops.kx * psi, s=(n, n))
    wx = torch.fft.irfft2(1j * ops.kx * wf, s=(n, n))
    wy = torch.fft.irfft2(1j * ops.ky * wf, s=(n, n))
    return f_hat - torch.fft.rfft2(u * wx + v * wy) * ops.mask


def _if_rk4(w_hat, dt, E, E2, ops, f_hat, n, truncate_factors=True):
    k1 = _nonlinear(w_hat, ops, f_hat, n, truncate_factors)
    a = E2 * (w_hat + (0.5 * dt) * k1)
    k2 = _nonlinear(a, ops, f_hat, n, truncate_factors)
    b = E2 * w_hat + (0.5 * dt) * k2
    k3 = _nonlinear(b, ops, f_hat, n, truncate_factors)
    c = E * w_hat + dt * (E2 * k3)
    k4 = _nonlinear(c, ops, f_hat, n, truncate_factors)
    return E * w_hat + (dt / 6.0) * (E * k1 + 2.0 * E2 * (k2 + k3) + k4)


def _cn_rk4(w_hat, dt, L, ops, f_hat, n, truncate_factors):
    """One step of the low-storage RK4 / Crank-Nicolson scheme (module docstring, ``scheme="cnrk4"``)."""
    u, h = w_hat, None
    for s in range(len(CNRK4_BETAS)):
        N = _nonlinear(u, ops, f_hat, n, truncate_factors)
        h = N if h is None else N + CNRK4_BETAS[s] * h
        mu = 0.5 * dt * (CNRK4_ALPHAS[s + 1] - CNRK4_ALPHAS[s])
        u = (u + (CNRK4_GAMMAS[s] * dt) * h + mu * (L * u)) / (1.0 - mu * L)
    return u


def _advance(w_hat, n_steps, dt, nu, amplitude, drag, wavenumber, n, checkpoint_segments,
             scheme="ifrk4", dealias="symmetric"):
    ops = _spectral(n, nu.dtype, nu.device, dealias)
    L = -nu * ops.k2 - drag
    f_hat = torch.fft.rfft2(kolmogorov_forcing(n, 1.0, wavenumber, nu.dtype, nu.device)) * amplitude
    truncate = dealias == "symmetric"  # jax-cfd filters the product only (module docstring)
    if scheme == "ifrk4":
        E, E2 = torch.exp(L * dt), torch.exp(L * (0.5 * dt))

        def one(state):
            return _if_rk4(state, dt, E, E2, ops, f_hat, n, truncate)
    else:
        def one(state):
            return _cn_rk4(state, dt, L, ops, f_hat, n, truncate)

    def run(state, steps):
        for _ in range(steps):
            state = one(state)
        return state

    if not checkpoint_segments or not torch.is_grad_enabled() or n_steps < 2:
        return run(w_hat, n_steps)
    S = min(int(checkpoint_segments), n_steps)
    sizes = [n_steps // S + (1 if i < n_steps % S else 0) for i in range(S)]
    for steps in sizes:
        w_hat = checkpoint(run, w_hat, steps, use_reentrant=False)
    return w_hat


def _prepare(w0, nu, forcing_amplitude, drag, checkpoint_segments, scheme="ifrk4", dealias="symmetric"):
    _check_field("w0", w0)
    _check_option("scheme", scheme, SCHEMES)
    _check_option("dealias", dealias, DEALIAS_OPTIONS)
    nu_t = _scalar("nu (viscosity)", nu, w0, positive=True)
    amp_t = _scalar("forcing_amplitude", forcing_amplitude, w0)
    drag_t = _scalar("drag", drag, w0, nonnegative=True)
    if checkpoint_segments is not None and (isinstance(checkpoint_segments, bool)
                                            or not isinstance(checkpoint_segments, (int, np.integer))
                                            or checkpoint_segments < 1):
        raise InvalidParameterError(f"checkpoint_segments must be None or an integer >= 1; got {checkpoint_segments!r}")
    return nu_t, amp_t, drag_t


def _finite_or_raise(w: torch.Tensor, dt: float) -> torch.Tensor:
    if not bool(torch.isfinite(w.detach()).all()):
        raise UnstableTimeStepError(
            f"the vorticity blew up (NaN/Inf) with dt = {dt:.4g}: the flow sped up past the advective limit "
            "of the step chosen from the initial state; pass a smaller dt or cfl")
    return w


def simulate(w0: torch.Tensor, T: float, nu=1.0 / 200, forcing_amplitude=1.0, drag=0.0, *, forcing_wavenumber: int = 4,
             dt: float | None = None, cfl: float = CFL_NUMBER, checkpoint_segments: int | None = None,
             return_info: bool = False, scheme: str = "ifrk4", dealias: str = "symmetric"):
    """Vorticity at time ``T`` from ``w0`` (``(n, n)`` or ``(batch, n, n)``; device and dtype follow ``w0``).

    Parameters
    ----------
    w0
        Initial vorticity (1/s) on the ``n x n`` grid of :math:`[0, 2\\pi)^2`, ``n`` even.
    T
        Final time (s), > 0.
    nu, forcing_amplitude, drag
        Viscosity (> 0, m^2/s in units where the box is 2 pi), forcing amplitude ``A`` in
        ``f = -A k_f cos(k_f y)``, linear drag (>= 0, 1/s): floats or 0-d tensors (which may
        require grad).
    forcing_wavenumber
        ``k_f`` (integer).
    dt
        Time step; ``None``: ``cfl * h / max(|u|+|v|)`` at ``w0``.  Either way reduced to
        ``T / ceil(T / dt)``.  Above :func:`max_stable_dt` it raises ``UnstableTimeStepError``.
    checkpoint_segments
        ``None`` (no checkpointing) or the number of checkpointed segments.
    return_info
        Also return ``{"dt": ..., "n_steps": ...}``.
    scheme, dealias
        ``"ifrk4"`` (default) or ``"cnrk4"``; ``"symmetric"`` (default) or ``"jaxcfd"``: see the module
        docstring (the non-defaults reproduce jax-cfd 0.2.1's spectral solver).
    """
    nu_t, amp_t, drag_t = _prepare(w0, nu, forcing_amplitude, drag, checkpoint_segments, scheme, dealias)
    T = _check_time(T)
    n_steps, step = _steps(w0, T, dt, cfl)
    n = w0.shape[-1]
    w_hat = _advance(torch.fft.rfft2(w0), n_steps, step, nu_t, amp_t, drag_t, int(forcing_wavenumber), n,
                     checkpoint_segments, scheme, dealias)
    w = _finite_or_raise(torch.fft.irfft2(w_hat, s=(n, n)), step)
    return (w, {"dt": step, "n_steps": n_steps}) if return_info else w


def simulate_trajectory(w0: torch.Tensor, times: Sequence[float], nu=1.0 / 200, forcing_amplitude=1.0, drag=0.0, *,
                        forcing_wavenumber: int = 4, dt: float | None = None, cfl: float = CFL_NUMBER,
                        checkpoint_segments: int | None = None, scheme: str = "ifrk4",
                        dealias: str = "symmetric") -> torch.Tensor:
    """Vorticity at each of the increasing ``times`` (``>= 0``): shape ``(len(times), *w0.shape)``.

    The step is chosen once from ``w0`` (as :func:`simulate`) and reduced on each interval
    ``[t_{i-1}, t_i]`` so that every time is hit exactly; a time 0 returns ``w0``.  ``scheme`` and
    ``dealias`` as in :func:`simulate`.
    """
    nu_t, amp_t, drag_t = _prepare(w0, nu, forcing_amplitude, drag, checkpoint_segments, scheme, dealias)
    ts = [float(t) for t in times]
    if not ts or any(not math.isfinite(t) for t in ts) or ts[0] < 0 or any(b <= a for a, b in zip(ts, ts[1:])):
        raise InvalidParameterError(f"times must be a non-empty, strictly increasing sequence of finite times >= 0; got {ts}")
    n = w0.shape[-1]
    if dt is None:
        dt = cfl_dt(w0, cfl)
    else:
        _steps(w0, ts[-1], dt, cfl)  # refuse an unstable dt
    w_hat, t_prev, out = torch.fft.rfft2(w0), 0.0, []
    for t in ts:
        if t > t_prev:
            n_steps = max(1, math.ceil((t - t_prev) / dt - 1e-9))
            step = (t - t_prev) / n_steps
            w_hat = _advance(w_hat, n_steps, step, nu_t, amp_t, drag_t, int(forcing_wavenumber), n,
                             checkpoint_segments, scheme, dealias)
        out.append(torch.fft.irfft2(w_hat, s=(n, n)))
        t_prev = t
    return _finite_or_raise(torch.stack(out), dt)


# ----------------------------------------------------------------------------- the simulator
class VorticitySimulator(Simulator):
    r"""Initial vorticity ``w0`` -> ``w(T)`` subsampled by ``observe_stride`` (the EnKG observation: stride 2).

    ``forward(w0)`` takes ``(n, n)`` or ``(B, n, n)`` and returns ``(n/s, n/s)`` or ``(B, n/s, n/s)``
    (``s = observe_stride``, the points ``w[..., ::s, ::s]``).  See the module docstring for the
    equations, the scheme (integrating-factor RK4) and the time step.

    Parameters
    ----------
    n
        Grid points per side (even).
    T
        Final time.
    nu, forcing_amplitude, drag
        Floats or 0-d tensors; a tensor with ``requires_grad`` makes the output differentiable in it.
        Default ``nu = 1/200`` (Re = 200), ``A = 1``, no drag: EnKG's setting.
    dt
        ``None`` (CFL step from ``w0``, :data:`CFL_NUMBER`) or a fixed step (checked against the limit).
        For inversion pass a fixed step: the CFL step changes with ``w0``, so with ``None`` the map
        ``w0 -> w(T)`` jumps wherever the step count changes.
    checkpoint_segments
        ``None`` or the number of checkpointed segments of the time loop.
    observe_stride
        Subsampling of the observed final vorticity.
    scheme, dealias
        As in :func:`simulate` (defaults: IF-RK4, symmetric 2/3 rule).
    """

    def __init__(self, n: int, T: float = 1.0, nu=1.0 / 200, forcing_amplitude=1.0, drag=0.0, dt: float | None = None,
                 checkpoint_segments: int | None = None, observe_stride: int = 1, forcing_wavenumber: int = 4,
                 cfl: float = CFL_NUMBER, scheme: str = "ifrk4", dealias: str = "symmetric"):
        super().__init__()
        self.n = _check_n(n)
        self.T = _check_time(T)
        if isinstance(observe_stride, bool) or not isinstance(observe_stride, (int, np.integer)) \
                or observe_stride < 1 or self.n % observe_stride:
            raise InvalidParameterError(f"observe_stride must be a positive integer dividing n = {self.n}; "
                                        f"got {observe_stride!r}")
        probe = torch.zeros(self.n, self.n, dtype=torch.float64)
        _prepare(probe, nu, forcing_amplitude, drag, checkpoint_segments, scheme, dealias)  # validate early
        self.scheme, self.dealias = scheme, dealias
        if dt is not None and not (math.isfinite(float(dt)) and float(dt) > 0):
            raise InvalidParameterError(f"dt must be finite and > 0 (or None for the CFL step); got {dt}")
        self.nu, self.forcing_amplitude, self.drag = nu, forcing_amplitude, drag
        self.dt, self.cfl, self.checkpoint_segments = dt, float(cfl), checkpoint_segments
        self.observe_stride, self.forcing_wavenumber = int(observe_stride), int(forcing_wavenumber)
        self.parameter_shape = (self.n, self.n)

    def check_parameters(self, w0: torch.Tensor) -> None:
        _check_field("w0", w0)
        if w0.shape[-1] != self.n:
            raise ShapeMismatchError(f"w0 must have shape ({self.n}, {self.n}) or (B, {self.n}, {self.n}); "
                                     f"got {tuple(w0.shape)}")

    def forward(self, w0: torch.Tensor) -> torch.Tensor:
        self.check_parameters(w0)
        w = simulate(w0, self.T, self.nu, self.forcing_amplitude, self.drag, forcing_wavenumber=self.forcing_wavenumber,
                     dt=self.dt, cfl=self.cfl, checkpoint_segments=self.checkpoint_segments,
                     scheme=self.scheme, dealias=self.dealias)
        s = self.observe_stride
        return w[..., ::s, ::s]

    def extra_repr(self) -> str:
        return (f"n={self.n}, T={self.T}, nu={self.nu}, forcing_amplitude={self.forcing_amplitude}, drag={self.drag}, "
                f"dt={self.dt}, checkpoint_segments={self.checkpoint_segments}, observe_stride={self.observe_stride}")


def smooth_random_vorticity(n: int, generator: torch.Generator | None = None, modes: int = 3, dtype=torch.float64,
                            device=None, batch: tuple[int, ...] = ()) -> torch.Tensor:
    """A smooth zero-mean random vorticity: Fourier modes ``1 <= |k_x|, |k_y| <= modes`` with ``N(0, 1/|k|^2)`` weights."""
    x, y = grid_coordinates(n, dtype, device)
    w = torch.zeros(*batch, n, n, dtype=dtype, device=device)
    for kx in range(0, modes + 1):
        for ky in range(-modes, modes + 1):
            if (kx, ky) == (0, 0) or (kx == 0 and ky < 0):
                continue
            c = torch.randn(*batch, 2, generator=generator, dtype=dtype).to(device) / math.hypot(kx, ky)
            phase = kx * x + ky * y
            w = w + c[..., 0, None, None] * torch.cos(phase) + c[..., 1, None, None] * torch.sin(phase)
    return w


@register_simulator("fluid-vorticity",
                    "2D Navier-Stokes (vorticity, periodic, Kolmogorov forcing), pseudo-spectral IF-RK4: w0 -> w(T)")
def _example(dtype: torch.dtype, device: torch.device) -> SimulatorExample:
    gen = torch.Generator().manual_seed(1)
    w0 = smooth_random_vorticity(12, gen, modes=3, dtype=dtype).to(device)
    sim = VorticitySimulator(12, T=0.06, nu=0.05, forcing_amplitude=1.0, dt=0.02, observe_stride=2)
    return SimulatorExample(sim, w0)
