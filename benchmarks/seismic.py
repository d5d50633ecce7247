"""Seismic simulator benchmark: physinv's AcousticSimulator vs bare Deepwave vs the pure-torch cross-check.

One OpenFWI sample (default: 70 x 70 cells of 10 m, 1000 steps of 1 ms, 15 Hz
Ricker, 5 shots, 70 receivers, 20-cell PML, 4th order, float32; a layered
velocity model), three implementations of the same discrete map:

* ``physinv``: :class:`physinv.problems.seismic.AcousticSimulator` (Deepwave's
  compiled kernels behind physinv's checks and batching);
* ``deepwave``: one ``deepwave.scalar`` call with the same arguments;
* ``torch-reference``: :func:`physinv.problems.seismic.reference.reference_forward`,
  the independent PyTorch propagator (autograd keeps every time step).

Measured side by side in one run: forward time, forward + gradient time of
``1/2 ||F(v)||^2`` (best of ``--repeat`` rounds, the implementations
interleaved in each round, since interference on a shared machine only adds
time), and peak memory of forward + gradient: on CPU the growth of the peak
resident set size of a fresh child process over its state after setup
(``VmHWM``), on CUDA ``torch.cuda.max_memory_allocated``.  The
records of the three are compared too (relative L2).  Ratios are to bare
Deepwave.  No test asserts a time.

    python benchmarks/seismic.py                 # the OpenFWI sample (about a minute on 2 cores)
    python benchmarks/seismic.py --quick         # 35 x 35, 500 steps: seconds
    python benchmarks/seismic.py --json out.json --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings

import torch

from physinv.core.device import resolve_device
from physinv.core.io import atomic_write_json
from physinv.problems.seismic.reference import reference_forward
from physinv.problems.seismic.simulator import AcousticSimulator
from physinv.problems.seismic.survey import openfwi_survey

METHODS = ("physinv", "deepwave", "torch-reference")
SIZES = {"openfwi": dict(nz=70, nx=70, dx=10.0, nt=1000, dt=1e-3, peak_frequency=15.0, n_shots=5),
         "quick": dict(nz=35, nx=35, dx=20.0, nt=500, dt=2e-3, peak_frequency=10.0, n_shots=5)}
PML = {"openfwi": 20, "quick": 10}


def build(size: str, device: torch.device, dtype: torch.dtype):
    """The simulator, a layered velocity model and the three forward maps ``v -> records``."""
    survey = openfwi_survey(**SIZES[size])
    sim = AcousticSimulator(survey, pml_width=PML[size]).to(device)
    nz, nx = survey.shape
    z = torch.linspace(0, 1, nz, dtype=dtype, device=device)[:, None]
    x = torch.linspace(0, 1, nx, dtype=dtype, device=device)[None, :]
    v = 1800.0 + 2400.0 * z + 300.0 * torch.sin(2 * torch.pi * (2 * z + 0.5 * x))
    import deepwave

    arguments = sim.deepwave_arguments(1, dtype)
    arguments = {k: (a.to(device) if torch.is_tensor(a) else a) for k, a in arguments.items()}
    maps = {
        "physinv": sim,
        "deepwave": lambda vv: deepwave.scalar(vv.expand(survey.n_shots, -1, -1), survey.dx, survey.dt,
                                               **arguments)[-1],
        "torch-reference": lambda vv: reference_forward(vv, survey, sim.accuracy, sim.pml_width,
                                                        sim.velocity_range[1], survey.peak_frequency),
    }
    return sim, v, maps


def forward_gradient(fn, v: torch.Tensor) -> None:
    vv = v.detach().clone().requires_grad_(True)
    (0.5 * fn(vv).pow(2).sum()).backward()


def timings(maps: dict, v: torch.Tensor, repeat: int, device: torch.device) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = {m: {"forward_s": float("inf"), "forward_gradient_s": float("inf")} for m in maps}

    def timed(fn) -> float:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    for m, fn in maps.items():  # warm-up
        with torch.no_grad():
            fn(v)
    for _ in range(repeat):
        for m, fn in maps.items():
            with torch.no_grad():
                best[m]["forward_s"] = min(best[m]["forward_s"], timed(lambda: fn(v)))
            best[m]["forward_gradient_s"] = min(best[m]["forward_gradient_s"], timed(lambda: forward_gradient(fn, v)))
    return best


def peak_memory(method: str, size: str, device: torch.device, dtype: torch.dtype) -> float:
    """Peak extra memory (bytes) of one forward + gradient, measured where nothing else ran before."""
    if device.type == "cuda":
        _, v, maps = build(size, device, dtype)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        forward_gradient(maps[method], v)
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - start)
    code = ("import sys, torch, warnings; warnings.simplefilter('ignore'); from physinv.core.memory import peak_rss_kib; "
            "sys.path.insert(0, sys.argv[1]); import seismic as b; "
            "d = torch.device('cpu'); dt = getattr(torch, sys.argv[4]); "
            "_, v, maps = b.build(sys.argv[3], d, dt); "
            "before = peak_rss_kib(); "
            "b.forward_gradient(maps[sys.argv[2]], v); "
            "print(peak_rss_kib() - before)")
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), method, size,
                          str(dtype).removeprefix("torch.")], capture_output=True, text=True, check=True)
    return 1024.0 * float(out.stdout.split()[-1])


def agreement(maps: dict, v: torch.Tensor) -> dict:
    with torch.no_grad():
        records = {m: fn(v).double() for m, fn in maps.items()}
    ref = records["deepwave"]
    return {f"{m}_vs_deepwave_rel": float((r - ref).norm() / ref.norm()) for m, r in records.items() if m != "deepwave"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="35 x 35 cells, 500 steps (seconds)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (best of; default 3)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--json", help="write the results to this JSON file (atomically)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    warnings.simplefilter("ignore")
    size = "quick" if args.quick else "openfwi"
    device, dtype = resolve_device(args.device), getattr(torch, args.dtype)
    sim, v, maps = build(size, device, dtype)
    s = sim.survey
    print(f"seismic benchmark: {s.shape[0]}x{s.shape[1]} cells, {s.nt} steps, {s.n_shots} shots, {args.dtype}, "
          f"device {device}, torch threads {torch.get_num_threads()}", flush=True)
    result = {"size": size, "survey": s.describe(), "device": str(device), "dtype": args.dtype,
              "threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__,
              "agreement": agreement(maps, v), "methods": timings(maps, v, args.repeat, device)}
    if not args.no_memory:
        for m in METHODS:
            result["methods"][m]["peak_memory_bytes"] = peak_memory(m, size, device, dtype)
    base = result["methods"]["deepwave"]
    print(f"\n{'implementation':16s} {'forward [s]':>12s} {'fwd+grad [s]':>13s} {'grad/fwd':>9s} "
          f"{'fwd / DW':>9s} {'fwd+grad / DW':>14s} {'peak mem [MB]':>14s} {'mem / DW':>9s}")
    for m in METHODS:
        r = result["methods"][m]
        r["grad_over_forward"] = r["forward_gradient_s"] / r["forward_s"]
        r["forward_over_deepwave"] = r["forward_s"] / base["forward_s"]
        r["forward_gradient_over_deepwave"] = r["forward_gradient_s"] / base["forward_gradient_s"]
        mem = r.get("peak_memory_bytes")
        if mem is not None:
            r["memory_over_deepwave"] = mem / max(base["peak_memory_bytes"], 1.0)
        print(f"{m:16s} {r['forward_s']:12.3f} {r['forward_gradient_s']:13.3f} {r['grad_over_forward']:9.2f} "
              f"{r['forward_over_deepwave']:9.2f} {r['forward_gradient_over_deepwave']:14.2f} "
              + (f"{mem / 2**20:14.0f} {r['memory_over_deepwave']:9.2f}" if mem is not None else ""))
    print("\nrecords vs bare Deepwave (relative L2): "
          + ", ".join(f"{k.removesuffix('_vs_deepwave_rel')} {v:.1e}" for k, v in result["agreement"].items()))
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
