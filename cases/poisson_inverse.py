"""Case study: recover a conductivity kappa(x) from noisy interior observations of u.

    -div(kappa grad u_s) = f_s  in (0, 1)^2,   u_s = g_s on the boundary,   s = 1..S,

with kappa = smooth background in [1.5, 2.5] plus two inclusions (4.5 and 1.0),
observed at a lattice of interior sensors with 1% Gaussian noise (sigma_s =
0.01 max|d_s| per experiment).  Data are simulated on a grid twice as fine as
the inversion grid (no inverse crime).  The classic adjoint solver -- L-BFGS on
m = log kappa with total-variation regularization, beta chosen by the
discrepancy principle -- is compared side by side with inexact
Gauss-Newton-CG at the same beta, from the same start, to the same relative
gradient tolerance.

Writes DIR/metrics.json, DIR/report.md, DIR/kappa.png, DIR/convergence.png,
DIR/discrepancy.png.  ``--quick`` takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from physinv.casekit import case_main, case_parser, methods_table, start_case, write_results
from physinv.core.autodiff import value_and_grad
from physinv.core.noise import add_noise, noise_seed
from physinv.core.verify import taylor_test
from physinv.invert import InverseProblem, TotalVariation, discrepancy_principle, minimize_gauss_newton, minimize_lbfgs
from physinv.invert.progress import iteration_progress
from physinv.linalg.solvers import CountingSolver, make_solver
from physinv.problems.poisson.inclusions import make_simulator, rel_l2, true_kappa
from physinv.viz.figures import plot_discrepancy_path, plot_fields, plot_histories

#: Figures of the --quick run shown in the documentation (physinv docs figures): output -> docs/figures name.
DOCS_FIGURES = {
    "kappa.png": "poisson_inverse_kappa.png",
    "convergence.png": "poisson_inverse_convergence.png",
}

SETTINGS = {
    #          inversion cells, sensors per axis, experiments, L-BFGS maxiter
    "quick": dict(cells=32, sensors=16, experiments=4, maxiter=400),
    "full": dict(cells=96, sensors=32, experiments=8, maxiter=2000),
}
NOISE_LEVEL = 0.01
GTOL = 1e-5  # relative reduction of max|grad J|, the same for both optimizers
TV_EPS = 0.3  # smoothing of |grad log kappa| (1/m); the inclusions' edges reach ~25


def timed(fn, repeats: int = 10) -> float:
    """Fastest of ``repeats`` calls: on a shared machine, interference only ever adds time."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(args: argparse.Namespace) -> dict:
    case = start_case(args, SETTINGS)
    cfg, out, device, dtype = case.cfg, case.out, case.device, torch.float64
    n, n_exp = cfg["cells"], cfg["experiments"]
    print(f"poisson_inverse: {'quick' if args.quick else 'full'} setting, {n}x{n} cells, "
          f"{cfg['sensors']}^2 sensors, {n_exp} experiments, device {device}", flush=True)

    s = np.linspace(0.05, 0.95, cfg["sensors"])
    sensors = np.stack(np.meshgrid(s, s, indexing="ij"), axis=-1).reshape(-1, 2)

    # synthetic data on a 2x finer grid
    fine = make_simulator(2 * n, sensors, n_exp, make_solver("direct"), dtype, device)
    xf, yf = fine.operator.grid.coordinates(dtype, device)
    with torch.no_grad():
        clean = fine(true_kappa(xf, yf))
    data, sigma = add_noise(clean, NOISE_LEVEL, noise_seed(args.seed), scale="max", sample_ndim=1)

    solver = CountingSolver(make_solver(args.solver))
    sim = make_simulator(n, sensors, n_exp, solver, dtype, device)
    grid = sim.operator.grid
    x, y = grid.coordinates(dtype, device)
    kappa_true = true_kappa(x, y)
    regularizer = TotalVariation(grid, eps=TV_EPS)
    problem = InverseProblem(sim, data, sigma, regularizer)
    m0 = torch.full(grid.node_shape, math.log(2.0), dtype=dtype, device=device)
    print(f"  data: {problem.num_data} observations; misfit/noise at the truth (coarse grid) "
          f"{problem.misfit_over_noise(torch.log(kappa_true)):.3f}, at the start {problem.misfit_over_noise(m0):.1f}",
          flush=True)

    # gradient check and cost of a gradient
    gen = torch.Generator().manual_seed(args.seed)
    dm = 0.1 * torch.sin(3 * math.pi * x) * torch.sin(2 * math.pi * y) + 0.05 * torch.randn(
        grid.node_shape, generator=gen, dtype=dtype).to(device)
    beta_probe = 1.0
    taylor = taylor_test(lambda m: problem.objective(m, beta_probe), m0 + 0.1 * torch.cos(math.pi * x), dm)
    print(f"  Taylor test of the objective: slope {taylor.slope:.3f}", flush=True)
    # distinct points, so that no evaluation reuses another's factorization
    points = iter([m0 + 1e-3 * (k + 1) * dm for k in range(32)])
    with torch.no_grad():
        t_forward = timed(lambda: problem.objective(next(points), beta_probe))
    t_gradient = timed(lambda: value_and_grad(lambda m: problem.objective(m, beta_probe), next(points)))
    print(f"  time: objective {t_forward * 1e3:.2f} ms, objective+gradient {t_gradient * 1e3:.2f} ms "
          f"(ratio {t_gradient / t_forward:.2f})", flush=True)

    # discrepancy principle with L-BFGS
    print("  discrepancy principle (L-BFGS, warm starts):", flush=True)
    t0 = time.perf_counter()
    with iteration_progress("L-BFGS (discrepancy principle)") as callback:
        dp = discrepancy_principle(problem, m0, minimize_lbfgs, beta0=float(problem.num_data),
                                   maxiter=cfg["maxiter"], gtol=GTOL, callback=callback, report=tqdm.write)
    t_dp = time.perf_counter() - t0
    beta = dp.beta

    # side by side at the chosen beta: cold starts, same tolerance
    runs = {}
    for name, method in (("lbfgs", minimize_lbfgs), ("gauss-newton-cg", minimize_gauss_newton)):
        solver.solves = solver.prepares = 0
        t0 = time.perf_counter()
        kw = {"maxiter": cfg["maxiter"]} if name == "lbfgs" else {"maxiter": 60, "max_cg": 100}
        with iteration_progress(name, total=kw["maxiter"]) as callback:
            res = method(problem, m0, beta, gtol=GTOL, callback=callback, **kw)
        elapsed = time.perf_counter() - t0
        kappa = torch.exp(res.m)
        runs[name] = dict(result=res, seconds=elapsed, solves=solver.solves, kappa=kappa,
                          rel_l2=rel_l2(kappa, kappa_true, grid))
        print(f"  {name:16s} beta={beta:.3e}: {res.iterations} iterations"
              f"{f' ({res.inner_iterations} CG)' if res.inner_iterations else ''}, {solver.solves} PDE solve batches, "
              f"{elapsed:.1f} s, J={res.objective_history[-1]:.5e}, misfit/noise={res.misfit_ratio_history[-1]:.3f}, "
              f"kappa rel L2={runs[name]['rel_l2']:.4f}", flush=True)

    kappa_dp = torch.exp(dp.m)
    lb, gn = runs["lbfgs"], runs["gauss-newton-cg"]
    metrics = {
        "kappa_rel_l2": rel_l2(kappa_dp, kappa_true, grid), "misfit_over_noise": dp.misfit_ratio,
        "taylor_slope": taylor.slope, "grad_over_forward_time": t_gradient / t_forward,
        "lbfgs_iterations": lb["result"].iterations, "beta": beta, "discrepancy_solves": len(dp.beta_path),
        "discrepancy_lbfgs_iterations": dp.iterations, "discrepancy_seconds": t_dp,
        "lbfgs_pde_solves": lb["solves"], "lbfgs_seconds": lb["seconds"],
        "lbfgs_objective": lb["result"].objective_history[-1], "lbfgs_kappa_rel_l2": lb["rel_l2"],
        "gauss_newton_iterations": gn["result"].iterations,
        "gauss_newton_cg_iterations": gn["result"].inner_iterations, "gauss_newton_pde_solves": gn["solves"],
        "gauss_newton_seconds": gn["seconds"], "gauss_newton_objective": gn["result"].objective_history[-1],
        "gauss_newton_kappa_rel_l2": gn["rel_l2"],
        "gauss_newton_misfit_over_noise": gn["result"].misfit_ratio_history[-1],
        "kappa_rel_l2_initial": rel_l2(torch.exp(m0), kappa_true, grid), "num_data": problem.num_data,
        "num_parameters": int(m0.numel()),
    }
    write_outputs(out, metrics, dp, runs, kappa_true, kappa_dp, sensors, args)
    return metrics


