r"""``physinv validate fluid``: the pseudo-spectral vorticity solver against exact solutions and balances.

Checks (:mod:`physinv.problems.fluid.spectral`, float64, CPU):

* ``taylor_green_rel_error``: the Taylor-Green vortex ``w = 2 k cos(kx) cos(ky) e^{-(2 nu k^2 + alpha) t}``
  (an exact solution of the nonlinear equations without forcing: ``u.grad w = 0``), run with the
  default CFL step to ``T = 1``; the largest relative L2 error over the cases ``k = 1, nu = 0.1``
  and ``k = 2, nu = 0.02, drag 0.1`` on a 32^2 grid.  The integrating factor makes the decay exact,
  so the error is round-off (must be <= :data:`TG_TOL`).
* ``temporal_order``: the Taylor-Green vortex cannot show the time error, so a forced, nonlinear
  flow (smooth random ``w0``, Kolmogorov forcing, ``nu = 0.02``, 32^2, ``T = 1``) is run with
  ``dt = T/m`` and compared with ``dt = T/640`` (quick: ``T/320``); the least-squares log-log
  slope of the relative L2 error against ``dt`` must lie in :data:`ORDER_BOUNDS` (IF-RK4: 4).
* ``enstrophy_balance_rel_error`` and ``energy_balance_rel_error``: on a Kolmogorov flow whose
  state lies in the dealiased modes, the budgets

  .. math::

      \frac{d}{dt}\tfrac12\langle w^2\rangle = -\nu\langle|\nabla w|^2\rangle - \alpha\langle w^2\rangle + \langle f w\rangle,
      \qquad
      \frac{d}{dt}\tfrac12\langle|\mathbf u|^2\rangle = -\nu\langle w^2\rangle - \alpha\langle|\mathbf u|^2\rangle + \langle \psi f\rangle

  (advection conserves both in the truncated system) are integrated in time with Simpson's rule on
  the trajectory; the mismatch relative to the total dissipation must be <= :data:`BALANCE_TOL`.
* ``jaxcfd``: the cross-check against jax-cfd is not part of this version (placeholder string).

Run ``physinv validate fluid [--json] [--quick]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from physinv.core.validation import report_result, validation_parser, verdict
from physinv.fem.convergence import fit_rate
from physinv.problems.fluid.spectral import (
    _spectral,
    simulate,
    simulate_trajectory,
    smooth_random_vorticity,
    taylor_green,
    velocity,
    kolmogorov_forcing,
)

__all__ = ["BALANCE_TOL", "ORDER_BOUNDS", "TG_TOL", "validate_fluid", "format_report", "main",
           "taylor_green_errors", "temporal_order_study", "balance_study"]

TG_TOL = 1e-10
ORDER_BOUNDS = (3.8, 4.2)
BALANCE_TOL = 1e-6
JAXCFD_PLACEHOLDER = "not run: needs the jax-cfd extra (next step)"

TG_CASES = ({"k": 1, "nu": 0.1, "drag": 0.0}, {"k": 2, "nu": 0.02, "drag": 0.1})


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def taylor_green_errors(n: int = 32, T: float = 1.0) -> list[dict]:
    """Relative L2 error of the Taylor-Green vortex at ``T`` for each case of :data:`TG_CASES`."""
    rows = []
    for case in TG_CASES:
        w0 = taylor_green(n, 0.0, case["nu"], k=case["k"], drag=case["drag"])
        w, info = simulate(w0, T, case["nu"], 0.0, case["drag"], return_info=True)
        exact = taylor_green(n, T, case["nu"], k=case["k"], drag=case["drag"])
        rows.append({**case, "n": n, "T": T, "n_steps": info["n_steps"], "rel_error": _rel(w, exact)})
    return rows


def _forced_initial(n: int = 32) -> torch.Tensor:
    return 0.5 * smooth_random_vorticity(n, torch.Generator().manual_seed(0), modes=4)


def temporal_order_study(quick: bool = False, n: int = 32, T: float = 1.0, nu: float = 0.02) -> dict:
    """Errors of ``dt = T/m`` against a fine-step reference on a forced nonlinear flow; fitted order."""
    w0 = _forced_initial(n)
    ms = [10, 20, 40] if quick else [10, 20, 40, 80]
    m_ref = 320 if quick else 640
    ref = simulate(w0, T, nu, 1.0, dt=T / m_ref)
    errors = [_rel(simulate(w0, T, nu, 1.0, dt=T / m), ref) for m in ms]
    fit = fit_rate([T / m for m in ms], errors)
    return {"steps": ms, "reference_steps": m_ref, "n": n, "nu": nu, **fit.as_dict()}


def _mean(a: torch.Tensor) -> float:
    return float(a.mean())


def balance_study(quick: bool = False, n: int = 32, T: float = 1.0, nu: float = 0.02, drag: float = 0.05) -> dict:
    """Enstrophy and energy budgets of a Kolmogorov flow, integrated with Simpson's rule on the trajectory."""
    from scipy.integrate import simpson

    ops = _spectral(n, torch.float64, torch.device("cpu"))
    w0 = torch.fft.irfft2(torch.fft.rfft2(_forced_initial(n)) * ops.mask, s=(n, n))  # in the kept modes
    samples = 21 if quick else 41
    times = np.linspace(0.0, T, samples)
    traj = simulate_trajectory(w0, times, nu, 1.0, drag, dt=T / (8 * (samples - 1)))
    f = kolmogorov_forcing(n)
    Z, E, dZ, dE = [], [], [], []
    for w in traj:
        w_hat = torch.fft.rfft2(w)
        wx = torch.fft.irfft2(1j * ops.kx * w_hat, s=(n, n))
        wy = torch.fft.irfft2(1j * ops.ky * w_hat, s=(n, n))
        psi = torch.fft.irfft2(w_hat * ops.inv_k2, s=(n, n))
        u, v = velocity(w)
        Z.append(0.5 * _mean(w * w))
        E.append(0.5 * _mean(u * u + v * v))
        dZ.append(-nu * _mean(wx * wx + wy * wy) - drag * _mean(w * w) + _mean(f * w))
        dE.append(-nu * _mean(w * w) - drag * _mean(u * u + v * v) + _mean(psi * f))
    out = {"n": n, "T": T, "nu": nu, "drag": drag, "samples": samples}
    for name, q, rate in (("enstrophy", Z, dZ), ("energy", E, dE)):
        change, integral = q[-1] - q[0], float(simpson(rate, x=times))
        scale = float(simpson(np.abs(rate), x=times))
        out[f"{name}_change"] = change
        out[f"{name}_budget_integral"] = integral
        out[f"{name}_balance_rel_error"] = abs(change - integral) / scale
    return out


