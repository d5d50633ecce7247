"""Poisson operator and solver benchmark: matrix-free torch vs assembled CSR vs AMG.

Problem: ``-div(kappa grad u) = f`` on the unit square / cube, Dirichlet on
every side, vertex-centred finite volumes (:class:`physinv.discretize.fd.FDPoissonOperator`,
Dirichlet nodes eliminated symmetrically so the system has one row per grid
node), variable coefficient

    kappa = 1 + 0.5 sin(2 pi x) cos(2 pi y) [cos(2 pi z)]      (in [0.5, 1.5]),

and a seeded random source ``f`` turned into the right-hand side by
``op.rhs`` (zero on Dirichlet nodes).

Everything is measured side by side in one run (the machine is shared and
noisy, so compare ratios, not seconds):

* operator apply ``u -> A u``: torch matrix-free (``op.bind(kappa)``: face
  weights precomputed, fused in-place shifted-slice updates -- what the CG
  solvers call), the differentiable ``op.apply(kappa, u)`` (recomputes the
  weights and masks; what autograd needs), scipy CSR matvec (``A @ x``), torch sparse CSR built from the scipy
  matrix.  Median of ``--repeat`` timed calls after warm-up; ratios are
  ``time / scipy CSR time``.  The one-off costs the CSR paths need
  (``op.assemble`` and the scipy -> torch CSR conversion) are timed too.
* solve ``A u = b`` from ``u0 = 0`` to ``||b - A u|| <= rtol ||b||`` (the
  recursively updated residual, the stopping test of all four codes):
  torch CG (matrix-free, no preconditioner / Jacobi; :func:`physinv.linalg.cg.cg`),
  ``scipy.sparse.linalg.cg`` on the CSR matrix, and pyamg smoothed-aggregation
  PCG -- pyamg's own ``ml.solve(b, x0=0, tol=rtol, accel="cg")``, which runs
  ``pyamg.krylov.cg`` (criterion ``"rr"``: ``||r|| < tol ||b||``) with one
  V-cycle as preconditioner; SA setup and solve are timed separately.
  Iterations come from each solver's callback / iteration counter.  Every
  solution's true relative residual is recomputed with the CSR matrix in
  float64.  Ratios are relative to pyamg's total (assembly + setup + solve).

Run ``python benchmarks/poisson_operator.py --help``; ``--quick`` for a
smoke run.  No timing is ever asserted anywhere.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.linalg.cg import cg
from physinv.linalg.precond import JacobiPreconditioner

DEFAULT_SIZES = ("1024^2", "128^3")
QUICK_SIZES = ("64^2", "16^3")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def parse_size(token: str) -> tuple[int, ...]:
    """``"1024^2"`` -> ``(1024, 1024)``; ``"64x32x16"`` -> ``(64, 32, 16)`` (cells per axis)."""
    token = token.strip().lower()
    m = re.fullmatch(r"(\d+)\^([23])", token)
    if m:
        return (int(m.group(1)),) * int(m.group(2))
    parts = token.split("x")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    raise argparse.ArgumentTypeError(f"size {token!r}: use N^2, N^3, NxM or NxMxK (cells per axis)")


def size_label(cells: tuple[int, ...]) -> str:
    if len(set(cells)) == 1:
        return f"{len(cells)}D {cells[0]}^{len(cells)}"
    return f"{len(cells)}D " + "x".join(map(str, cells))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    return torch.device(name)


def make_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_call(fn: Callable[[], Any], repeat: int, warmup: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Median wall time of ``fn`` over ``repeat`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def kappa_field(grid: UniformGrid, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``1 + 0.5 sin(2 pi x) cos(2 pi y) [cos(2 pi z)]`` at the nodes."""
    coords = grid.coordinates(torch.float64, device)
    k = 0.5 * torch.sin(2 * math.pi * coords[0]) * torch.cos(2 * math.pi * coords[1])
    if grid.ndim == 3:
        k = k * torch.cos(2 * math.pi * coords[2])
    return (1.0 + k).to(dtype)


def scipy_to_torch_csr(matrix: sp.csr_matrix, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch sparse CSR with scipy's own index dtype (int32 here: about 2x faster matvec than int64)."""
    matrix = matrix.tocsr()
    if not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()
    index_dtype = np.result_type(matrix.indptr.dtype, matrix.indices.dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(index_dtype, copy=False)),
            torch.from_numpy(matrix.indices.astype(index_dtype, copy=False)),
            torch.from_numpy(matrix.data).to(dtype),
            size=matrix.shape,
            check_invariants=False,  # scipy canonical CSR: sorted, no duplicates
        ).to(device)


