"""Linear-solver benchmark: DCDM against CG, Jacobi-PCG and AMG-PCG on one pressure system.

Problem: the pressure-projection Poisson system of ``cases/poisson_dcdm.py``
(:class:`physinv.discretize.fluid.FluidPoissonOperator` on an ``n^3`` box
with spherical obstacles, open top), a seeded random right-hand side on the
fluid cells, ``x0 = 0``, float64 iterations.

Solvers, all run side by side in one process (the machine is shared and
noisy: compare ratios, not seconds):

* ``cg``: :func:`physinv.linalg.cg.cg`, matrix-free (``op.bind``);
* ``jacobi-pcg``: the same with ``1 / diag(A)``;
* ``amg-pcg``: the same with one pyamg smoothed-aggregation V-cycle as
  preconditioner (setup = CSR assembly + hierarchy, timed apart; CPU);
* ``dcdm``: :func:`physinv.linalg.dcdm.dcdm` with the trained network of a
  checkpoint (``--checkpoint``, written by the case), capped at
  ``--dcdm-maxiter`` iterations as in the paper;
* ``dcdm+cg``: the same network with :class:`physinv.linalg.dcdm.StallFallback`
  (CG directions once the network's stall), run to ``--rtol``.

For each: iterations, whether ``--rtol`` was reached, the true relative
residual, setup and solve seconds (min of ``--repeat`` runs), and the time
to reach the residual that DCDM ended with (first iteration at or below it,
times the mean time per iteration), so a DCDM that stops short is still
compared at equal accuracy.  Also the cost of one matvec and one network
evaluation.  Ratios are to AMG-PCG's total time.

Run ``python benchmarks/linear_solvers.py --help``.  No timing is ever asserted.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from physinv.core.device import resolve_device
from physinv.core.io import atomic_write_json
from physinv.discretize.fluid import FluidPoissonOperator, box_with_obstacles
from physinv.learn.dcdm_net import NetworkDirection, load_dcdm_network
from physinv.linalg.cg import cg
from physinv.linalg.dcdm import StallFallback, dcdm
from physinv.linalg.precond import AMGPreconditioner, JacobiPreconditioner

DEFAULT_CHECKPOINT = "results/poisson_dcdm/dcdm.pt"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="cells per axis (even; default %(default)s)")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help="DCDM training checkpoint (default: %(default)s, from `physinv run poisson_dcdm --quick`)")
    p.add_argument("--geometry", default="spheres", choices=["spheres", "boxes"])
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--dcdm-maxiter", type=int, default=100)
    p.add_argument("--repeat", type=int, default=1, help="timed runs per solver (min is reported)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def timed(fn, repeat: int, sync) -> tuple[object, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return result, best


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.n < 4 or args.n % 2:
        raise SystemExit(f"--n must be an even number >= 4 (one pooling level); got {args.n}")
    if not Path(args.checkpoint).exists():
        raise SystemExit(f"no DCDM checkpoint at {args.checkpoint}: run `physinv run poisson_dcdm --quick` first "
                         "or pass --checkpoint PATH")
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    op = FluidPoissonOperator(box_with_obstacles(args.n, kind=args.geometry, seed=args.seed), device=device)
    gen = torch.Generator().manual_seed(args.seed + 100)
    b = op.restrict(torch.randn(op.state_shape, generator=gen, dtype=torch.float64).to(device))
    matvec = op.bind(None, dtype=torch.float64)
    net = load_dcdm_network(args.checkpoint, ndim=3, device=device)
    direction = NetworkDirection(net).prepare(op)

    _, t_matvec = timed(lambda: [matvec(b) for _ in range(20)], 5, sync)
    t_matvec /= 20
    _, t_net = timed(lambda: direction(b), 3, sync)
    print(f"{args.n}^3 {args.geometry}, {int(op.fluid_mask().sum()):,} fluid cells, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"  one matvec {t_matvec * 1e3:.2f} ms, one network evaluation {t_net * 1e3:.1f} ms "
          f"({t_net / t_matvec:.0f} matvecs)")

    setups = {
        "cg": lambda: None,
        "jacobi-pcg": lambda: JacobiPreconditioner(op.diagonal(None, dtype=torch.float64)),
        "amg-pcg": lambda: AMGPreconditioner(op.assemble(None), op.state_shape),
        "dcdm": lambda: None,
        "dcdm+cg": lambda: StallFallback(),
    }
    solves = {
        "cg": lambda _: cg(matvec, b, rtol=args.rtol, maxiter=10 * b.numel()),
        "jacobi-pcg": lambda p: cg(matvec, b, precond=p, rtol=args.rtol, maxiter=10 * b.numel()),
        "amg-pcg": lambda p: cg(matvec, b, precond=p, rtol=args.rtol, maxiter=10 * b.numel()),
        "dcdm": lambda _: dcdm(matvec, b, direction, rtol=args.rtol, maxiter=args.dcdm_maxiter),
        "dcdm+cg": lambda f: dcdm(matvec, b, direction, rtol=args.rtol, maxiter=10 * b.numel(), fallback=f),
    }
    runs = {}
    for name in solves:
        extra, t_setup = timed(setups[name], args.repeat, sync)
        res, t_solve = timed(lambda: solves[name](extra), args.repeat, sync)
        true = float((b - matvec(res.x)).norm() / b.norm())
        runs[name] = dict(iterations=res.iterations, converged=bool(res.converged), true_relres=true,
                          setup_s=t_setup, solve_s=t_solve, total_s=t_setup + t_solve,
                          history=[float(h) for h in res.residual_history])
        if name == "dcdm+cg":
            runs[name]["switched_at"] = extra.switched_at

    target = runs["dcdm"]["history"][-1]
    for r in runs.values():
        hit = next((k for k, h in enumerate(r["history"]) if h <= target), None)
        per_it = r["solve_s"] / max(r["iterations"], 1)
        r["time_to_dcdm_residual_s"] = None if hit is None else r["setup_s"] + hit * per_it
    reference = runs["amg-pcg"]["total_s"]
    print(f"  to relative residual {args.rtol:g} (DCDM capped at {args.dcdm_maxiter}); ratios to AMG-PCG total; "
          f"last column: time to DCDM's final residual {target:.1e}")
    for name, r in runs.items():
        reach = r["time_to_dcdm_residual_s"]
        note = f"  switched to CG at {r['switched_at']}" if "switched_at" in r else ""
        print(f"  {name:11s} {r['iterations']:5d} its {'converged' if r['converged'] else 'NOT converged':13s} "
              f"relres {r['true_relres']:.1e}  setup {r['setup_s']:6.2f} s  solve {r['solve_s']:6.2f} s  "
              f"{r['total_s'] / reference:6.2f}x   {'-' if reach is None else f'{reach:.3f} s'}{note}")
    summary = {
        "n": args.n, "geometry": args.geometry, "device": str(device), "rtol": args.rtol,
        "matvec_s": t_matvec, "network_s": t_net, "runs": runs,
        "ratio_dcdm_over_amg": runs["dcdm"]["total_s"] / reference,
        "ratio_cg_over_amg": runs["cg"]["total_s"] / reference,
        "ratio_dcdm_over_cg": runs["dcdm"]["total_s"] / runs["cg"]["total_s"],
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }
    if args.json:
        atomic_write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
