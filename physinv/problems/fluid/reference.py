r"""jax-cfd 0.2.1 as an independent reference for the vorticity solver (optional extra ``fluid-reference``).

:func:`jaxcfd_simulate` runs jax-cfd's own pseudo-spectral Kolmogorov flow,
``jax_cfd.spectral.equations.NavierStokes2D`` (viscosity ``nu``, linear ``drag``, its 2/3
``brick_wall_filter_2d`` on the advection product) forced by
``jax_cfd.base.forcings.kolmogorov_forcing(grid, scale=A, k=k_f, offsets=((0, 0), (0, 0)))``
(the velocity forcing ``(A sin(k_f y), 0)`` on the grid nodes, whose curl is physinv's
``f = -A k_f cos(k_f y)``), stepped by ``jax_cfd.spectral.time_stepping.crank_nicolson_rk4``,
on the grid ``Grid((n, n), domain=((0, 2 pi), (0, 2 pi)))``.  Its arrays use 'ij' indexing with
``x_i = 2 pi i / n``, ``y_j = 2 pi j / n``: the same layout as :mod:`~physinv.problems.fluid.spectral`,
so no transposition is needed.  The step count and step follow :func:`~physinv.problems.fluid.spectral.simulate`
with an explicit ``dt``: ``n_steps = ceil(T / dt)``, ``dt = T / n_steps``.

physinv reproduces this run to round-off with ``simulate(..., scheme="cnrk4", dealias="jaxcfd")``
(``physinv validate fluid`` measures it).

Precision: jax computes in float32 unless ``jax_enable_x64`` is on; with ``x64=True`` (default)
:func:`jaxcfd_simulate` turns it on with ``jax.config.update("jax_enable_x64", True)``, a
process-wide jax setting that stays on.

Install: ``pip install 'physinv[fluid-reference]'`` (jax-cfd 0.2.1 with a CPU jax); without it
:func:`require_jaxcfd` raises :class:`~physinv.core.errors.MissingExtraError` naming the extra.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.extras import require

__all__ = ["EXTRA", "INSTALL_HINT", "jaxcfd_available", "jaxcfd_dealias_mask", "jaxcfd_simulate",
           "require_jaxcfd"]

#: The optional extra that installs jax-cfd.
EXTRA = "fluid-reference"
#: What to run to get it.
INSTALL_HINT = f"pip install 'physinv[{EXTRA}]'"


def require_jaxcfd() -> ModuleType:
    """Import ``jax_cfd`` (and ``jax``) or raise ``MissingExtraError`` naming ``fluid-reference``."""
    require("jax", EXTRA, "the jax-cfd reference solver")
    return require("jax_cfd", EXTRA, "the jax-cfd reference solver")


def jaxcfd_available() -> bool:
    """Whether jax-cfd imports (no error raised)."""
    try:
        require_jaxcfd()
    except Exception:  # MissingExtraError, or a broken install
        return False
    return True


def _modules():
    require_jaxcfd()
    import jax
    from jax_cfd.base import forcings, grids
    from jax_cfd.spectral import equations, time_stepping, utils

    return jax, forcings, grids, equations, time_stepping, utils


def _grid(grids, n: int):
    return grids.Grid((n, n), domain=((0.0, 2 * math.pi), (0.0, 2 * math.pi)))


def jaxcfd_dealias_mask(n: int) -> np.ndarray:
    """jax-cfd's 2/3 filter for the ``n x n`` grid: boolean ``(n, n // 2 + 1)`` (rfft2 layout)."""
    _, _, grids, _, _, utils = _modules()
    return np.asarray(utils.brick_wall_filter_2d(_grid(grids, int(n)))) != 0


def _to_numpy(w0) -> np.ndarray:
    if hasattr(w0, "detach"):  # torch tensor
        w0 = w0.detach().cpu().numpy()
    w0 = np.asarray(w0)
    if w0.ndim not in (2, 3) or w0.shape[-1] != w0.shape[-2] or w0.shape[-1] % 2 or w0.shape[-1] < 4:
        raise ShapeMismatchError(f"w0 must have shape (n, n) or (batch, n, n), n even >= 4; got {w0.shape}")
    if not np.isfinite(w0).all():
        raise InvalidParameterError("w0 contains NaN/Inf values")
    return w0


def jaxcfd_simulate(w0, T: float, nu: float = 1.0 / 200, forcing_amplitude: float = 1.0, drag: float = 0.0, *,
                    dt: float, forcing_wavenumber: int = 4, smooth: bool = True, x64: bool = True,
                    return_info: bool = False):
    """jax-cfd's spectral Kolmogorov run from ``w0`` to ``T`` (module docstring); numpy, physinv's layout.

    Parameters
    ----------
    w0
        Initial vorticity, ``(n, n)`` or ``(batch, n, n)`` (numpy or torch), ``w0[..., i, j] = w(x_i, y_j)``.
    T, nu, forcing_amplitude, drag, forcing_wavenumber
        As :func:`physinv.problems.fluid.spectral.simulate` (floats).
    dt
        Time step (required), reduced to ``T / ceil(T / dt)``.
    smooth
        jax-cfd's ``smooth`` (2/3 filter of the advection term; default on).
    x64
        Turn on jax's float64 (process-wide) and compute in float64; otherwise in float32 unless
        x64 is already on.
    return_info
        Also return ``{"dt": ..., "n_steps": ...}``.

    Notes
    -----
    The time loop is one jitted ``jax.lax.fori_loop`` (compiled on each call); a batch is ``jax.vmap``-ed.
    """
    jax, forcings, grids, equations, time_stepping, _ = _modules()
    if x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    w0 = _to_numpy(w0)
    T, dt = float(T), float(dt)
    if not (math.isfinite(T) and T > 0):
        raise InvalidParameterError(f"T must be finite and > 0; got {T}")
    if not (math.isfinite(dt) and dt > 0):
        raise InvalidParameterError(f"dt must be finite and > 0; got {dt}")
    n_steps = max(1, math.ceil(T / dt - 1e-9))
    step = T / n_steps
    n = w0.shape[-1]
    grid = _grid(grids, n)
    amp, k_f = float(forcing_amplitude), int(forcing_wavenumber)
    equation = equations.NavierStokes2D(
        viscosity=float(nu), grid=grid, drag=float(drag), smooth=bool(smooth),
        forcing_fn=lambda g: forcings.kolmogorov_forcing(g, scale=amp, k=k_f, offsets=((0, 0), (0, 0))))
    step_fn = time_stepping.crank_nicolson_rk4(equation, step)

    def run(w):
        w_hat = jax.lax.fori_loop(0, n_steps, lambda _, s: step_fn(s), jnp.fft.rfftn(w))
        return jnp.fft.irfftn(w_hat, s=(n, n))

    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    x = jnp.asarray(w0, dtype=dtype)
    fn = jax.jit(jax.vmap(run) if x.ndim == 3 else run)
    out = np.array(fn(x).block_until_ready())  # a writable copy
    return (out, {"dt": step, "n_steps": n_steps}) if return_info else out
