"""An independent pure-PyTorch 2D acoustic propagator: the cross-check of Deepwave, not a second engine.

:func:`reference_forward` re-implements, from the equations alone, the
discretization that :class:`~physinv.problems.seismic.simulator.AcousticSimulator`
gets from Deepwave's ``scalar`` propagator, so that ``physinv validate seismic``
can compare the two seismogram by seismogram (agreement to round-off: a few
1e-15 relative in float64) and gradient by gradient (torch autograd through
this loop is the exact adjoint of the discrete map).  It is slow (a Python
loop over time steps) and has none of the simulator's checks: use the
simulator for work, this module to check it.

Equation (units: ``u`` arbitrary, ``v`` m/s, ``x`` m, ``t`` s).  For a
source wavelet ``w(t)`` at cell ``x_s`` the pressure solves

    (1 / v^2) u_tt - Laplacian u = -dx^2 w(t) delta(x - x_s),

i.e. the source enters the discrete update as ``-v(x_s)^2 dt^2 w_n`` added
to the single cell ``x_s`` (Deepwave's injection: a discrete delta
``delta_h = e_s / dx^2`` times ``-dx^2 w``).  The data are ``d[n] = u(x_r, n dt)``.

Discretization: leapfrog in time,

    u^{n+1} = 2 u^n - u^{n-1} + v^2 dt^2 (L u^n + PML terms) - v(x_s)^2 dt^2 w_n e_s,

with ``L`` the central difference Laplacian of order ``accuracy`` built from
:data:`~physinv.problems.seismic.simulator.SECOND_DERIVATIVE`; the record at
step ``n`` is taken before the update (``d[0] = u^0 = 0``).  The model is
extended by ``pml_width`` replicated cells on every side plus ``accuracy/2``
ghost cells where ``u`` stays 0.  Absorption is the convolutional PML
(C-PML) written, per axis ``x``, with memory variables ``psi, zeta``:

    t_x   = (1 + b) D2x u + (db/dx) Dx u + Dx(a psi),
    u_xx  -> (1 + b) t_x + a zeta,
    psi   <- b Dx u + a psi,        zeta <- b t_x + a zeta,

``a = exp(-(sigma + alpha) dt)``, ``b = sigma / (sigma + alpha) (a - 1)``
(``a = b = 0`` outside the layer), with the polynomial profile

    sigma(f) = 3 v_max ln(1/R) / (2 W dx) f^2,    alpha(f) = pi f_pml (1 - f),

``f`` in [0, 1] the fractional depth into the layer of ``W = pml_width`` cells,
``R = 1e-3``, ``f_pml`` the survey's peak frequency and ``v_max`` the
simulator's velocity bound (the layer does not depend on the model).
``Dx`` is the central first difference of the same order.
"""

from __future__ import annotations

import math

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.problems.seismic.simulator import SECOND_DERIVATIVE
from physinv.problems.seismic.survey import Survey

__all__ = ["FIRST_DERIVATIVE", "PML_REFLECTION", "pml_profile", "reference_forward"]

#: Central first-derivative stencils ``d_1..d_p``: ``u' ~ sum_k d_k (u_{i+k} - u_{i-k}) / dx``.
FIRST_DERIVATIVE = {
    2: (1 / 2,),
    4: (2 / 3, -1 / 12),
    6: (3 / 4, -3 / 20, 1 / 60),
    8: (4 / 5, -1 / 5, 4 / 105, -1 / 280),
}
#: Nominal reflection coefficient ``R`` of the PML profile.
PML_REFLECTION = 1e-3


def _shift(u: torch.Tensor, axis: int, k: int, pad: int) -> torch.Tensor:
    """``u[i + k]`` along ``axis`` (1 or 2) for the interior ``i in [pad, n - pad)``."""
    n = u.shape[axis]
    return u.narrow(axis, pad + k, n - 2 * pad)


