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
import sys

import numpy as np
import torch
from tqdm.auto import tqdm

from physinv.casekit import (add_training_flags, case_main, case_parser, checks_table, inference_times, make_dataset,
                             methods_table, model_builder, noise_tag, plot_training, start_case, stream_seed,
                             train_methods, training_metrics, write_results)
from physinv.core.errors import PhysinvError
from physinv.core.noise import add_noise
from physinv.learn.models import NIO, BoundaryFNO, DeepONet
from physinv.learn.workflow import load_saved_model, predict
from physinv.problems.calderon.data import network_inputs
from physinv.problems.calderon.pdeco import pdeco_invert, relative_l1_percent
from physinv.problems.calderon.plots import plot_error_vs_noise
from physinv.viz.figures import plot_fields

#: Figures of the --quick run shown in the documentation (physinv docs figures): output -> docs/figures name.
DOCS_FIGURES = {
    "error_vs_noise.png": "calderon_nio_error_vs_noise.png",
    "training.png": "calderon_nio_training.png",
}

METHODS = ("nio", "deeponet", "fno")
LABELS = {"nio": "NIO", "deeponet": "DeepONet", "fno": "FNO", "pdeco": "PDECO (L-BFGS)"}
NOISE_LEVELS = (0.0, 0.01, 0.05)
PDECO_NOISE = 0.01  # the PDECO inverts the networks' noise-1% test data
_TRAIN = dict(lr=1e-3, weight_decay=1e-4)
SETTINGS = {  # quick: 2 CPU cores, <= 15 minutes, ~0.2-0.35 M parameters each; full: the NIO paper's size; smoke
    "quick": dict(n=32, L=20, n_train=1024, n_val=256, n_test=256, workers=2, figure_samples=3,
                  train=dict(epochs=40, batch_size=32, patience=10, **_TRAIN),
                  models=dict(nio=dict(basis=32, branch_width=128, branch_depth=3, trunk_width=128, trunk_depth=3,
                                       width=16, modes=12, layers=3),
                              deeponet=dict(basis=64, width=64, branch_depth=3, trunk_depth=3),
                              fno=dict(width=24, modes=12, layers=4)),
                  pdeco_samples=5, pdeco_maxiter=500, pdeco_max_solves=12),
    "full": dict(n=70, L=20, n_train=4096, n_val=1024, n_test=2047, workers=8, figure_samples=4,
                 train=dict(epochs=100, batch_size=256, patience=20, **_TRAIN),
                 models=dict(nio=dict(basis=50, branch_width=256, branch_depth=3, trunk_width=256, trunk_depth=8,
                                      width=64, modes=16, layers=1),
                             deeponet=dict(basis=50, width=256, branch_depth=3, trunk_depth=8),
                             fno=dict(width=64, modes=16, layers=4)),
                 pdeco_samples=5, pdeco_maxiter=5000, pdeco_max_solves=16),
    "smoke": dict(n=10, L=6, n_train=48, n_val=16, n_test=16, workers=1, figure_samples=1,
                  train=dict(epochs=2, batch_size=16, patience=2, **_TRAIN),
                  models=dict(nio=dict(basis=8, branch_width=16, branch_depth=1, trunk_width=16, trunk_depth=1,
                                       width=8, modes=4, layers=1),
                              deeponet=dict(basis=8, width=16, branch_depth=1, trunk_depth=1),
                              fno=dict(width=8, modes=4, layers=1)),
                  pdeco_samples=2, pdeco_maxiter=40, pdeco_max_solves=2),
}
guarded = model_builder({"nio": lambda spec, kw: NIO(spec.n, spec.n_boundary, 2, **kw),
                         "deeponet": lambda spec, kw: DeepONet(spec.n, spec.L, spec.n_boundary, 2, **kw),
                         "fno": lambda spec, kw: BoundaryFNO(spec.n, 2, **kw)})


