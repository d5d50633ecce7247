"""``physinv validate seismic``: the acoustic simulator against theory, an independent code and itself.

The simulator (:class:`~physinv.problems.seismic.simulator.AcousticSimulator`,
Deepwave's ``scalar`` propagator) solves, for a source cell ``x_s``,

    (1 / v^2) u_tt - Laplacian u = -dx^2 w(t) delta(x - x_s)

(Deepwave adds ``-v(x_s)^2 dt^2 w_n`` to the source cell after step ``n``:
a discrete delta ``e_s / dx^2`` times ``-dx^2 w``; derived in
:mod:`physinv.problems.seismic.reference`).  The study reports

* ``green_order_error`` (required, <= :data:`ORDER_TOL`): homogeneous medium
  ``v = 2000 m/s``, Ricker ``w`` of 10 Hz delayed by 0.2 s, receivers 200 m
  from the source along an axis and 283 m along the diagonal.  The analytic
  trace is the 2D Green's function convolved with ``w``, computed in the
  frequency domain (time dependence ``exp(i omega t)``):

      u(r, t) = -dx^2 F^{-1}[ W(omega) (-i/4) H0^(2)(omega~ r / v) ],
      omega~ = (2 / dt) sin(omega dt / 2),

  with ``W`` the transform of the sampled wavelet.  ``omega~`` instead of
  ``omega`` makes this the exact solution of the leapfrog-in-time,
  continuous-in-space problem (the second difference in time has symbol
  ``-omega~^2``), so the remaining error is the spatial one alone, whatever
  ``dt``.  The FFT period is >= :data:`FFT_PERIOD` s so that the aliased
  ``1/t`` tail of the 2D Green's function stays below 1e-10 relative
  (``green.analytic_uncertainty``, period doubled).  Walls are placed so that
  no reflection reaches a receiver in the window.  For each accuracy order
  ``p`` the relative L2 error of the traces (worst receiver) is fitted to
  ``C dx^q`` over the grid spacings; ``green_order_error = max_p |q - p|``.
  ``green.time_error_vs_continuous`` is the error against the
  continuous-time Green's function at the finest grid (the O(dt^2) leapfrog
  error, for information).
* ``crosscheck_rel_diff`` (required, <= :data:`CROSSCHECK_TOL`): Deepwave
  (compiled) vs :func:`~physinv.problems.seismic.reference.reference_forward`
  on a layered model, relative L2 of the gathers, worst over accuracies 2-8;
  ``gradient_rel_diff_eager`` (required, <= :data:`CROSSCHECK_TOL`) and
  ``gradient_rel_diff_compiled`` (information): velocity gradients of
  ``J = 1/2 ||F(v) - d||^2`` by reference autograd vs the simulator's eager and
  compiled backends.
* ``pml_reflection_max``: reflected / direct amplitude at receivers near the
  absorbing layer (the small model with the layer minus a model large enough
  that nothing comes back in the window) for a few layer widths, the whole
  record (required <= :data:`PML_TOL`; the echo from the rigid wall behind
  the layer is attenuated by the design reflection 1e-3 at normal incidence)
  and, per width, the part before that echo (``pml.widths[W].before_wall_echo``).
* ``born_dot_rel`` (required, <= :data:`DOT_TOL_FLOAT64`): Born dot-product test
  ``|<J dv, r> - <dv, J^T r>| / max(|.|, |.|)`` with the eager backend in float64
  (exact adjoint); ``born_dot_rel_compiled_float32`` / ``_float64`` on an
  OpenFWI record (1000 steps): information, compared with 1e-5 / 1e-10.
* ``taylor_slope`` (required, in :data:`TAYLOR_BOUNDS`): log-log slope of
  ``|J(v + e h) - J(v) - e <g, h>|`` with the compiled gradient in float64;
  ``gradient_compiled_vs_exact_rel``: ``||g_compiled - g_eager|| / ||g_eager||``
  (information).

Run it as ``physinv validate seismic [--json] [--quick]``.  The study runs
single-threaded by default (``--threads``): its grids are small, and
Deepwave's OpenMP kernels slow down by orders of magnitude when their
threads compete for oversubscribed cores.
"""

from __future__ import annotations

import math
import sys
import time
import warnings

import numpy as np
import torch