def _embed(inner: torch.Tensor, axis: int, pad: int) -> torch.Tensor:
    """Zero-pad ``pad`` cells on both ends of ``axis`` (the ghost cells where derivatives are 0)."""
    spec = (0, 0, pad, pad) if axis == 1 else (pad, pad)
    return torch.nn.functional.pad(inner, spec)


def _d1(u: torch.Tensor, axis: int, accuracy: int, dx: float) -> torch.Tensor:
    pad = accuracy // 2
    out = sum(c * (_shift(u, axis, k, pad) - _shift(u, axis, -k, pad))
              for k, c in enumerate(FIRST_DERIVATIVE[accuracy], start=1))
    return _embed(out / dx, axis, pad)


def _d2(u: torch.Tensor, axis: int, accuracy: int, dx: float) -> torch.Tensor:
    pad = accuracy // 2
    centre = _shift(u, axis, 0, pad)
    out = sum(c * ((_shift(u, axis, k, pad) - centre) + (_shift(u, axis, -k, pad) - centre))
              for k, c in enumerate(SECOND_DERIVATIVE[accuracy][1:], start=1))
    return _embed(out / dx**2, axis, pad)


def pml_profile(n_inner: int, pml_width: int, accuracy: int, dx: float, dt: float, max_velocity: float,
                pml_frequency: float, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """C-PML coefficients ``(a, b, db/dx)`` along one axis of ``n_inner + 2 (pml_width + accuracy/2)`` cells.

    With ``f`` in [0, 1] the fractional depth into the layer (0 at the last interior cell, 1
    from the outermost layer cell on, ghost cells included),

        sigma = 3 v_max ln(1/R) / (2 W dx) f^2,   alpha = pi f_pml (1 - f)     (1/s),
        a = exp(-(sigma + alpha) dt),   b = sigma / (sigma + alpha) (a - 1),

    and ``a = b = 0`` where ``f = 0`` (the interior).

    Parameters
    ----------
    n_inner
        Cells of the model along the axis.
    pml_width
        Layer width ``W`` in cells (0: no layer, all coefficients 0).
    accuracy
        Finite-difference order (the ghost-cell count is ``accuracy // 2``).
    dx, dt
        Grid spacing (m) and time step (s).
    max_velocity
        ``v_max`` (m/s) of the damping profile.
    pml_frequency
        ``f_pml`` (Hz) of the frequency shift ``alpha``.

    Returns
    -------
    a, b, db
        Dimensionless ``a, b`` and ``db/dx`` (1/m, central difference of order ``accuracy``,
        0 on the ghost cells), each of shape ``(n_inner + 2 (W + accuracy // 2),)``.
    """
    pad = accuracy // 2
    n = n_inner + 2 * (pml_width + pad)
    x = torch.arange(n, dtype=torch.float64)
    if pml_width == 0:
        zero = torch.zeros(n, dtype=dtype)
        return zero, zero.clone(), zero.clone()
    first, last = pad + pml_width, n - 1 - pad - pml_width  # the outermost interior cells
    frac = torch.maximum((first - x) / pml_width, (x - last) / pml_width).clamp(0, 1)
    sigma = 3 * max_velocity * math.log(1 / PML_REFLECTION) / (2 * pml_width * dx) * frac**2
    alpha = math.pi * pml_frequency * (1 - frac)
    total = (sigma + alpha) * dt
    a = torch.exp(-total)
    b = torch.where(total > 0, sigma / (sigma + alpha).clamp_min(1e-300), torch.zeros_like(total)) * torch.expm1(-total)
    a = torch.where(frac > 0, a, torch.zeros_like(a))
    db = _d1(b[None, None, :], 2, accuracy, dx)[0, 0]
    return a.to(dtype), b.to(dtype), db.to(dtype)


def reference_forward(v: torch.Tensor, survey: Survey, accuracy: int = 4, pml_width: int = 20,
                      max_velocity: float | None = None, pml_frequency: float | None = None) -> torch.Tensor:
    """Shot gathers of the 2D acoustic wave equation by the reference scheme (module docstring).

    Same scheme, layer and source scaling as
    ``AcousticSimulator(survey, (v_min, max_velocity), accuracy, pml_width)``, with no
    checks of stability or dispersion; differentiable in ``v`` by autograd.

    Parameters
    ----------
    v
        Velocity (m/s), shape ``survey.shape``; float32 or float64 (the computation's dtype).
    survey
        Grid, time sampling, wavelet, sources and receivers.
    accuracy
        Spatial order of the finite differences: 2, 4, 6 or 8.
    pml_width
        Absorbing layer width (cells) on each side.
    max_velocity
        ``v_max`` (m/s) of the layer's damping; default ``v.max()``.  Pass the simulator's
        ``velocity_range[1]`` to reproduce it.
    pml_frequency
        Frequency (Hz) of the layer's ``alpha``; default the survey's peak frequency.

    Returns
    -------
    torch.Tensor
        ``d[s, r, n] = u_s(x_r, n dt)``, shape ``(n_shots, n_receivers, nt)``.
    """
    if accuracy not in SECOND_DERIVATIVE:
        raise InvalidParameterError(f"accuracy must be one of {sorted(SECOND_DERIVATIVE)}; got {accuracy!r}")
    if tuple(v.shape) != survey.shape:
        raise ShapeMismatchError(f"v must have shape {survey.shape}; got {tuple(v.shape)}")
    dx, dt, nt = survey.dx, survey.dt, survey.nt
    vmax = float(v.detach().max()) if max_velocity is None else float(max_velocity)
    fpml = survey.peak_frequency if pml_frequency is None else float(pml_frequency)
    p = pml_width + accuracy // 2
    vp = torch.nn.functional.pad(v[None, None], (p, p, p, p), mode="replicate")[0]  # (1, NZ, NX)
    nzp, nxp = vp.shape[1:]
    az, bz, dbz = (t[:, None] for t in pml_profile(survey.shape[0], pml_width, accuracy, dx, dt, vmax, fpml, v.dtype))
    ax, bx, dbx = (t[None, :] for t in pml_profile(survey.shape[1], pml_width, accuracy, dx, dt, vmax, fpml, v.dtype))
    prof = ((az, bz, dbz), (ax, bx, dbx))

    ns = survey.n_shots
    src = torch.as_tensor(survey.sources + p)
    rec = torch.as_tensor(survey.receivers + p)
    src_flat = src[:, 0] * nxp + src[:, 1]
    rec_flat = rec[:, 0] * nxp + rec[:, 1]
    # -v_s^2 dt^2 w_n added at the source cell after step n
    amp = -(vp.reshape(-1)[src_flat] ** 2)[:, None] * dt**2 * survey.wavelet.to(v.dtype)[None, :]  # (ns, nt)
    v2dt2 = vp**2 * dt**2
    onehot = torch.zeros(ns, nzp * nxp, dtype=v.dtype)
    onehot[torch.arange(ns), src_flat] = 1.0
    onehot = onehot.reshape(ns, nzp, nxp)

    u = torch.zeros(ns, nzp, nxp, dtype=v.dtype)
    u_prev = torch.zeros_like(u)
    psi = [torch.zeros_like(u), torch.zeros_like(u)]
    zeta = [torch.zeros_like(u), torch.zeros_like(u)]
    records = []
    for n in range(nt):
        records.append(u.reshape(ns, -1)[:, rec_flat])
        lap = 0
        new_psi, new_zeta = [], []
        for axis, (a, b, db) in zip((1, 2), prof):
            i = axis - 1
            du = _d1(u, axis, accuracy, dx)
            t = (1 + b) * _d2(u, axis, accuracy, dx) + db * du + _d1(a * psi[i], axis, accuracy, dx)
            lap = lap + (1 + b) * t + a * zeta[i]
            new_psi.append(b * du + a * psi[i])
            new_zeta.append(b * t + a * zeta[i])
        u, u_prev = v2dt2 * lap + 2 * u - u_prev + amp[:, n, None, None] * onehot, u
        psi, zeta = new_psi, new_zeta
    return torch.stack(records, dim=-1)
