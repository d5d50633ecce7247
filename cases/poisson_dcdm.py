"""Case study: deep conjugate directions (DCDM) against CG, Jacobi-PCG and AMG-PCG.

Pressure-projection-like Poisson systems on 3D cell-centred grids: a box with
solid obstacles (zero flux at solids and walls) and an open top (p = 0), as in
a smoke simulation.  A residual CNN is trained, unsupervised, on right-hand
sides built from Lanczos/Ritz vectors of the training matrix (Kaneda et al.
2023); DCDM then uses it to choose search directions (A-orthogonalized
against the previous two, exact line search).  Evaluated on held-out random
right-hand sides at the training size, at twice the size, and on a different
obstacle geometry, to relative residual 1e-6, side by side with CG,
Jacobi-PCG and pyamg smoothed-aggregation PCG.  DCDM is capped at 100
iterations as in the paper; ``dcdm+cg`` is the same network with
:class:`~physinv.linalg.dcdm.StallFallback` (CG restarted once the learned
directions stall), our addition, run to the tolerance.

``--quick``: train at 32^3 for a few minutes on 2 CPU cores, evaluate at 32^3
and 64^3.  Default: train at 64^3, evaluate at 64^3 and 128^3 (a GPU job).
Writes DIR/metrics.json, DIR/report.md, DIR/residuals.png, DIR/training.png,
the training set DIR/train_data.pt and the checkpoint DIR/dcdm.pt (``--resume``
continues from it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from physinv.casekit import case_main, case_parser, start_case, write_results
from physinv.discretize.fluid import FluidPoissonOperator, box_with_obstacles
from physinv.learn.dcdm_net import DCDMNet, NetworkDirection, dcdm_loss, network_signature
from physinv.learn.ritz import make_training_set
from physinv.learn.trainer import TrainConfig, Trainer
from physinv.linalg.cg import cg
from physinv.linalg.dcdm import StallFallback, dcdm
from physinv.linalg.precond import AMGPreconditioner, JacobiPreconditioner
from physinv.viz.figures import plot_histories

#: Figures of the --quick run shown in the documentation (physinv docs figures): output -> docs/figures name.
DOCS_FIGURES = {
    "residuals.png": "poisson_dcdm_residuals.png",
    "training.png": "poisson_dcdm_training.png",
}

SETTINGS = {
    "quick": dict(train=32, test=64, samples=1024, lanczos=400, steps=1500, batch=4, channels=16, blocks=3),
    "full": dict(train=64, test=128, samples=1024, lanczos=400, steps=5000, batch=8, channels=16, blocks=6),
}
RTOL = 1e-6
MAX_CG = 5000
MAX_DCDM = 100  # the paper caps DCDM at 100 iterations


def make_operator(n: int, kind: str, seed: int, device) -> FluidPoissonOperator:
    return FluidPoissonOperator(box_with_obstacles(n, kind=kind, seed=seed), device=device)


def train(op, cfg, work: Path, args, device) -> tuple[DCDMNet, list[float]]:
    data_path = work / "train_data.pt"
    matvec64 = op.bind(None, dtype=torch.float64)
    fluid_only = lambda x: op.restrict(matvec64(op.restrict(x)))  # noqa: E731  (no identity rows in the spectrum)
    t0 = time.perf_counter()
    data = make_training_set(fluid_only, op.state_shape, cfg["samples"], cfg["lanczos"], seed=args.seed,
                             path=data_path, params={"grid": cfg["train"], "geometry": "spheres"})
    print(f"  training set: {cfg['samples']} right-hand sides from {cfg['lanczos']} Lanczos steps "
          f"({time.perf_counter() - t0:.1f} s) -> {data_path}", flush=True)
    rhs = data["rhs"].to(device)
    net = DCDMNet(ndim=3, channels=cfg["channels"], blocks=cfg["blocks"]).to(device)
    matvec32 = op.bind(None, dtype=torch.float32)
    # Adam (AdamW without weight decay), lr 1e-3 on a cosine schedule over the steps
    config = TrainConfig(epochs=cfg["steps"], batch_size=cfg["batch"], lr=1e-3, weight_decay=0.0,
                         scheduler="cosine", seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(rhs), generator=gen)

    def batches(step: int) -> torch.Tensor:
        start = (step * cfg["batch"]) % len(rhs)
        return rhs[order[start:start + cfg["batch"]]]

    trainer = Trainer(net, lambda m, b: dcdm_loss(matvec32, b, op.restrict(m(b))), config=config,
                      signature=network_signature(net), checkpoint_path=work / "dcdm.pt", checkpoint_every=100,
                      device=str(device), progress=True)
    if args.resume and (work / "dcdm.pt").exists():
        trainer.load(work / "dcdm.pt")
        print(f"  resumed from step {trainer.step}", flush=True)
    t0 = time.perf_counter()
    losses = [h["train_loss"] for h in trainer.fit_steps(batches, cfg["steps"]).history]
    print(f"  trained {cfg['steps']} steps in {time.perf_counter() - t0:.1f} s; "
          f"loss {np.mean(losses[:20]):.4f} -> {np.mean(losses[-20:]):.4f}", flush=True)
    return net.eval(), losses


def evaluate(op, net, label: str, seed: int, device) -> dict:
    """All solvers on one system (float64, x0 = 0, rtol 1e-6); iterations, seconds, residual histories."""
    gen = torch.Generator().manual_seed(seed)  # held out: not drawn from the training distribution
    b = op.restrict(torch.randn(op.state_shape, generator=gen, dtype=torch.float64).to(device))
    matvec = op.bind(None, dtype=torch.float64)
    runs = {}

    def run(name, fn, setup=lambda: None):
        t0 = time.perf_counter()
        extra = setup()
        t1 = time.perf_counter()
        res = fn(extra)
        t2 = time.perf_counter()
        true = float((b - matvec(res.x)).norm() / b.norm())
        runs[name] = dict(iterations=res.iterations, converged=res.converged, setup_s=t1 - t0, solve_s=t2 - t1,
                          seconds=t2 - t0, true_relres=true, history=res.residual_history)
        tqdm.write(f"  {label:22s} {name:12s} {res.iterations:5d} its  {t2 - t0:7.2f} s  "
                   f"relres {true:.1e}{'' if res.converged else '  NOT CONVERGED'}")

    run("cg", lambda _: cg(matvec, b, rtol=RTOL, maxiter=MAX_CG))
    run("jacobi-pcg", lambda p: cg(matvec, b, precond=p, rtol=RTOL, maxiter=MAX_CG),
        lambda: JacobiPreconditioner(op.diagonal(None, dtype=torch.float64)))
    run("amg-pcg", lambda p: cg(matvec, b, precond=p, rtol=RTOL, maxiter=MAX_CG),
        lambda: AMGPreconditioner(op.assemble(None), op.state_shape))
    direction = NetworkDirection(net).prepare(op)
    run("dcdm", lambda _: dcdm(matvec, b, direction, rtol=RTOL, maxiter=MAX_DCDM))
    fallback = StallFallback()
    run("dcdm+cg", lambda _: dcdm(matvec, b, direction, rtol=RTOL, maxiter=MAX_CG, fallback=fallback))
    runs["dcdm+cg"]["switched_at"] = fallback.switched_at
    return runs


def run_case(args: argparse.Namespace) -> dict:
    case = start_case(args, SETTINGS)
    cfg, out, device = case.cfg, case.out, case.device
    n_train, n_test = cfg["train"], cfg["test"]
    print(f"poisson_dcdm: {'quick' if args.quick else 'full'} setting, train at {n_train}^3, "
          f"test at {n_train}^3 and {n_test}^3, device {device}", flush=True)
    train_op = make_operator(n_train, "spheres", args.seed, device)
    net, history = train(train_op, cfg, case.work, args, device)

    systems = {
        str(n_train): train_op,
        str(n_test): make_operator(n_test, "spheres", args.seed, device),
        f"{n_test}_new_geometry": make_operator(n_test, "boxes", args.seed + 1, device),
    }
    results = {key: evaluate(op, net, f"{key}", args.seed + 100 + i, device)
               for i, (key, op) in enumerate(systems.items())}

    metrics: dict[str, float] = {"train_grid": n_train, "test_grid": n_test, "train_steps": cfg["steps"],
                                 "train_loss_final": float(np.mean(history[-20:]))}
    for key, runs in results.items():
        for name, r in runs.items():
            tag = {"cg": "cg", "jacobi-pcg": "jacobi", "amg-pcg": "amg", "dcdm": "dcdm", "dcdm+cg": "hybrid"}[name]
            metrics[f"iters_{tag}_{key}"] = r["iterations"]
            metrics[f"time_{tag}_{key}"] = r["seconds"]
            metrics[f"converged_{tag}_{key}"] = int(r["converged"])
            metrics[f"relres_{tag}_{key}"] = r["true_relres"]
        switched = runs["dcdm+cg"]["switched_at"]
        metrics[f"hybrid_switched_at_{key}"] = -1 if switched is None else switched
    for key in results:
        # iteration ratios only mean something when both solvers reached the tolerance
        both = metrics[f"converged_dcdm_{key}"] and metrics[f"converged_cg_{key}"]
        metrics[f"dcdm_over_cg_iters_{key}"] = (
            metrics[f"iters_dcdm_{key}"] / metrics[f"iters_cg_{key}"] if both else None)
    grown = metrics[f"converged_dcdm_{n_test}"] and metrics[f"converged_dcdm_{n_train}"]
    metrics["dcdm_iters_growth"] = (
        metrics[f"iters_dcdm_{n_test}"] / metrics[f"iters_dcdm_{n_train}"] if grown else None)
    write_outputs(out, metrics, results, history, args)
    return metrics


def write_outputs(out: Path, metrics, results, history, args) -> None:
    panels = {f"{key}: relative residual": {name: r["history"] for name, r in runs.items()}
              for key, runs in results.items()}
    plot_histories(panels, out / "residuals.png", hlines={k: RTOL for k in panels})
    plot_histories({"training loss": {"DCDM loss": history}}, out / "training.png", xlabel="step")
    rows = []
    for key, runs in results.items():
        for name, r in runs.items():
            rows.append(f"| {key} | {name} | {r['iterations']} | {r['setup_s']:.2f} | {r['solve_s']:.2f} | "
                        f"{r['true_relres']:.1e} |")
    report = "\n".join([
        f"# DCDM vs CG, Jacobi-PCG, AMG-PCG ({'quick' if args.quick else 'full'}, seed {args.seed})",
        "",
        f"Network trained at {metrics['train_grid']}^3 for {metrics['train_steps']} steps "
        f"(final loss {metrics['train_loss_final']:.4f}); relative residual target {RTOL:g}.",
        "",
        "| system | solver | iterations | setup [s] | solve [s] | true rel. residual |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "DCDM / CG iterations: " + ", ".join(f"{k}: {_ratio(metrics[f'dcdm_over_cg_iters_{k}'])}" for k in results)
        + f"; DCDM iterations at {metrics['test_grid']}^3 / at {metrics['train_grid']}^3: "
        f"{_ratio(metrics['dcdm_iters_growth'])}.",
        "",
        "Figures: residuals.png, training.png.",
        "",
    ])
    write_results(out, metrics, report)


def _ratio(value) -> str:
    return "n/a (DCDM did not reach the tolerance)" if value is None else f"{value:.2f}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = case_parser("poisson_dcdm", __doc__, "train at 32^3, test at 32^3 and 64^3 (minutes on CPU)")
    parser.add_argument("--resume", action="store_true", help="continue training from DIR/dcdm.pt")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    keys = [f"{kind}_{solver}_{system}" for system in ("32", "64", "64_new_geometry")
            for kind in ("iters", "time") for solver in ("cg", "jacobi", "amg", "dcdm")]
    keys += [f"{kind}_{solver}_{system}" for system in ("32", "64", "64_new_geometry")
             for kind in ("relres", "iters") for solver in ("dcdm", "hybrid")]
    args = parse_args(argv)
    if not args.quick:
        keys = [k.replace("_64", "_128").replace("_32", "_64") for k in keys]
    return case_main("poisson_dcdm", run_case, args, ["metrics.json", "report.md", "residuals.png", "training.png"],
                     keys + ["dcdm_iters_growth"])


if __name__ == "__main__":
    sys.exit(main())
