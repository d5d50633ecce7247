"""Fluid benchmark: the spectral vorticity solver vs jax-cfd, its checkpointed gradient, and the smoke projection.

Three measurements, each side by side in one run (ratios, not seconds, are the result; the
machine is shared and noisy, so every time is the best of ``--repeat`` rounds with the
competitors interleaved):

1. **Spectral Navier-Stokes** (Kolmogorov flow, Re = 200, 1 unit of time, dt = 0.002 (stable up to 256^2), float64,
   one thread per library): physinv's :func:`~physinv.problems.fluid.spectral.simulate` (eager
   torch, IF-RK4), its forward + gradient (reverse mode through every step), and jax-cfd's
   jitted Crank-Nicolson-RK4 (:func:`~physinv.problems.fluid.reference.jaxcfd_simulate`, its
   compile time reported apart, the timed call after a warm-up), at each ``--sizes`` (default
   64, 128, 256).  jax-cfd is the optional extra ``fluid-reference``; without it its rows say so.
2. **Memory of forward + gradient** over 1 unit of time at ``--memory-size`` (default 128):
   without and with activation checkpointing (``checkpoint_segments``): the bytes autograd saves
   between forward and backward (``saved_tensors_hooks``, distinct storages) and the peak
   resident set of a fresh child process running forward + backward (``VmHWM``).
3. **Smoke pressure projection** (64 x 64 MAC grid with an obstacle, 10 steps): time per step and
   max |div u| after projection with the direct, CG, AMG-CG and DCDM solvers (DCDM with the
   Jacobi direction unless a trained network is given with ``--dcdm``).

    python benchmarks/fluid.py                 # about two minutes on 2 cores
    python benchmarks/fluid.py --quick         # 32^2 and 64^2, seconds
    python benchmarks/fluid.py --json out.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from physinv.core.io import atomic_write_json
from physinv.problems.fluid.reference import jaxcfd_available, jaxcfd_simulate
from physinv.problems.fluid.smoke import SmokeSimulator
from physinv.problems.fluid.spectral import simulate, smooth_random_vorticity

T, DT, NU = 1.0, 0.002, 1.0 / 200


def initial(n: int) -> torch.Tensor:
    return 2.0 * smooth_random_vorticity(n, torch.Generator().manual_seed(0), dtype=torch.float64)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def spectral(sizes, repeat: int) -> dict:
    rows = {}
    have_jax = jaxcfd_available()
    for n in sizes:
        w0 = initial(n)
        run = lambda: simulate(w0, T, NU, dt=DT)  # noqa: E731

        def gradient():
            w = w0.clone().requires_grad_(True)
            simulate(w, T, NU, dt=DT).pow(2).sum().backward()

        runs = {"physinv_forward_s": run, "physinv_forward_gradient_s": gradient}
        if have_jax:
            t0 = time.perf_counter()
            reference = jaxcfd_simulate(w0, T, NU, dt=DT)  # compiles
            first_call = time.perf_counter() - t0
            runs["jaxcfd_forward_s"] = lambda: jaxcfd_simulate(w0, T, NU, dt=DT)
        run()
        row = {key: float("inf") for key in runs}
        for _ in range(repeat):  # interleaved rounds: interference hits every competitor alike
            for key, fn in runs.items():
                row[key] = min(row[key], best(fn, 1))
        if have_jax:
            row["jaxcfd_first_call_s"] = first_call
            row["physinv_over_jaxcfd"] = row["physinv_forward_s"] / row["jaxcfd_forward_s"]
            mine = simulate(w0, T, NU, dt=DT, scheme="cnrk4", dealias="jaxcfd").numpy()
            row["matched_rel_diff"] = float(np.linalg.norm(mine - reference) / np.linalg.norm(reference))
        row["gradient_over_forward"] = row["physinv_forward_gradient_s"] / row["physinv_forward_s"]
        rows[n] = row
        print(f"  {n:4d}^2: physinv forward {row['physinv_forward_s']:.3f} s, forward + gradient "
              f"{row['physinv_forward_gradient_s']:.3f} s (x{row['gradient_over_forward']:.2f})"
              + (f"; jax-cfd {row['jaxcfd_forward_s']:.3f} s (first call {row['jaxcfd_first_call_s']:.1f} s), "
                 f"physinv / jax-cfd {row['physinv_over_jaxcfd']:.2f}, matched schemes differ by "
                 f"{row['matched_rel_diff']:.1e}" if have_jax else "; jax-cfd not installed (extra fluid-reference)"),
              flush=True)
    return rows


def saved_bytes(n: int, segments: int | None) -> int:
    """Bytes autograd keeps between forward and backward (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    w = initial(n).requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = simulate(w, T, NU, dt=DT, checkpoint_segments=segments)
    out.pow(2).sum().backward()
    return sum(seen.values())


def peak_growth(n: int, segments: int | None) -> float:
    """Peak resident-set growth (bytes) of forward + backward in a fresh child process."""
    code = ("import sys, torch; from physinv.core.memory import peak_rss_kib; sys.path.insert(0, sys.argv[1]); import fluid as b; "
            "w = b.initial(int(sys.argv[2])).requires_grad_(True); seg = None if sys.argv[3] == 'none' else int(sys.argv[3]); "
            "before = peak_rss_kib(); "
            "b.simulate(w, b.T, b.NU, dt=b.DT, checkpoint_segments=seg).pow(2).sum().backward(); "
            "print(peak_rss_kib() - before)")
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), str(n),
                          "none" if segments is None else str(segments)], capture_output=True, text=True, check=True)
    return 1024.0 * float(out.stdout.split()[-1])