def make_data(out, cfg: dict, seed: int, progress: bool = True):
    """Generate (or reuse) the data set; returns (data, path, command, seconds)."""
    total = cfg["n_train"] + cfg["n_val"] + cfg["n_test"]
    return make_dataset(out, "calderon", f"calderon_n{cfg['n']}_L{cfg['L']}_N{total}_seed{seed}", total, seed,
                        {"n": cfg["n"], "L": cfg["L"]}, cfg["workers"], progress)


def check_reload(path, x: torch.Tensor, expected: torch.Tensor) -> tuple[bool, bool]:
    """(reloaded model reproduces the predictions, reloaded model refuses L-1 inputs)."""
    model = load_saved_model(path, guarded)
    same = bool(torch.allclose(predict(model, x.cpu()), expected.cpu(), rtol=1e-5, atol=1e-5))
    try:
        model(x[:1, :-1].cpu())
    except PhysinvError:
        return same, True
    return same, False


def run(args: argparse.Namespace) -> dict:
    case = start_case(args, SETTINGS)
    cfg, out, device = case.cfg, case.out, case.device
    print(f"calderon_nio: {case.setting} setting, {cfg['n']}x{cfg['n']} grid, L={cfg['L']}, "
          f"{cfg['n_train']}/{cfg['n_val']}/{cfg['n_test']} train/val/test, device {device}", flush=True)
    ds = make_data(case.work, cfg, args.seed, case.progress)
    a_all, neu_all = ds.data["a"].float(), ds.data["neumann"].float()
    i1, i2 = cfg["n_train"], cfg["n_train"] + cfg["n_val"]
    data = {"x_train": network_inputs(neu_all[:i1]).to(device), "y_train": a_all[:i1].to(device),
            "x_val": network_inputs(neu_all[i1:i2]).to(device), "y_val": a_all[i1:i2].to(device)}
    neu_test, a_test = neu_all[i2:].to(device), a_all[i2:].to(device)
    print(f"  data: {ds.path} ({ds.seconds:.1f} s)", flush=True)
    trained = train_methods(case, METHODS, LABELS, guarded, data)

    # evaluation at each noise level, the same noisy data for every method
    noisy_test = {s: add_noise(neu_test, s, stream_seed(args.seed, s, "test"), scale="multiplicative").data
                  for s in NOISE_LEVELS}
    preds = {m: {s: predict(trained[m]["model"], network_inputs(noisy_test[s])) for s in NOISE_LEVELS}
             for m in METHODS}
    errors = {m: {s: relative_l1_percent(p, a_test) for s, p in by_level.items()} for m, by_level in preds.items()}
    x_clean = network_inputs(noisy_test[0.0])
    metrics = inference_times(trained, x_clean)
    for name in METHODS:
        ok, refuses = check_reload(case.work / "models" / f"{name}.pt", x_clean[:8], preds[name][0.0][:8])
        metrics.update({f"{name}_checkpoint_reload_ok": float(ok), f"{name}_checkpoint_refuses_other_L": float(refuses)})

    # PDE-constrained optimization on the first test samples, 1% noise (the networks' noise-1 data)
    k = min(cfg["pdeco_samples"], len(a_test))
    pdeco = []
    for i in tqdm(range(k), desc="PDECO (L-BFGS + discrepancy principle)", disable=not case.progress):
        p = pdeco_invert(noisy_test[PDECO_NOISE][i], a_test[i], cfg["n"], cfg["L"], PDECO_NOISE,
                         cfg["pdeco_maxiter"], cfg["pdeco_max_solves"])
        pdeco.append(p)
        tqdm.write(f"  PDECO sample {i}: rel L1 {p['rel_l1']:.2f}% (start {p['rel_l1_start']:.2f}%), beta "
                   f"{p['beta']:.3g}, {p['solves']} solves / {p['iterations']} iterations, misfit/noise "
                   f"{p['ratio']:.3f}, {p['seconds']:.1f} s")
    pdeco_err = np.array([p["rel_l1"] for p in pdeco])

    for name in METHODS:
        for s in NOISE_LEVELS:
            e, tag = errors[name][s], noise_tag(s)
            metrics[f"{name}_median_rel_l1_{tag}"] = float(np.median(e))
            metrics[f"{name}_q25_rel_l1_{tag}"] = float(np.percentile(e, 25))
            metrics[f"{name}_q75_rel_l1_{tag}"] = float(np.percentile(e, 75))
        metrics[f"{name}_median_rel_l1_noise1_pdeco_samples"] = float(np.median(errors[name][PDECO_NOISE][:k]))
    metrics.update(training_metrics(trained))
    pdeco_time = float(np.mean([p["seconds"] for p in pdeco]))
    metrics.update({
        "pdeco_median_rel_l1": float(np.median(pdeco_err)), "pdeco_mean_rel_l1": float(np.mean(pdeco_err)),
        "pdeco_median_rel_l1_start": float(np.median([p["rel_l1_start"] for p in pdeco])),
        "pdeco_time_per_sample_s": pdeco_time, "pdeco_samples": k, "pdeco_noise_percent": 100 * PDECO_NOISE,
        "pdeco_mean_lbfgs_iterations": float(np.mean([p["iterations"] for p in pdeco])),
        "pdeco_mean_misfit_over_noise": float(np.mean([p["ratio"] for p in pdeco])),
        "speedup_nio_vs_pdeco": pdeco_time / metrics["nio_time_per_sample_s"],
        "nio_noise5_over_noise0": metrics["nio_median_rel_l1_noise5"] / metrics["nio_median_rel_l1_noise0"],
        "data_seconds": ds.seconds, "n_train": cfg["n_train"], "n_val": cfg["n_val"], "n_test": len(a_test),
        "grid_n": cfg["n"], "L": cfg["L"],
    })
    to_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
    figures = []
    for i in range(min(cfg["figure_samples"], k)):
        fields = {"true a": to_np(a_test[i]),
                  **{f"{LABELS[m]} ({errors[m][PDECO_NOISE][i]:.1f}%)": to_np(preds[m][PDECO_NOISE][i]) for m in METHODS},
                  f"{LABELS['pdeco']} ({pdeco[i]['rel_l1']:.1f}%)": to_np(pdeco[i]["a"])}
        figures.append(f"reconstructions_{i}.png")
        plot_fields(fields, out / figures[-1], shared_range=tuple(fields),
                    title=f"test sample {i}, 1% noise: true vs reconstructed a [S/m] (rel. L1 error)")
    plot_error_vs_noise(NOISE_LEVELS, {LABELS[m]: errors[m] for m in METHODS}, (LABELS["pdeco"], PDECO_NOISE, pdeco_err),
                        out / "error_vs_noise.png")
    plot_training(trained, LABELS, "a", out / "training.png")
    metrics["total_seconds"] = case.elapsed()
    write_results(out, metrics, report(metrics, cfg, case.setting, args.seed, ds.command,
                                       figures + ["error_vs_noise.png", "training.png"]))
    return metrics


