"""Case study: neural inverse operators (NIO) on the Calderon problem, against DeepONet, FNO and PDE-constrained optimization.

    -div(a grad u_l) = 0  in (0, 1)^2,   u_l = g_l on the boundary,   l = 1..L,

recover the conductivity a (random smooth field in [1, 3] S/m) from the
Dirichlet-to-Neumann data (g_l, a du_l/dn) at the 4(n-1) boundary nodes.  The
data set `calderon` (physinv.problems.calderon.data) is generated into DIR/data/
with its seed and parameters (reused when present and matching).  NIO, DeepONet
and FNO are trained on the same samples with the same budget (AdamW, cosine
schedule, same epochs and batch, validation-based early stopping, inputs
standardized with training-set statistics inside the saved model) and evaluated
on held-out test samples at multiplicative noise 0, 1 and 5% on the Neumann
data (neumann * (1 + sigma N(0, 1)), seeded; the same noise for every
method).  The classic baseline -- adjoint L-BFGS on m = log a with H1
regularization, beta by the discrepancy principle -- inverts the first test
samples from the same 1%-noise data the networks see at noise 1%.

Writes DIR/metrics.json, DIR/report.md, DIR/reconstructions_K.png,
DIR/error_vs_noise.png, DIR/training.png, DIR/models/*.pt (guarded
checkpoints).  ``--quick`` (32x32 grid, L = 20, 1536 samples) takes about 10
minutes on 2 CPU cores; the default is the paper's size (70x70, L = 20, 4096
training samples) for a GPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from physinv.casekit import add_training_flags, case_main, case_parser  # noqa: E402
from physinv.core.device import resolve_device  # noqa: E402
from physinv.core.errors import PhysinvError  # noqa: E402
from physinv.core.io import atomic_savefig, atomic_write_json, atomic_write_text  # noqa: E402
from physinv.core.seeding import seed_everything  # noqa: E402
from physinv.invert import H1Seminorm, InverseProblem, discrepancy_principle, minimize_lbfgs  # noqa: E402
from physinv.problems.calderon.data import DATASET_DEFAULTS, network_inputs  # noqa: E402
from physinv.learn.data import generate, load  # noqa: E402
from physinv.learn.models import NIO, BoundaryFNO, DeepONet, InputGuard, InputSpec  # noqa: E402
from physinv.learn.workflow import (  # noqa: E402
    Standardized,
    load_saved_model,
    predict,
    timed_inference,
    train_and_save,
)
from physinv.problems.calderon.simulator import CalderonSimulator  # noqa: E402
from physinv.viz.figures import plot_fields, plot_histories  # noqa: E402

METHODS = ("nio", "deeponet", "fno")
LABELS = {"nio": "NIO", "deeponet": "DeepONet", "fno": "FNO", "pdeco": "PDECO (L-BFGS)"}
NOISE_LEVELS = (0.0, 0.01, 0.05)
PDECO_NOISE = 0.01  # the PDECO inverts the networks' noise-1% test data
SETTINGS = {
    # quick: 2 CPU cores, <= 15 minutes in all; parameter counts ~0.2-0.35 M each
    "quick": dict(
        n=32, L=20, n_train=1024, n_val=256, n_test=256, workers=2,
        train=dict(epochs=40, batch_size=32, lr=1e-3, weight_decay=1e-4, patience=10),
        models=dict(
            nio=dict(basis=32, branch_width=128, branch_depth=3, trunk_width=128, trunk_depth=3,
                     width=16, modes=12, layers=3),
            deeponet=dict(basis=64, width=64, branch_depth=3, trunk_depth=3),
            fno=dict(width=24, modes=12, layers=4),
        ),
        pdeco_samples=5, pdeco_maxiter=500, pdeco_max_solves=12, figure_samples=3,
    ),
    # full: the NIO paper's size, for a GPU
    "full": dict(
        n=70, L=20, n_train=4096, n_val=1024, n_test=2047, workers=8,
        train=dict(epochs=100, batch_size=256, lr=1e-3, weight_decay=1e-4, patience=20),
        models=dict(
            nio=dict(basis=50, branch_width=256, branch_depth=3, trunk_width=256, trunk_depth=8,
                     width=64, modes=16, layers=1),
            deeponet=dict(basis=50, width=256, branch_depth=3, trunk_depth=8),
            fno=dict(width=64, modes=16, layers=4),
        ),
        pdeco_samples=5, pdeco_maxiter=5000, pdeco_max_solves=16, figure_samples=4,
    ),
    # smoke: seconds, for the fast test
    "smoke": dict(
        n=10, L=6, n_train=48, n_val=16, n_test=16, workers=1,
        train=dict(epochs=2, batch_size=16, lr=1e-3, weight_decay=1e-4, patience=2),
        models=dict(
            nio=dict(basis=8, branch_width=16, branch_depth=1, trunk_width=16, trunk_depth=1,
                     width=8, modes=4, layers=1),
            deeponet=dict(basis=8, width=16, branch_depth=1, trunk_depth=1),
            fno=dict(width=8, modes=4, layers=1),
        ),
        pdeco_samples=2, pdeco_maxiter=40, pdeco_max_solves=2, figure_samples=1,
    ),
}


# ----------------------------------------------------------------------------- pieces


def build_model(name: str, n: int, L: int, nb: int, kwargs: dict) -> torch.nn.Module:
    if name == "nio":
        return NIO(n, nb, 2, **kwargs)
    if name == "deeponet":
        return DeepONet(n, L, nb, 2, **kwargs)
    if name == "fno":
        return BoundaryFNO(n, 2, **kwargs)
    raise PhysinvError(f"unknown model {name!r}; allowed: {', '.join(METHODS)}")


def guarded(name: str, kwargs: dict, spec: InputSpec,
            stats: tuple[torch.Tensor, torch.Tensor, float, float]) -> InputGuard:
    """The model as trained and saved: InputGuard(Standardized(net))."""
    return InputGuard(Standardized(build_model(name, spec.n, spec.L, spec.n_boundary, kwargs), *stats), spec)


def rel_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the relative L1 error mean|pred - a| / mean|a| (the case's metric / 100)."""
    return torch.mean((pred - target).abs().flatten(1).mean(1) / target.abs().flatten(1).mean(1))