def true_relres(matrix: sp.csr_matrix, x: np.ndarray, b: np.ndarray) -> float:
    """``||b - A x|| / ||b||`` in float64 with the assembled matrix."""
    x = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(b - matrix @ x) / np.linalg.norm(b))


def bench_size(cells: tuple[int, ...], args: argparse.Namespace, device: torch.device,
               dtype: torch.dtype) -> dict[str, Any]:
    label = size_label(cells)
    sync = make_sync(device)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    grid = UniformGrid(cells)
    op = FDPoissonOperator(grid)
    n = grid.num_nodes
    log(f"\n=== {label}: {n:,} unknowns (nodes incl. Dirichlet rows), dtype {args.dtype}, device {device} ===")

    kappa = kappa_field(grid, dtype, device)
    gen = torch.Generator().manual_seed(args.seed)
    source = torch.randn(grid.node_shape, generator=gen, dtype=torch.float64)
    u_probe = torch.randn(grid.node_shape, generator=gen, dtype=torch.float64)
    b = op.rhs(kappa.to(torch.float64).cpu(), source=source)  # float64, zero on Dirichlet nodes
    b_t = b.to(dtype=dtype, device=device)
    b_np = b.numpy().ravel().astype(np_dtype)

    out: dict[str, Any] = {"label": label, "cells": list(cells), "unknowns": n}

    # ---- one-off setup costs of the CSR paths -------------------------------------------
    n_setup = max(1, min(args.repeat, 3))
    matrix64 = op.assemble(kappa)  # warm-up and the matrix itself
    t_asm = time_call(lambda: op.assemble(kappa), n_setup, 0, lambda: None)
    matrix = matrix64.astype(np_dtype) if np_dtype != np.float64 else matrix64
    t_conv = time_call(lambda: scipy_to_torch_csr(matrix, dtype, device), n_setup, 1, sync)
    a_torch = scipy_to_torch_csr(matrix, dtype, device)
    out["nnz"] = int(matrix.nnz)
    out["setup"] = {"assemble_s": t_asm["median_s"], "to_torch_csr_s": t_conv["median_s"]}
    log(f"setup  op.assemble -> scipy CSR ({matrix.nnz:,} nnz): {t_asm['median_s']:.3f} s; "
        f"scipy CSR -> torch sparse CSR: {t_conv['median_s']:.3f} s")

    # ---- operator apply -----------------------------------------------------------------
    u_t = u_probe.to(dtype=dtype, device=device)
    u_flat_t = u_t.reshape(-1)
    u_np = u_probe.numpy().ravel().astype(np_dtype)
    y_ref = matrix @ u_np
    matvec = op.bind(kappa)  # fixed-kappa fast path the solvers use
    y_mf = matvec(u_t).reshape(-1).double().cpu().numpy()
    y_sp = (a_torch @ u_flat_t).double().cpu().numpy()
    ref_norm = float(np.linalg.norm(y_ref.astype(np.float64)))
    out["apply_check"] = {
        "matrix_free_vs_scipy_rel": float(np.linalg.norm(y_mf - y_ref) / ref_norm),
        "torch_csr_vs_scipy_rel": float(np.linalg.norm(y_sp - y_ref) / ref_norm),
    }
    log(f"check  |A_mf u - A_csr u| / |A_csr u| = {out['apply_check']['matrix_free_vs_scipy_rel']:.1e}; "
        f"torch CSR vs scipy: {out['apply_check']['torch_csr_vs_scipy_rel']:.1e}")

    applies = {
        "torch matrix-free": (lambda: matvec(u_t), sync),
        "torch mf (autograd)": (lambda: op.apply(kappa, u_t), sync),
        "scipy CSR": (lambda: matrix @ u_np, lambda: None),
        "torch sparse CSR": (lambda: a_torch @ u_flat_t, sync),
    }
    apply_res = {}
    for name, (fn, s) in applies.items():
        apply_res[name] = time_call(fn, args.repeat, args.warmup, s)
        log(f"apply  {name:<18s} median {apply_res[name]['median_s'] * 1e3:9.2f} ms "
            f"(min {apply_res[name]['min_s'] * 1e3:.2f} ms, {args.repeat} repeats)")
    ref = apply_res["scipy CSR"]["median_s"]
    for name in apply_res:
        apply_res[name]["ratio_to_scipy"] = apply_res[name]["median_s"] / ref
    out["apply"] = apply_res

    if args.skip_solve:
        return out

    # ---- solves -------------------------------------------------------------------------
    rtol, maxiter = args.rtol, args.maxiter
    solves: dict[str, dict[str, Any]] = {}

    def record(name: str, its: int, assemble_s: float, setup_s: float, solve_s: float,
               converged: bool, x: np.ndarray) -> None:
        res = true_relres(matrix64, x, b_np)
        solves[name] = {
            "iterations": int(its), "assemble_s": assemble_s, "setup_s": setup_s, "solve_s": solve_s,
            "total_s": assemble_s + setup_s + solve_s, "converged": bool(converged), "true_relres": res,
        }
        flag = "" if converged else f"  NOT CONVERGED (maxiter {maxiter})"
        log(f"solve  {name:<22s} its {its:6d}  setup {setup_s:8.3f} s  solve {solve_s:8.3f} s  "
            f"true relres {res:.2e}{flag}")

    def torch_cg(name: str, make_precond: Callable[[], Any]) -> None:
        sync()
        t0 = time.perf_counter()
        precond = make_precond()
        bound = op.bind(kappa)
        sync()
        t1 = time.perf_counter()
        result = cg(bound, b_t, precond=precond, rtol=rtol, maxiter=maxiter)
        sync()
        t2 = time.perf_counter()
        x = result.x.reshape(-1).double().cpu().numpy()
        record(name, result.iterations, 0.0, t1 - t0, t2 - t1, result.converged, x)

    torch_cg("torch CG (mf)", lambda: None)
    torch_cg("torch CG+Jacobi (mf)", lambda: JacobiPreconditioner(op.diagonal(kappa)))

    count = [0]

    def counter(_xk) -> None:
        count[0] += 1

    assemble_s = t_asm["median_s"]
    count[0] = 0
    t0 = time.perf_counter()
    x, info = spla.cg(matrix, b_np, x0=np.zeros_like(b_np), rtol=rtol, atol=0.0, maxiter=maxiter,
                      callback=counter)
    t1 = time.perf_counter()
    record("scipy CG (CSR)", count[0], assemble_s, 0.0, t1 - t0, info == 0, x)

    import pyamg

    t0 = time.perf_counter()
    ml = pyamg.smoothed_aggregation_solver(matrix)
    t1 = time.perf_counter()
    count[0] = 0
    residuals: list[float] = []
    x, info = ml.solve(b_np, x0=np.zeros_like(b_np), tol=rtol, accel="cg", maxiter=maxiter,
                       callback=counter, residuals=residuals, return_info=True)
    t2 = time.perf_counter()
    record("pyamg SA-PCG (CSR)", count[0], assemble_s, t1 - t0, t2 - t1, info == 0, x)
    solves["pyamg SA-PCG (CSR)"]["levels"] = len(ml.levels)
    solves["pyamg SA-PCG (CSR)"]["operator_complexity"] = float(ml.operator_complexity())

    ref_total = solves["pyamg SA-PCG (CSR)"]["total_s"]
    ref_solve = solves["pyamg SA-PCG (CSR)"]["solve_s"]
    for entry in solves.values():
        entry["total_ratio_to_pyamg"] = entry["total_s"] / ref_total
        entry["solve_ratio_to_pyamg"] = entry["solve_s"] / ref_solve
    out["solve"] = solves
    return out


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # not on every platform
        return None


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "os_cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "device": str(device),
        "loadavg_start": _loadavg(),
    }
    try:
        import pyamg

        env["pyamg"] = pyamg.__version__
    except ImportError:  # pragma: no cover - pyamg is a dependency
        env["pyamg"] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def format_report(results: dict[str, Any]) -> str:
    env = results["environment"]
    cfg = results["config"]
    lines = [
        "",
        "=" * 100,
        f"Summary  ({env['date']}; torch {env['torch']}, scipy {env['scipy']}, pyamg {env['pyamg']}; "
        f"device {env['device']}; torch threads {env['torch_num_threads']} of {env['os_cpu_count']} CPUs; "
        f"dtype {cfg['dtype']}; rtol {cfg['rtol']:g}; maxiter {cfg['maxiter']}; "
        f"load average start {env['loadavg_start']} end {env.get('loadavg_end')})",
        "",
        "Operator apply u -> A u: median time and ratio to scipy CSR (<1 = faster than scipy CSR)",
        f"{'size':<12s} {'unknowns':>10s} {'assemble':>9s} {'->torch':>8s} "
        f"{'torch mf':>17s} {'torch mf autograd':>17s} {'scipy CSR':>17s} {'torch CSR':>17s} {'|mf-csr|rel':>12s}",
    ]
    for r in results["sizes"]:
        a = r["apply"]

        def cell(name: str) -> str:
            return f"{a[name]['median_s'] * 1e3:8.2f} ms {a[name]['ratio_to_scipy']:5.2f}x"

        lines.append(
            f"{r['label']:<12s} {r['unknowns']:>10,d} {r['setup']['assemble_s']:8.3f}s "
            f"{r['setup']['to_torch_csr_s']:7.3f}s {cell('torch matrix-free'):>17s} "
            f"{cell('torch mf (autograd)'):>17s} "
            f"{cell('scipy CSR'):>17s} {cell('torch sparse CSR'):>17s} "
            f"{r['apply_check']['matrix_free_vs_scipy_rel']:12.1e}"
        )
    if any("solve" in r for r in results["sizes"]):
        lines += [
            "",
            f"Solve to rtol {cfg['rtol']:g} from x0 = 0 (total = assembly + setup + solve; "
            "ratios to pyamg SA-PCG; true relres = |b - A x|/|b| with the CSR matrix)",
            f"{'size':<12s} {'solver':<22s} {'its':>6s} {'assemble':>9s} {'setup':>8s} {'solve':>9s} "
            f"{'total':>9s} {'tot/amg':>8s} {'solve/amg':>9s} {'true relres':>11s}",
        ]
        for r in results["sizes"]:
            for name, s in r.get("solve", {}).items():
                mark = "" if s["converged"] else "  (maxiter cap hit)"
                lines.append(
                    f"{r['label']:<12s} {name:<22s} {s['iterations']:6d} {s['assemble_s']:8.3f}s "
                    f"{s['setup_s']:7.3f}s {s['solve_s']:8.3f}s {s['total_s']:8.3f}s "
                    f"{s['total_ratio_to_pyamg']:7.2f}x {s['solve_ratio_to_pyamg']:8.2f}x "
                    f"{s['true_relres']:11.2e}{mark}"
                )
    lines.append("=" * 100)
    return "\n".join(lines)