from physinv.core.validation import report_result, validation_parser, verdict
from physinv.fem.convergence import fit_rate
from physinv.problems.seismic.reference import PML_REFLECTION, reference_forward
from physinv.problems.seismic.simulator import AcousticSimulator, _layered
from physinv.problems.seismic.survey import Survey, openfwi_survey, ricker, surface_line

__all__ = ["CROSSCHECK_TOL", "DOT_TOL_FLOAT64", "ORDER_TOL", "PML_TOL", "TAYLOR_BOUNDS", "analytic_trace",
           "born_dot_test", "crosscheck", "format_report", "green_study", "main", "pml_study", "taylor_study",
           "validate_seismic"]

#: Largest accepted |fitted - scheme order| of the Green's function study.
ORDER_TOL = 0.2
#: Largest accepted relative difference Deepwave vs the reference (float64: round-off).
CROSSCHECK_TOL = 1e-10
#: Largest accepted Born dot-product mismatch of the exact (eager) adjoint in float64.
DOT_TOL_FLOAT64 = 1e-10
#: The issue's dot-product thresholds, applied to the compiled adjoint for information.
DOT_TOL_COMPILED = {"float32": 1e-5, "float64": 1e-10}
#: Accepted interval of the Taylor remainder slope.
TAYLOR_BOUNDS = (1.9, 2.1)
#: Largest accepted reflected / direct amplitude of the absorbing layer.
PML_TOL = 1e-2
#: Shortest FFT period (s) of the analytic traces.
FFT_PERIOD = 400.0

# Green's function study: medium, wavelet, geometry, time step.
GREEN = {"velocity": 2000.0, "peak_frequency": 10.0, "delay": 0.2, "offset": 200.0, "dt": 5e-4}
MODES = {
    "full": {"orders": (2, 4, 6, 8), "cells_per_offset": (20, 25, 30, 40, 50), "pml_widths": (10, 20, 40),
             "pml_pad": 120, "pml_nt": 1000, "openfwi_shots": 5},
    "quick": {"orders": (2, 4, 6, 8), "cells_per_offset": (20, 25, 30), "pml_widths": (10, 20),
              "pml_pad": 100, "pml_nt": 700, "openfwi_shots": 1},
}
F64 = torch.float64