def rel_l1_percent(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Per-sample relative L1 error in percent."""
    err = (pred - target).abs().flatten(1).mean(1) / target.abs().flatten(1).mean(1)
    return 100.0 * err.detach().cpu().double().numpy()


def add_noise(neumann: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``neumann * (1 + sigma N(0, 1))`` with a seeded generator (the same for every method)."""
    if sigma == 0:
        return neumann.clone()
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(neumann.shape, generator=gen, dtype=torch.float64)
    return (neumann.double().cpu() * (1 + sigma * xi)).to(neumann.dtype).to(neumann.device)


def noise_seed(seed: int, sigma: float) -> int:
    return 1_000_003 * (seed + 1) + int(round(sigma * 1e4))


def dataset_file(out: Path, cfg: dict, seed: int) -> tuple[Path, dict, int]:
    params = {"n": cfg["n"], "L": cfg["L"]}
    total = cfg["n_train"] + cfg["n_val"] + cfg["n_test"]
    return out / "data" / f"calderon_n{cfg['n']}_L{cfg['L']}_N{total}_seed{seed}.h5", params, total


def make_data(out: Path, cfg: dict, seed: int, progress: bool = True):
    """Generate (or reuse) the data set; the equivalent command is stored in the report."""
    path, params, total = dataset_file(out, cfg, seed)
    t0 = time.perf_counter()
    generate("calderon", total, path, seed=seed, workers=cfg["workers"], chunk=64, params=params, progress=progress)
    seconds = time.perf_counter() - t0
    data = load(path)
    command = (f"physinv data generate calderon --n {total} --out {path} --seed {seed} --workers {cfg['workers']} "
               f"--chunk 64 --param n={cfg['n']} --param L={cfg['L']}")
    return data, path, command, seconds


def check_reload(path: Path, x: torch.Tensor, expected: torch.Tensor) -> tuple[bool, bool]:
    """(reloaded model reproduces the predictions, reloaded model refuses L-1 inputs)."""
    model = load_saved_model(path, guarded)
    same = bool(torch.allclose(predict(model, x.cpu()), expected.cpu(), rtol=1e-5, atol=1e-5))
    try:
        model(x[:1, :-1].cpu())
        refused = False
    except PhysinvError:
        refused = True
    return same, refused


def pdeco_invert(neumann_noisy: torch.Tensor, a_true: torch.Tensor, n: int, L: int, sigma_rel: float,
                 maxiter: int, max_solves: int = 12) -> dict:
    """Adjoint L-BFGS on m = log a with H1 regularization, beta by the discrepancy principle (tau = 1).

    The noise model is the data's: sigma_i = sigma_rel |d_i| (estimated from the noisy data, floored at
    1e-3 of the mean |d|, a measurement floor, so that near-zero entries with weights up to 1e5 times the
    others do not make the problem too ill-conditioned for L-BFGS); start a = (a_min + a_max) / 2.
    """
    sim = CalderonSimulator(n=n, L=L)
    data = neumann_noisy.detach().cpu().double()
    sigma = (sigma_rel * data.abs()).clamp_min(1e-3 * float(data.abs().mean()))
    problem = InverseProblem(sim, data, sigma, H1Seminorm(sim.grid))
    a0 = 0.5 * (DATASET_DEFAULTS["a_min"] + DATASET_DEFAULTS["a_max"])
    m0 = torch.full((n, n), math.log(a0), dtype=torch.float64)
    t0 = time.perf_counter()
    dp = discrepancy_principle(problem, m0, minimize_lbfgs, beta0=float(problem.num_data), maxiter=maxiter,
                               max_solves=max_solves, gtol=1e-5, report=lambda s: None)
    seconds = time.perf_counter() - t0
    a = torch.exp(dp.m)
    truth = a_true.detach().cpu().double()[None]
    return dict(a=a, seconds=seconds, beta=dp.beta, solves=len(dp.beta_path), iterations=dp.iterations,
                ratio=dp.misfit_ratio,
                rel_l1=float(rel_l1_percent(a[None], truth)[0]),
                rel_l1_start=float(rel_l1_percent(torch.full_like(truth, a0), truth)[0]))


# ----------------------------------------------------------------------------- the case


def run(args: argparse.Namespace) -> dict:
    setting = "smoke" if args.smoke else ("quick" if args.quick else "full")
    cfg = SETTINGS[setting]
    out = Path(args.out)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    t_start = time.perf_counter()
    progress = not args.no_progress
    print(f"calderon_nio: {setting} setting, {cfg['n']}x{cfg['n']} grid, L={cfg['L']}, "
          f"{cfg['n_train']}/{cfg['n_val']}/{cfg['n_test']} train/val/test, device {device}", flush=True)

    ds, data_path, command, t_data = make_data(out, cfg, args.seed, progress)
    a_all, neu_all = ds["a"].float(), ds["neumann"].float()
    i1, i2 = cfg["n_train"], cfg["n_train"] + cfg["n_val"]
    data = {"x_train": network_inputs(neu_all[:i1]).to(device), "y_train": a_all[:i1].to(device),
            "x_val": network_inputs(neu_all[i1:i2]).to(device), "y_val": a_all[i1:i2].to(device)}
    neu_test, a_test = neu_all[i2:].to(device), a_all[i2:].to(device)
    print(f"  data: {data_path} ({t_data:.1f} s)", flush=True)

    trained = {}
    for name in METHODS:
        print(f"  training {LABELS[name]} ...", flush=True)
        trained[name] = train_and_save(name, guarded, cfg["models"][name], cfg["train"], data, out / "models", device,
                                       args.seed, args.resume, progress)
        r = trained[name]["result"]
        print(f"  {LABELS[name]:9s} {trained[name]['params']} parameters, {r.epoch} epochs (best {r.best_epoch}), "
              f"{trained[name]['seconds']:.1f} s, best val MSE {r.best_val:.3g}", flush=True)

    # evaluation at each noise level, the same noisy data for every method
    errors: dict[str, dict[float, np.ndarray]] = {m: {} for m in METHODS}
    preds: dict[str, dict[float, torch.Tensor]] = {m: {} for m in METHODS}
    noisy_test = {s: add_noise(neu_test, s, noise_seed(args.seed, s)) for s in NOISE_LEVELS}
    for s in NOISE_LEVELS:
        x = network_inputs(noisy_test[s])
        for name in METHODS:
            p = predict(trained[name]["model"], x)
            preds[name][s] = p
            errors[name][s] = rel_l1_percent(p, a_test)
    x_clean = network_inputs(noisy_test[0.0])
    t_infer = {name: timed_inference(trained[name]["model"], x_clean) for name in METHODS}
    reload_ok, refuses = {}, {}
    for name in METHODS:
        reload_ok[name], refuses[name] = check_reload(out / "models" / f"{name}.pt", x_clean[:8], preds[name][0.0][:8])

    # PDE-constrained optimization on the first test samples, 1% noise (the networks' noise-1 data)
    k = min(cfg["pdeco_samples"], len(a_test))
    pdeco = []
    for i in tqdm(range(k), desc="PDECO (L-BFGS + discrepancy principle)", disable=not progress):
        pdeco.append(pdeco_invert(noisy_test[PDECO_NOISE][i], a_test[i], cfg["n"], cfg["L"], PDECO_NOISE,
                                  cfg["pdeco_maxiter"], cfg["pdeco_max_solves"]))
        tqdm.write(f"  PDECO sample {i}: rel L1 {pdeco[-1]['rel_l1']:.2f}% (start {pdeco[-1]['rel_l1_start']:.2f}%), "
                   f"beta {pdeco[-1]['beta']:.3g}, {pdeco[-1]['solves']} solves / {pdeco[-1]['iterations']} "
                   f"iterations, misfit/noise {pdeco[-1]['ratio']:.3f}, {pdeco[-1]['seconds']:.1f} s")
    pdeco_err = np.array([p["rel_l1"] for p in pdeco])
    pdeco_time = float(np.mean([p["seconds"] for p in pdeco]))

    metrics: dict[str, float] = {}
    for name in METHODS:
        for s in NOISE_LEVELS:
            e = errors[name][s]
            tag = f"noise{int(round(100 * s))}"
            metrics[f"{name}_median_rel_l1_{tag}"] = float(np.median(e))
            metrics[f"{name}_q25_rel_l1_{tag}"] = float(np.percentile(e, 25))
            metrics[f"{name}_q75_rel_l1_{tag}"] = float(np.percentile(e, 75))
        metrics[f"{name}_median_rel_l1_noise1_pdeco_samples"] = float(np.median(errors[name][PDECO_NOISE][:k]))
        r = trained[name]["result"]
        metrics[f"{name}_params"] = trained[name]["params"]
        metrics[f"{name}_epochs"] = r.epoch
        metrics[f"{name}_best_epoch"] = r.best_epoch
        metrics[f"{name}_train_seconds"] = trained[name]["seconds"]
        metrics[f"{name}_best_val_mse"] = r.best_val
        metrics[f"{name}_time_per_sample_s"] = t_infer[name]
        metrics[f"{name}_checkpoint_reload_ok"] = float(reload_ok[name])
        metrics[f"{name}_checkpoint_refuses_other_L"] = float(refuses[name])
    metrics.update({
        "pdeco_median_rel_l1": float(np.median(pdeco_err)),
        "pdeco_mean_rel_l1": float(np.mean(pdeco_err)),
        "pdeco_median_rel_l1_start": float(np.median([p["rel_l1_start"] for p in pdeco])),
        "pdeco_time_per_sample_s": pdeco_time,
        "pdeco_samples": k,
        "pdeco_noise_percent": 100 * PDECO_NOISE,
        "pdeco_mean_lbfgs_iterations": float(np.mean([p["iterations"] for p in pdeco])),
        "pdeco_mean_misfit_over_noise": float(np.mean([p["ratio"] for p in pdeco])),
        "speedup_nio_vs_pdeco": pdeco_time / t_infer["nio"],
        "nio_noise5_over_noise0": metrics["nio_median_rel_l1_noise5"] / metrics["nio_median_rel_l1_noise0"],
        "data_seconds": t_data,
        "n_train": cfg["n_train"], "n_val": cfg["n_val"], "n_test": len(a_test),
        "grid_n": cfg["n"], "L": cfg["L"],
    })
    metrics["total_seconds"] = time.perf_counter() - t_start
    write_outputs(out, metrics, cfg, setting, args, trained, preds, pdeco, a_test, errors, command)
    metrics["total_seconds"] = time.perf_counter() - t_start
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


# ----------------------------------------------------------------------------- outputs


def plot_error_vs_noise(errors: dict, pdeco_err: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    levels = 100 * np.array(NOISE_LEVELS)
    for j, name in enumerate(METHODS):
        med = np.array([np.median(errors[name][s]) for s in NOISE_LEVELS])
        lo = np.array([np.percentile(errors[name][s], 25) for s in NOISE_LEVELS])
        hi = np.array([np.percentile(errors[name][s], 75) for s in NOISE_LEVELS])
        x = levels + (j - 1) * 0.06
        ax.errorbar(x, med, yerr=[med - lo, hi - med], marker="o", capsize=3, label=LABELS[name])
    ax.plot([100 * PDECO_NOISE], [np.median(pdeco_err)], "k*", ms=10,
            label=f"{LABELS['pdeco']} ({len(pdeco_err)} samples)")
    ax.set_xlabel("multiplicative noise on the Neumann data [%]")
    ax.set_ylabel("median relative L1 error [%] (bars: quartiles)")
    ax.set_title("test error vs noise", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def write_outputs(out, metrics, cfg, setting, args, trained, preds, pdeco, a_test, errors, command) -> None:
    to_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
    figures = []
    for i in range(min(cfg["figure_samples"], len(pdeco))):
        fields = {"true a": to_np(a_test[i])}
        for name in METHODS:
            fields[f"{LABELS[name]} ({errors[name][PDECO_NOISE][i]:.1f}%)"] = to_np(preds[name][PDECO_NOISE][i])
        fields[f"{LABELS['pdeco']} ({pdeco[i]['rel_l1']:.1f}%)"] = to_np(pdeco[i]["a"])
        name = f"reconstructions_{i}.png"
        plot_fields(fields, out / name, shared_range=tuple(fields),
                    title=f"test sample {i}, 1% noise: true vs reconstructed a [S/m] (rel. L1 error)")
        figures.append(name)
    plot_error_vs_noise(errors, np.array([p["rel_l1"] for p in pdeco]), out / "error_vs_noise.png")
    hist = {name: trained[name]["result"].history for name in METHODS}
    plot_histories(
        {"training loss (MSE of a)": {LABELS[m]: [h["train_loss"] for h in hist[m]] for m in METHODS},
         "validation loss (MSE of a)": {LABELS[m]: [h["val_loss"] for h in hist[m]] for m in METHODS}},
        out / "training.png", xlabel="epoch",
    )
    figures += ["error_vs_noise.png", "training.png"]

    rows = []
    for name in METHODS:
        rows.append(
            f"| {LABELS[name]} | {metrics[f'{name}_params']} | {metrics[f'{name}_epochs']} "
            f"({metrics[f'{name}_best_epoch']}) | {metrics[f'{name}_train_seconds']:.0f} | "
            + " | ".join(f"{metrics[f'{name}_median_rel_l1_noise{t}']:.2f} "
                         f"[{metrics[f'{name}_q25_rel_l1_noise{t}']:.2f}, {metrics[f'{name}_q75_rel_l1_noise{t}']:.2f}]"
                         for t in (0, 1, 5))
            + f" | {metrics[f'{name}_median_rel_l1_noise1_pdeco_samples']:.2f} | "
              f"{1e3 * metrics[f'{name}_time_per_sample_s']:.3f} |")
    rows.append(f"| {LABELS['pdeco']} | {cfg['n'] ** 2} (unknowns) | - | - | - | - | - | "
                f"{metrics['pdeco_median_rel_l1']:.2f} | {1e3 * metrics['pdeco_time_per_sample_s']:.0f} |")
    t = cfg["train"]
    nio0 = metrics["nio_median_rel_l1_noise0"]
    checks = [
        ("NIO noise-0 error <= DeepONet's and FNO's", nio0 <= metrics["deeponet_median_rel_l1_noise0"]
         and nio0 <= metrics["fno_median_rel_l1_noise0"]),
        ("NIO noise-0 error <= 8%", nio0 <= 8.0),
        ("NIO noise-5 error <= 1.5 x noise-0 error", metrics["nio_noise5_over_noise0"] <= 1.5),
        ("speedup NIO vs PDECO >= 100", metrics["speedup_nio_vs_pdeco"] >= 100),
    ]
    check_rows = "\n".join(f"| {c} | {'holds' if ok else 'MISSED'} |" for c, ok in checks)
    report = f"""# Calderon problem: NIO vs DeepONet vs FNO vs PDE-constrained optimization ({setting}, seed {args.seed})

Grid {cfg['n']}x{cfg['n']}, L = {cfg['L']} trigonometric Dirichlet inputs, Neumann data at
{4 * (cfg['n'] - 1)} boundary nodes; {metrics['n_train']} / {metrics['n_val']} / {metrics['n_test']}
train / validation / test samples.  Data: `{command}` ({metrics['data_seconds']:.1f} s).

Training (identical for the three networks): AdamW lr {t['lr']:g}, weight decay {t['weight_decay']:g},
batch {t['batch_size']}, cosine schedule over {t['epochs']} epochs, early stopping after {t['patience']}
epochs without a better validation loss (best model restored), loss = mean squared error of a (S/m^2); inputs
centred per entry (input l, boundary node, channel) and scaled per (l, channel) (the
Dirichlet patterns: per (l, channel)), and the output by the training set's statistics (stored in the model).

Errors: median relative L1 error in % over the test set, [quartiles]; noise multiplies the Neumann data
by (1 + sigma N(0, 1)), the same draws for every method.  PDECO: adjoint L-BFGS on log a, H1
regularization, beta by the discrepancy principle, on the first {metrics['pdeco_samples']} test samples
with the 1% noise data (start: a = 2, error {metrics['pdeco_median_rel_l1_start']:.1f}%); its time
includes the choice of beta.  Network time: inference on one batch of all test samples, per sample.

| method | parameters | epochs (best) | train [s] | noise 0% | noise 1% | noise 5% | 1% noise, PDECO samples | time / sample [ms] |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Speedup NIO vs PDECO: {metrics['speedup_nio_vs_pdeco']:.3g}x.  NIO noise-5 / noise-0 error:
{metrics['nio_noise5_over_noise0']:.2f}.  Total wall time {metrics['total_seconds']:.0f} s.

| claim of the NIO paper | |
|---|---|
{check_rows}

Saved models (`models/NAME.pt`, with the InputGuard spec) reload to the same predictions:
{', '.join(f"{LABELS[m]} {'yes' if metrics[f'{m}_checkpoint_reload_ok'] else 'NO'}" for m in METHODS)}; and refuse
inputs with another L: {', '.join(f"{LABELS[m]} {'yes' if metrics[f'{m}_checkpoint_refuses_other_L'] else 'NO'}" for m in METHODS)}.

Figures: {', '.join(figures)}.
"""
    atomic_write_text(out / "report.md", report)
    atomic_write_json(out / "metrics.json", metrics)


KEYS = ["nio_median_rel_l1_noise0", "nio_median_rel_l1_noise1", "nio_median_rel_l1_noise5",
        "deeponet_median_rel_l1_noise0", "deeponet_median_rel_l1_noise1", "deeponet_median_rel_l1_noise5",
        "fno_median_rel_l1_noise0", "fno_median_rel_l1_noise1", "fno_median_rel_l1_noise5",
        "pdeco_median_rel_l1", "pdeco_time_per_sample_s", "nio_time_per_sample_s", "speedup_nio_vs_pdeco",
        "nio_params", "deeponet_params", "fno_params", "total_seconds"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = case_parser("calderon_nio", __doc__, "32x32 grid, L = 20, 1536 samples (about 10 minutes on 2 CPU cores)",
                         "where to train and evaluate the networks (PDECO runs on the CPU)")
    return add_training_flags(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outputs = ["metrics.json", "report.md", "reconstructions_*.png", "error_vs_noise.png", "training.png",
               "models/*.pt", "data/*.h5"]
    return case_main("calderon_nio", run, args, outputs, KEYS)


if __name__ == "__main__":
    sys.exit(main())