def _finite(obj: Any) -> Any:
    """Replace non-finite floats by None so the JSON stays valid."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=parse_size, default=None,
                   help=f"cells per axis, e.g. 1024^2 128^3 64x32 (default: {' '.join(DEFAULT_SIZES)})")
    p.add_argument("--quick", action="store_true", help=f"small sizes {' '.join(QUICK_SIZES)}")
    p.add_argument("--repeat", type=int, default=10, help="timed repeats per apply (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up calls per apply")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="device of the torch paths (scipy and pyamg always run on the CPU)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative residual tolerance of every solver")
    p.add_argument("--maxiter", type=int, default=10000, help="iteration cap of every solver")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N) before timing (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-solve", action="store_true", help="only time the operator apply")
    p.add_argument("--json", metavar="PATH", default=None, help="write all results to PATH (atomically)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    sizes = args.sizes or [parse_size(s) for s in (QUICK_SIZES if args.quick else DEFAULT_SIZES)]
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = getattr(torch, args.dtype)
    env = environment(device)
    log(f"physinv Poisson operator benchmark: torch {env['torch']} ({env['torch_num_threads']} threads, "
        f"{env['os_cpu_count']} CPUs), scipy {env['scipy']}, pyamg {env['pyamg']}; device {device}; "
        f"dtype {args.dtype}; sizes {', '.join(size_label(c) for c in sizes)}")
    log("pyamg solver: smoothed_aggregation_solver(A) defaults + ml.solve(accel='cg'), "
        "i.e. pyamg.krylov.cg with one V-cycle, criterion ||r|| < rtol ||b||")
    results: dict[str, Any] = {
        "benchmark": "poisson_operator",
        "environment": env,
        "config": {
            "dtype": args.dtype, "device": str(device), "repeat": args.repeat, "warmup": args.warmup,
            "rtol": args.rtol, "maxiter": args.maxiter, "seed": args.seed,
            "kappa": "1 + 0.5 sin(2 pi x) cos(2 pi y) [cos(2 pi z)]",
            "rhs": "op.rhs(kappa, source=randn(seed)); Dirichlet on all sides",
            "pyamg": "smoothed_aggregation_solver defaults; ml.solve(b, x0=0, tol=rtol, accel='cg')",
        },
        "sizes": [],
    }
    for cells in sizes:
        results["sizes"].append(bench_size(tuple(cells), args, device, dtype))
    results["environment"]["loadavg_end"] = _loadavg()
    log(format_report(results))
    if args.json:
        from physinv.core.io import atomic_write_json

        path = atomic_write_json(args.json, _finite(results))
        log(f"results written to {path}")
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