def _rel(a, b) -> float:
    """``||a - b|| / ||b||``."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def analytic_trace(r: float, nt: int, dt: float, *, velocity: float, peak_frequency: float, delay: float,
                   leapfrog: bool = True, period: float = FFT_PERIOD) -> np.ndarray:
    """``u(r, k dt)``, ``k < nt``, of ``(1/v^2) u_tt - Laplacian u = -w(t) delta(x)`` (2D, Ricker ``w``).

    ``u = -(G * w)`` with ``G(r, t) = H(t - r/v) / (2 pi sqrt(t^2 - r^2/v^2))``, evaluated as
    ``F^{-1}[W (-i/4) H0^(2)(omega~ r / v)]`` on an FFT grid of period >= ``period`` s.  With
    ``leapfrog`` the frequency is ``omega~ = 2 sin(omega dt / 2) / dt``: the exact trace of the
    leapfrog scheme with a continuous Laplacian.  Multiply by ``dx^2`` for Deepwave's units.
    """
    from scipy.special import hankel2

    n = 1 << int(math.ceil(math.log2(max(16 * nt, period / dt))))
    spectrum = np.fft.rfft(ricker(peak_frequency, n, dt, delay).numpy())
    omega = 2 * np.pi * np.fft.rfftfreq(n, dt)
    if leapfrog:
        omega = 2 / dt * np.sin(omega * dt / 2)
    green = np.zeros_like(spectrum)
    green[1:] = -0.25j * hankel2(0, omega[1:] * r / velocity)  # W(0) = 0: the Ricker has zero mean
    return -np.fft.irfft(spectrum * green, n)[:nt]


def green_study(orders=(2, 4, 6, 8), cells_per_offset=(20, 25, 30, 40, 50)) -> dict:
    """Homogeneous-medium traces vs the analytic Green's function; fitted spatial order per accuracy."""
    g = GREEN
    vel, f, delay, offset, dt = g["velocity"], g["peak_frequency"], g["delay"], g["offset"], g["dt"]
    distances = (offset, offset * math.sqrt(2))
    t_end = distances[1] / vel + 2 * delay  # the wavelet has passed the farthest receiver
    nt = int(round(t_end / dt)) + 1
    # a wall reflection travels >= 2 L - r_max; keep it 10 % beyond the window
    half_width = (1.1 * vel * t_end + offset) / 2
    kw = dict(velocity=vel, peak_frequency=f, delay=delay)
    exact = [analytic_trace(r, nt, dt, **kw) for r in distances]
    continuous = [analytic_trace(r, nt, dt, leapfrog=False, **kw) for r in distances]
    doubled = [analytic_trace(r, nt, dt, period=2 * FFT_PERIOD, **kw) for r in distances]
    uncertainty = max(_rel(a, b) for a, b in zip(exact, doubled))
    wavelet = ricker(f, nt, dt, delay)
    result = {"setup": {**g, "receivers_m": [[0.0, offset], [offset, offset]], "nt": nt, "t_end": t_end,
                        "half_width_m": half_width},
              "analytic_uncertainty": uncertainty, "orders": {}}
    worst = 0.0
    for p in orders:
        dxs, errors, time_errors = [], [], []
        for k in cells_per_offset:
            dx = offset / k
            h = int(math.ceil(half_width / dx))
            survey = Survey((2 * h + 1, 2 * h + 1), dx, dt, nt, f, np.array([[h, h]]),
                            np.array([[h, h + k], [h + k, h + k]]), wavelet=wavelet)
            sim = AcousticSimulator(survey, (vel / 2, vel), accuracy=p, pml_width=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traces = sim(torch.full(survey.shape, vel, dtype=F64))[0].numpy() / dx**2
            dxs.append(dx)
            errors.append(max(_rel(traces[i], exact[i]) for i in range(2)))
            time_errors.append(max(_rel(traces[i], continuous[i]) for i in range(2)))
        fit = fit_rate(dxs, errors)
        worst = max(worst, abs(fit.rate - p))
        result["orders"][str(p)] = {"dx": dxs, "error": errors, "pairwise_rates": list(fit.pairwise_rates),
                                    "rate": fit.rate, "time_error_vs_continuous": time_errors[-1]}
    result["order_error"] = worst
    return result


def _crosscheck_survey() -> tuple[Survey, tuple[float, float]]:
    shape = (30, 40)
    return Survey(shape, 10.0, 1e-3, 400, 15.0, surface_line(3, shape[1]), surface_line(10, shape[1])), (1500.0,
                                                                                                          3000.0)


def crosscheck(pml_width: int = 10) -> dict:
    """Deepwave vs :func:`reference_forward`: gathers for accuracies 2-8, gradients at accuracy 4."""
    survey, vrange = _crosscheck_survey()
    v_true = _layered(survey.shape, F64, "cpu")
    v0 = 2000.0 + 400.0 * torch.linspace(0, 1, survey.shape[0], dtype=F64)[:, None].expand(survey.shape)
    forward = {}
    for p in (2, 4, 6, 8):
        sim = AcousticSimulator(survey, vrange, accuracy=p, pml_width=pml_width)
        with torch.no_grad():
            d = sim(v_true)
            forward[str(p)] = float((d - reference_forward(v_true, survey, p, pml_width, vrange[1])).norm() / d.norm())
    observed = AcousticSimulator(survey, vrange, accuracy=4, pml_width=pml_width)(v_true).detach()

    def gradient(fn):
        v = v0.clone().requires_grad_()
        (0.5 * (fn(v) - observed).square().sum()).backward()
        return v.grad

    g_ref = gradient(lambda v: reference_forward(v, survey, 4, pml_width, vrange[1]))
    g_eager = gradient(AcousticSimulator(survey, vrange, accuracy=4, pml_width=pml_width, backend="eager"))
    g_comp = gradient(AcousticSimulator(survey, vrange, accuracy=4, pml_width=pml_width))
    return {"forward_rel_diff": forward, "rel_diff": max(forward.values()),
            "gradient_rel_diff_eager": float((g_eager - g_ref).norm() / g_ref.norm()),
            "gradient_rel_diff_compiled": float((g_comp - g_ref).norm() / g_ref.norm()),
            "setup": {**survey.describe(), "pml_width": pml_width, "velocity_range": list(vrange)}}


def pml_study(widths=(10, 20, 40), pad: int = 120, nt: int = 1000) -> dict:
    """Reflected / direct amplitude of the absorbing layer for each width (homogeneous 2000 m/s, 15 Hz).

    Model of 60 x 60 cells of 10 m, source at its centre, receivers 10, 20 and 29 cells to the
    right (the last one next to the layer); accuracy 4, ``dt = 1 ms``.  The reference is the
    same model padded by ``pad`` cells, whose own layer is too far to send anything back within
    ``nt`` steps; the difference of the two records is what the small model's layer returns.

    Two numbers per width: ``max`` over the whole record, which includes the echo from the rigid
    wall behind the layer (a round trip through the layer, attenuated by the design ``R = 1e-3``
    at normal incidence whatever the width), and ``before_wall_echo``, the part that arrives
    before that echo can (the reflection of the layer's discretization, which falls with width).
    """
    n, c, vel, dx, dt = 60, 30, 2000.0, 10.0, 1e-3
    offsets = (10, 20, 29)

    def gathers(size: int, shift: int, width: int) -> torch.Tensor:
        s = Survey((size, size), dx, dt, nt, 15.0, np.array([[c + shift, c + shift]]),
                   np.array([[c + shift, c + shift + k] for k in offsets]))
        sim = AcousticSimulator(s, (1000.0, vel), accuracy=4, pml_width=width)
        with torch.no_grad():
            return sim(torch.full(s.shape, vel, dtype=F64))[0]

    per_width = {}
    for w in widths:
        small, big = gathers(n, 0, w), gathers(n + 2 * pad, pad, w)
        total, early = [], []
        for i, k in enumerate(offsets):
            diff, direct = (small[i] - big[i]).abs(), float(big[i].abs().max())
            # shortest path via the wall behind the right-hand layer: source -> wall -> receiver
            echo = int(((n - 1 - c) + w + 1 + (n - 1 - c - k) + w + 1) * dx / vel / dt)
            total.append(float(diff.max()) / direct)
            early.append(float(diff[:echo].max()) / direct)
        per_width[str(w)] = {"max": max(total), "per_receiver": total, "before_wall_echo": max(early),
                             "before_wall_echo_per_receiver": early}
    return {"widths": per_width, "max": max(r["max"] for r in per_width.values()),
            "design_reflection": PML_REFLECTION, "receiver_offsets_cells": list(offsets),
            "setup": {"cells": n, "dx": dx, "dt": dt, "nt": nt, "velocity": vel, "peak_frequency": 15.0,
                      "reference_pad_cells": pad}}


def born_dot_test(sim: AcousticSimulator, v: torch.Tensor, seed: int = 0) -> float:
    """``|<J dv, r> - <dv, J^T r>| / max(|<J dv, r>|, |<dv, J^T r>|)`` with random ``dv`` (m/s) and ``r``."""
    gen = torch.Generator().manual_seed(seed)
    dv = (50.0 * torch.randn(v.shape, generator=gen, dtype=F64)).to(v.dtype)
    r = torch.randn(sim.survey.data_shape, generator=gen, dtype=F64).to(v.dtype)
    with torch.no_grad():
        lhs = float((sim.born(v, dv).double() * r.double()).sum())
    rhs = float((dv.double() * sim.born_adjoint(v, r).double()).sum())
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


def born_study(openfwi_shots: int = 5) -> dict:
    """Eager (exact adjoint) dot test in float64; compiled dot test on an OpenFWI record in float32/64."""
    shape = (20, 30)
    small = Survey(shape, 10.0, 1e-3, 300, 15.0, surface_line(2, shape[1]), surface_line(8, shape[1]))
    eager = born_dot_test(AcousticSimulator(small, (1500.0, 3000.0), pml_width=10, backend="eager"),
                          _layered(shape, F64, "cpu"))
    survey = openfwi_survey(n_shots=openfwi_shots)
    sim = AcousticSimulator(survey, (1500.0, 4500.0))
    v = _layered(survey.shape, F64, "cpu")
    compiled = {name: born_dot_test(sim, v.to(dtype)) for name, dtype in (("float32", torch.float32),
                                                                            ("float64", F64))}
    return {"eager_float64": eager, "compiled": compiled,
            "setup": {"eager": small.describe(), "compiled": survey.describe()}}


def taylor_study() -> dict:
    """Taylor test of ``J(v) = 1/2 ||F(v) - d||^2`` with the compiled gradient (float64); compiled vs eager gradient."""
    survey, vrange = _crosscheck_survey()
    d = AcousticSimulator(survey, vrange, accuracy=4, pml_width=10)(_layered(survey.shape, F64, "cpu")).detach()
    v0 = 2000.0 + 400.0 * torch.linspace(0, 1, survey.shape[0], dtype=F64)[:, None].expand(survey.shape)
    compiled = AcousticSimulator(survey, vrange, accuracy=4, pml_width=10)
    eager = AcousticSimulator(survey, vrange, accuracy=4, pml_width=10, backend="eager")

    def misfit(sim, v):
        return 0.5 * (sim(v) - d).square().sum()

    grads = {}
    for name, sim in (("compiled", compiled), ("eager", eager)):
        v = v0.clone().requires_grad_()
        misfit(sim, v).backward()
        grads[name] = v.grad
    h = 100.0 * torch.randn(survey.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        j0 = float(misfit(compiled, v0))
        slope_term = float((grads["compiled"] * h).sum())
        eps = [2.0**-k for k in range(1, 7)]
        remainders = [abs(float(misfit(compiled, v0 + e * h)) - j0 - e * slope_term) for e in eps]
    fit = fit_rate(eps, remainders)
    return {"slope": fit.rate, "eps": eps, "remainder": remainders, "pairwise_rates": list(fit.pairwise_rates),
            "gradient_compiled_vs_exact_rel": float((grads["compiled"] - grads["eager"]).norm()
                                                    / grads["eager"].norm())}


def validate_seismic(quick: bool = False, threads: int | None = 1) -> dict:
    """Run the study (module docstring); ``quick`` uses fewer grids, layer widths and shots (tests).

    ``threads``: torch / OpenMP threads during the study (restored afterwards; ``None`` leaves them).
    Returns a JSON-serializable dict; ``passed`` is True when every required check holds.
    """
    from physinv.core.extras import require

    require("deepwave", "seismic", "the seismic validation")
    mode = MODES["quick" if quick else "full"]
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    seconds = {}
    try:
        t0 = time.perf_counter()
        green = green_study(mode["orders"], mode["cells_per_offset"])
        seconds["green"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cross = crosscheck()
        seconds["crosscheck"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pml = pml_study(mode["pml_widths"], mode["pml_pad"], mode["pml_nt"])
        seconds["pml"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        born = born_study(mode["openfwi_shots"])
        seconds["born"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        taylor = taylor_study()
        seconds["taylor"] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)
    checks = {
        "green_order_error": green["order_error"] <= ORDER_TOL,
        "crosscheck_rel_diff": cross["rel_diff"] <= CROSSCHECK_TOL,
        "gradient_rel_diff_eager": cross["gradient_rel_diff_eager"] <= CROSSCHECK_TOL,
        "pml_reflection_max": pml["max"] <= PML_TOL,
        "born_dot_rel": born["eager_float64"] <= DOT_TOL_FLOAT64,
        "taylor_slope": TAYLOR_BOUNDS[0] <= taylor["slope"] <= TAYLOR_BOUNDS[1],
    }
    return {
        "green_order_error": green["order_error"],
        "crosscheck_rel_diff": cross["rel_diff"],
        "gradient_rel_diff_eager": cross["gradient_rel_diff_eager"],
        "gradient_rel_diff_compiled": cross["gradient_rel_diff_compiled"],
        "pml_reflection_max": pml["max"],
        "pml_reflection": {w: {"whole_record": r["max"], "before_wall_echo": r["before_wall_echo"]}
                           for w, r in pml["widths"].items()},
        "born_dot_rel": born["eager_float64"],
        "born_dot_rel_compiled_float32": born["compiled"]["float32"],
        "born_dot_rel_compiled_float64": born["compiled"]["float64"],
        "taylor_slope": taylor["slope"],
        "gradient_compiled_vs_exact_rel": taylor["gradient_compiled_vs_exact_rel"],
        "checks": checks,
        "passed": bool(all(checks.values())),
        "green": green,
        "crosscheck": cross,
        "pml": pml,
        "born": born,
        "taylor": taylor,
        "mode": "quick" if quick else "full",
        "seconds": seconds,
    }


def format_report(result: dict) -> str:
    """Readable plain-text report of a :func:`validate_seismic` result."""
    green = result["green"]
    s = green["setup"]
    lines = [f"Seismic validation ({result['mode']} mode): Deepwave scalar propagator",
             "",
             f"Green's function: v = {s['velocity']:g} m/s, Ricker {s['peak_frequency']:g} Hz (delay "
             f"{s['delay']:g} s), receivers at 200 m (axis) and 283 m (diagonal), dt = {s['dt']:g} s;",
             "  reference = analytic trace of the leapfrog-in-time, continuous-in-space problem "
             f"(FFT aliasing {green['analytic_uncertainty']:.1e})",
             f"  {'order':>5}  {'dx (m)':>7}  {'rel L2 error':>12}  {'pairwise':>8}"]
    for p, row in green["orders"].items():
        for k, (dx, e) in enumerate(zip(row["dx"], row["error"])):
            rate = f"{row['pairwise_rates'][k - 1]:8.3f}" if k else f"{'-':>8}"
            lines.append(f"  {p:>5}  {dx:7.3f}  {e:12.4e}  {rate}")
        lines.append(f"  {p:>5}  fitted order {row['rate']:.3f}   (|q - {p}| = {abs(row['rate'] - int(p)):.3f}; "
                     f"error vs continuous-time Green at finest dx: {row['time_error_vs_continuous']:.2e})")
    lo, hi = TAYLOR_BOUNDS
    born32, born64 = result["born_dot_rel_compiled_float32"], result["born_dot_rel_compiled_float64"]

    def info(value, tol):
        return f"info: {'within' if value <= tol else 'ABOVE'} {tol:g}"

    rows = [
        ("green_order_error", result["green_order_error"], f"<= {ORDER_TOL}",
         verdict(result["checks"]["green_order_error"])),
        ("crosscheck_rel_diff", result["crosscheck_rel_diff"], f"<= {CROSSCHECK_TOL:g}",
         verdict(result["checks"]["crosscheck_rel_diff"])),
        ("gradient_rel_diff_eager", result["gradient_rel_diff_eager"], f"<= {CROSSCHECK_TOL:g}",
         verdict(result["checks"]["gradient_rel_diff_eager"])),
        ("gradient_rel_diff_compiled", result["gradient_rel_diff_compiled"], "-", "info"),
        ("pml_reflection_max", result["pml_reflection_max"], f"<= {PML_TOL:g}",
         verdict(result["checks"]["pml_reflection_max"])),
        ("born_dot_rel (eager, float64)", result["born_dot_rel"], f"<= {DOT_TOL_FLOAT64:g}",
         verdict(result["checks"]["born_dot_rel"])),
        ("born_dot_rel_compiled_float32", born32, "-", info(born32, DOT_TOL_COMPILED["float32"])),
        ("born_dot_rel_compiled_float64", born64, "-", info(born64, DOT_TOL_COMPILED["float64"])),
        ("taylor_slope (compiled, float64)", result["taylor_slope"], f"in [{lo}, {hi}]",
         verdict(result["checks"]["taylor_slope"])),
        ("gradient_compiled_vs_exact_rel", result["gradient_compiled_vs_exact_rel"], "-", "info"),
    ]
    lines += ["", f"  {'quantity':<34}  {'value':>11}  {'expected':>12}  verdict"]
    for name, value, expected, word in rows:
        lines.append(f"  {name:<34}  {value:11.4e}  {expected:>12}  {word}")
    lines += ["", "PML reflection (reflected / direct amplitude; design R = "
              f"{result['pml']['design_reflection']:g} at normal incidence), receivers "
              f"{result['pml']['receiver_offsets_cells']} cells right of the source:"]
    for w, row in result["pml"]["widths"].items():
        lines.append(f"  width {w:>3} cells: whole record " + ", ".join(f"{x:.2e}" for x in row["per_receiver"])
                     + "; before the echo from the wall behind the layer "
                     + ", ".join(f"{x:.2e}" for x in row["before_wall_echo_per_receiver"]))
    lines += ["", f"seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result["seconds"].items()),
              "PASSED" if result["passed"] else "FAILED"]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: ``physinv validate seismic [--json] [--quick] [--threads N]``."""
    parser = validation_parser("seismic", "Deepwave's acoustic propagator vs the analytic Green's function, an "
                                          "independent torch propagator, PML, Born and gradient tests.")
    parser.add_argument("--quick", action="store_true", help="fewer grids, layer widths and shots (about 4x faster)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads during the study (default 1; 0 leaves the current setting)")
    args = parser.parse_args(argv)
    result = validate_seismic(quick=args.quick, threads=args.threads or None)
    return report_result(result, args.json, format_report)


if __name__ == "__main__":
    sys.exit(main())