def write_outputs(out: Path, metrics, dp, runs, kappa_true, kappa_dp, sensors, args) -> None:
    to_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
    plot_fields(
        {"true kappa": to_np(kappa_true), "recovered (L-BFGS, discrepancy beta)": to_np(kappa_dp),
         "recovered (Gauss-Newton-CG)": to_np(runs["gauss-newton-cg"]["kappa"]),
         "|error| (L-BFGS)": np.abs(to_np(kappa_dp - kappa_true))},
        out / "kappa.png", points=sensors,
        shared_range=("true kappa", "recovered (L-BFGS, discrepancy beta)", "recovered (Gauss-Newton-CG)"),
    )
    histories = {name: r["result"] for name, r in runs.items()}
    best = min(r.objective_history[-1] for r in histories.values())
    plot_histories(
        {"J - J* (J* = lowest final J)": {k: np.maximum(np.array(r.objective_history) - best, 1e-16)
                                          for k, r in histories.items()},
         "max|grad J| / initial": {k: np.array(r.grad_norm_history) / r.grad_norm_history[0]
                                   for k, r in histories.items()},
         "misfit / noise": {k: r.misfit_ratio_history for k, r in histories.items()}},
        out / "convergence.png", hlines={"misfit / noise": 1.0},
    )
    plot_discrepancy_path(dp.beta_path, 1.0, out / "discrepancy.png")
    lb, gn = runs["lbfgs"], runs["gauss-newton-cg"]
    rows = [
        ("outer iterations", lb["result"].iterations, gn["result"].iterations),
        ("inner CG iterations", "-", gn["result"].inner_iterations),
        ("PDE solve batches (forward, adjoint, linearized)", lb["solves"], gn["solves"]),
        ("wall time [s]", f"{lb['seconds']:.2f}", f"{gn['seconds']:.2f}"),
        ("final objective J", f"{lb['result'].objective_history[-1]:.6e}", f"{gn['result'].objective_history[-1]:.6e}"),
        ("misfit / noise", f"{lb['result'].misfit_ratio_history[-1]:.3f}", f"{gn['result'].misfit_ratio_history[-1]:.3f}"),
        ("kappa relative L2 error", f"{lb['rel_l2']:.4f}", f"{gn['rel_l2']:.4f}"),
    ]
    table = methods_table(["", "L-BFGS", "Gauss-Newton-CG"], rows)
    report = f"""# Poisson inverse problem ({'quick' if args.quick else 'full'}, seed {args.seed})

Recover kappa on {metrics['num_parameters']} grid nodes from {metrics['num_data']} noisy observations
(1% noise), total-variation regularization on log kappa.

## Discrepancy principle (L-BFGS, warm starts)

beta = {metrics['beta']:.4e} after {metrics['discrepancy_solves']} solves
({metrics['discrepancy_lbfgs_iterations']} L-BFGS iterations in all):
misfit/noise = {metrics['misfit_over_noise']:.3f}, kappa relative L2 error = {metrics['kappa_rel_l2']:.4f}
(start: {metrics['kappa_rel_l2_initial']:.4f}).

## L-BFGS vs Gauss-Newton-CG at that beta (cold start, same relative gradient tolerance {GTOL:g})

{table}

## Checks

Taylor slope of the objective's gradient: {metrics['taylor_slope']:.3f} (expected 2);
objective+gradient / objective time: {metrics['grad_over_forward_time']:.2f}.

Figures: kappa.png, convergence.png, discrepancy.png.
"""
    write_results(out, metrics, report)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = case_parser("poisson_inverse", __doc__, "small setting (about half a minute on 2 CPU cores)")
    parser.add_argument("--solver", default="direct", choices=["direct", "cg-jacobi", "cg-amg"],
                        help="linear solver inside the simulator")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return case_main("poisson_inverse", run, parse_args(argv),
                     ["metrics.json", "report.md", "kappa.png", "convergence.png", "discrepancy.png"],
                     ["kappa_rel_l2", "misfit_over_noise", "taylor_slope", "grad_over_forward_time",
                      "lbfgs_iterations"])


if __name__ == "__main__":
    sys.exit(main())