def memory(n: int) -> dict:
    rows = {}
    for segments in (None, 10):
        key = "no_checkpointing" if segments is None else f"checkpoint_{segments}_segments"
        rows[key] = {"saved_bytes": saved_bytes(n, segments), "peak_rss_growth_bytes": peak_growth(n, segments)}
        print(f"  {n}^2, {key}: autograd saves {rows[key]['saved_bytes'] / 2**20:.1f} MiB, peak RSS grows "
              f"{rows[key]['peak_rss_growth_bytes'] / 2**20:.1f} MiB", flush=True)
    return rows


def smoke(dcdm: str | None) -> dict:
    n, h = 64, 1.0 / 64
    obstacles = torch.zeros(n, n, dtype=torch.bool)
    obstacles[24:40, 28:34] = True
    source = torch.zeros(n, n, dtype=torch.float64)
    source[26:38, 4:10] = 1.0
    if dcdm:
        from physinv.learn.dcdm_net import load_dcdm_network

        direction, label = load_dcdm_network(dcdm, ndim=2), "dcdm"
    else:
        from physinv.linalg.dcdm import JacobiDirection

        direction, label = JacobiDirection(), "dcdm (Jacobi direction, no network)"
    rows = {}
    for solver in ("direct", "cg", "cg-amg", "dcdm"):
        sim = SmokeSimulator((n, n), h, 0.02, 10, obstacles=obstacles, buoyancy=2.0, source=source, solver=solver,
                             rtol=1e-8, dcdm_direction=direction if solver == "dcdm" else None)
        run = sim.run(torch.zeros(n, n, dtype=torch.float64))
        rows[solver] = {"label": label if solver == "dcdm" else solver, "step_s": float(np.median(run.step_time)), "solve_s": float(np.median(run.solve_time)),
                        "max_divergence_after": float(max(run.divergence)),
                        "max_divergence_before": float(max(run.divergence_before))}
        print(f"  smoke {n}x{n}, {solver:7s}: {1e3 * rows[solver]['step_s']:.1f} ms per step (solve "
              f"{1e3 * rows[solver]['solve_s']:.1f} ms), max|div u| after projection "
              f"{rows[solver]['max_divergence_after']:.1e} (before {rows[solver]['max_divergence_before']:.2f})",
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="32^2 and 64^2, memory at 64^2: seconds")
    parser.add_argument("--sizes", type=int, nargs="+", help="grids of the spectral timing (default 64 128 256)")
    parser.add_argument("--memory-size", type=int, help="grid of the memory measurement (default 128)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dcdm", help="trained DCDM network checkpoint for the smoke projection (default: Jacobi)")
    parser.add_argument("--json", help="write the results to this JSON file (atomically)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    warnings.simplefilter("ignore")
    sizes = args.sizes or ([32, 64] if args.quick else [64, 128, 256])
    memory_size = args.memory_size or (64 if args.quick else 128)
    print(f"fluid benchmark: torch threads {torch.get_num_threads()}", flush=True)
    result = {"spectral": spectral(sizes, args.repeat), "memory": {memory_size: memory(memory_size)},
              "smoke": smoke(args.dcdm), "threads": torch.get_num_threads()}
    if args.json:
        atomic_write_json(args.json, {**result, "spectral": {str(k): v for k, v in result["spectral"].items()},
                                      "memory": {str(k): v for k, v in result["memory"].items()}})
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