def validate_fluid(quick: bool = False) -> dict:
    """Run every check (module docstring); JSON-serializable result with ``passed``."""
    seconds = {}
    t0 = time.perf_counter()
    tg = taylor_green_errors()
    seconds["taylor_green"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    order = temporal_order_study(quick)
    seconds["temporal_order"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    balance = balance_study(quick)
    seconds["balance"] = time.perf_counter() - t0
    tg_err = max(r["rel_error"] for r in tg)
    result = {
        "taylor_green_rel_error": tg_err,
        "temporal_order": order["rate"],
        "enstrophy_balance_rel_error": balance["enstrophy_balance_rel_error"],
        "energy_balance_rel_error": balance["energy_balance_rel_error"],
        "jaxcfd": JAXCFD_PLACEHOLDER,
        "scheme": "pseudo-spectral, symmetric 2/3 dealiasing (|kx|,|ky| < n/3), integrating-factor RK4",
        "taylor_green_table": tg,
        "temporal_order_table": order,
        "balance": balance,
        "quick": bool(quick),
    }
    lo, hi = ORDER_BOUNDS
    result["passed"] = bool(tg_err <= TG_TOL and lo <= order["rate"] <= hi
                            and balance["enstrophy_balance_rel_error"] <= BALANCE_TOL
                            and balance["energy_balance_rel_error"] <= BALANCE_TOL)
    result["seconds"] = seconds
    return result


def format_report(result: dict) -> str:
    lo, hi = ORDER_BOUNDS
    lines = ["Fluid (2D Navier-Stokes, vorticity, pseudo-spectral IF-RK4) validation", ""]
    lines.append("Taylor-Green vortex vs analytic decay (CFL step, T = 1)")
    for r in result["taylor_green_table"]:
        lines.append(f"  k={r['k']} nu={r['nu']:g} drag={r['drag']:g} n={r['n']} steps={r['n_steps']}: "
                     f"rel L2 error {r['rel_error']:.3e}")
    e = result["taylor_green_rel_error"]
    lines.append(f"  taylor_green_rel_error = {e:.3e}   (expected <= {TG_TOL:g}: {verdict(e <= TG_TOL)})")
    lines.append("")
    o = result["temporal_order_table"]
    lines.append(f"Temporal order, forced nonlinear flow at {o['n']}^2 vs dt = T/{o['reference_steps']}")
    lines.append(f"  {'steps':>6}  {'dt':>10}  {'rel error':>11}  {'order':>6}")
    for k, (m, h, err) in enumerate(zip(o["steps"], o["h"], o["error"])):
        rate = f"{o['pairwise_rates'][k - 1]:6.3f}" if k else f"{'-':>6}"
        lines.append(f"  {m:6d}  {h:10.4e}  {err:11.4e}  {rate}")
    r = result["temporal_order"]
    lines.append(f"  temporal_order = {r:.4f}   (expected in [{lo}, {hi}]: {verdict(lo <= r <= hi)})")
    lines.append("")
    b = result["balance"]
    lines.append(f"Kolmogorov flow budgets (n={b['n']}, nu={b['nu']:g}, drag={b['drag']:g}, T={b['T']:g}, Simpson on "
                 f"{b['samples']} samples)")
    for name in ("enstrophy", "energy"):
        err = b[f"{name}_balance_rel_error"]
        lines.append(f"  {name}: change {b[f'{name}_change']:.6e}, budget integral {b[f'{name}_budget_integral']:.6e}, "
                     f"rel mismatch {err:.2e}   ({verdict(err <= BALANCE_TOL)})")
    lines.append("")
    lines.append(f"jax-cfd cross-check: {result['jaxcfd']}")
    lines.append("")
    lines.append("PASSED" if result["passed"] else "FAILED")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: ``physinv validate fluid [--json] [--quick]``."""
    parser = validation_parser("fluid", "Taylor-Green vortex, temporal order and Kolmogorov budgets of the "
                                        "pseudo-spectral vorticity solver.")
    parser.add_argument("--quick", action="store_true", help="fewer refinement levels and samples")
    args = parser.parse_args(argv)
    return report_result(validate_fluid(args.quick), args.json, format_report)


if __name__ == "__main__":
    sys.exit(main())