def report(m: dict, cfg: dict, setting: str, seed: int, command: str, figures: list[str]) -> str:
    def quartiles(name, t):
        return (f"{m[f'{name}_median_rel_l1_noise{t}']:.2f} "
                f"[{m[f'{name}_q25_rel_l1_noise{t}']:.2f}, {m[f'{name}_q75_rel_l1_noise{t}']:.2f}]")

    rows = [[LABELS[x], m[f"{x}_params"], f"{m[f'{x}_epochs']} ({m[f'{x}_best_epoch']})",
             f"{m[f'{x}_train_seconds']:.0f}", *(quartiles(x, t) for t in (0, 1, 5)),
             f"{m[f'{x}_median_rel_l1_noise1_pdeco_samples']:.2f}", f"{1e3 * m[f'{x}_time_per_sample_s']:.3f}"]
            for x in METHODS]
    rows.append([LABELS["pdeco"], f"{cfg['n'] ** 2} (unknowns)", "-", "-", "-", "-", "-",
                 f"{m['pdeco_median_rel_l1']:.2f}", f"{1e3 * m['pdeco_time_per_sample_s']:.0f}"])
    table = methods_table(["method", "parameters", "epochs (best)", "train [s]", "noise 0%", "noise 1%", "noise 5%",
                           "1% noise, PDECO samples", "time / sample [ms]"], rows)
    nio0, t = m["nio_median_rel_l1_noise0"], cfg["train"]
    checks = checks_table([
        ("NIO noise-0 error <= DeepONet's and FNO's",
         nio0 <= m["deeponet_median_rel_l1_noise0"] and nio0 <= m["fno_median_rel_l1_noise0"]),
        ("NIO noise-0 error <= 8%", nio0 <= 8.0),
        ("NIO noise-5 error <= 1.5 x noise-0 error", m["nio_noise5_over_noise0"] <= 1.5),
        ("speedup NIO vs PDECO >= 100", m["speedup_nio_vs_pdeco"] >= 100)], "claim of the NIO paper")
    yes = lambda key: ", ".join(f"{LABELS[x]} {'yes' if m[f'{x}_{key}'] else 'NO'}" for x in METHODS)  # noqa: E731
    return f"""# Calderon problem: NIO vs DeepONet vs FNO vs PDE-constrained optimization ({setting}, seed {seed})

Grid {cfg['n']}x{cfg['n']}, L = {cfg['L']} trigonometric Dirichlet inputs, Neumann data at {4 * (cfg['n'] - 1)}
boundary nodes; {m['n_train']} / {m['n_val']} / {m['n_test']} train / validation / test samples.
Data: `{command}` ({m['data_seconds']:.1f} s).

Training (identical for the three networks): AdamW lr {t['lr']:g}, weight decay {t['weight_decay']:g},
batch {t['batch_size']}, cosine schedule over {t['epochs']} epochs, early stopping after {t['patience']}
epochs without a better validation loss (best model restored), loss = mean squared error of a (S/m^2); inputs
centred per entry (input l, boundary node, channel) and scaled per (l, channel), and the output by the
training set's statistics (stored in the model).

Errors: median relative L1 error in % over the test set, [quartiles]; noise multiplies the Neumann data
by (1 + sigma N(0, 1)), the same draws for every method.  PDECO: adjoint L-BFGS on log a, H1
regularization, beta by the discrepancy principle, on the first {m['pdeco_samples']} test samples
with the 1% noise data (start: a = 2, error {m['pdeco_median_rel_l1_start']:.1f}%); its time
includes the choice of beta.  Network time: inference on one batch of all test samples, per sample.

{table}

Speedup NIO vs PDECO: {m['speedup_nio_vs_pdeco']:.3g}x.  NIO noise-5 / noise-0 error:
{m['nio_noise5_over_noise0']:.2f}.  Total wall time {m['total_seconds']:.0f} s.

{checks}

Saved models (`models/NAME.pt`, with the InputGuard spec) reload to the same predictions:
{yes('checkpoint_reload_ok')}; and refuse inputs with another L: {yes('checkpoint_refuses_other_L')}.

Figures: {', '.join(figures)}.
"""


KEYS = ["nio_median_rel_l1_noise0", "nio_median_rel_l1_noise1", "nio_median_rel_l1_noise5",
        "deeponet_median_rel_l1_noise0", "deeponet_median_rel_l1_noise1", "deeponet_median_rel_l1_noise5",
        "fno_median_rel_l1_noise0", "fno_median_rel_l1_noise1", "fno_median_rel_l1_noise5",
        "pdeco_median_rel_l1", "pdeco_time_per_sample_s", "nio_time_per_sample_s", "speedup_nio_vs_pdeco",
        "nio_params", "deeponet_params", "fno_params", "total_seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = case_parser("calderon_nio", __doc__, "32x32 grid, L = 20, 1536 samples (about 10 minutes on 2 CPU cores)",
                         "where to train and evaluate the networks (PDECO runs on the CPU)")
    outputs = ["metrics.json", "report.md", "reconstructions_*.png", "error_vs_noise.png", "training.png",
               "models/*.pt", "data/*.h5"]
    return case_main("calderon_nio", run, add_training_flags(parser).parse_args(argv), outputs, KEYS)


if __name__ == "__main__":
    sys.exit(main())
