"""Case study: electrical impedance tomography with 16 electrodes -- Gauss-Newton against NIO and an FNO baseline.

    div(sigma grad u) = 0 in the unit disk, complete electrode model (16 electrodes, contact impedance
    0.01 Ohm m^2), adjacent injection, adjacent voltage differences: 16 x 16 data per phantom,

recover sigma (background 1 S/m, 1-4 circular or elliptic inclusions with contrast 2-5, conductive or
resistive).  Data come from the data set `eit` (physinv.problems.eit.data), simulated on the fine shipped
mesh (h = 0.05) and stored in DIR/data/ with seed and parameters.  Every method uses the same 208 of the
256 measurements: the 3 per pattern on current-carrying electrodes are dropped (they carry the contact
voltage drop and the electrode-edge singularity; usual EIT practice).  Noise: white Gaussian with standard
deviation level x RMS of the sample's 208 measurements, level 0, 1 and 5% (seeded, the same draws for
every method).

* Gauss-Newton (physinv.problems.eit.reconstruction): absolute imaging of log sigma on the coarser mesh h = 0.1 (no
  inverse crime), total variation, regularization weight by the discrepancy principle (noise floor 0.1%
  for noise-free data);
* NIO (physinv.learn.models.NIO) and the FNO baseline (BoundaryFNO: the 16 x 16 data matrix resampled to
  the pixel grid) trained on the same samples with the same budget (32 epochs), inputs carrying noise of a random level
  in [0, 5%] (the same for both);
* scores on the 32 x 32 pixel grid inside the disk: relative L2 of sigma and the Dice coefficient of the
  inclusion masks (|log sigma| > log(2)/2); every method is scored on the same test phantoms.

Writes DIR/metrics.json, DIR/report.md, DIR/reconstructions_noiseK.png, DIR/single_inclusion.png,
DIR/protocol.png, DIR/error_vs_noise.png, DIR/training.png, DIR/models/*.pt.  ``--quick`` takes about
12 minutes on 2 CPU cores; the default is larger (more samples, epochs and test phantoms) for a GPU.
"""

from __future__ import annotations

import argparse
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
from physinv.problems.eit.electrodes import ElectrodeMesh  # noqa: E402
from physinv.problems.eit.reconstruction import reconstruct_absolute  # noqa: E402
from physinv.learn.data import generate, load  # noqa: E402
from physinv.problems.eit.data import DATASET_DEFAULTS, network_inputs  # noqa: E402
from physinv.learn.models import NIO, BoundaryFNO, InputGuard, InputSpec  # noqa: E402
from physinv.learn.workflow import Standardized, predict, timed_inference, train_and_save  # noqa: E402
from physinv.problems.eit.simulator import (  # noqa: E402
    EITSimulator,
    add_noise,
    driven_measurements,
    injection_pattern,
    measurement_pattern,
)
from physinv.problems.eit.phantoms import cells_to_pixels, dice, inclusion_mask, pixel_grid, relative_l2  # noqa: E402
from physinv.problems.eit.plots import plot_protocol, plot_reconstructions  # noqa: E402
from physinv.viz.figures import plot_histories  # noqa: E402

METHODS = ("nio", "baseline")
LABELS = {"nio": "NIO", "baseline": "FNO baseline", "gn": "Gauss-Newton"}
NOISE_LEVELS = (0.0, 0.01, 0.05)
TRAIN_NOISE_MAX = 0.05
INVERSION_MESH = "eit_disk_h0.1.msh"
NOISE_FLOOR = 1e-3  # relative noise assumed for noise-free data (the data weights need a scale)
GN_SETTINGS = dict(regularizer="tv", beta_rule="discrepancy", exclude_driven=True, fit_contact=False)
SETTINGS = {
    # quick: 2 CPU cores, <= 15 minutes in all
    "quick": dict(
        n=32, n_train=1536, n_val=256, n_test=128, n_gn=32, n_single=32, workers=2,
        train=dict(epochs=32, batch_size=32, lr=1e-3, weight_decay=1e-4, patience=10),
        models=dict(
            nio=dict(basis=32, branch_width=128, branch_depth=3, trunk_width=128, trunk_depth=3,
                     width=16, modes=12, layers=3),
            baseline=dict(width=24, modes=12, layers=4),
        ),
        figure_samples=4,
    ),
    # full: larger data and budget, for a GPU
    "full": dict(
        n=64, n_train=8192, n_val=1024, n_test=1024, n_gn=64, n_single=32, workers=8,
        train=dict(epochs=150, batch_size=64, lr=1e-3, weight_decay=1e-4, patience=25),
        models=dict(
            nio=dict(basis=64, branch_width=256, branch_depth=3, trunk_width=256, trunk_depth=6,
                     width=48, modes=16, layers=3),
            baseline=dict(width=48, modes=16, layers=4),
        ),
        figure_samples=6,
    ),
    # smoke: seconds, for the fast test
    "smoke": dict(
        n=16, n_train=48, n_val=16, n_test=8, n_gn=2, n_single=2, workers=1,
        train=dict(epochs=2, batch_size=16, lr=1e-3, weight_decay=1e-4, patience=2),
        models=dict(
            nio=dict(basis=8, branch_width=16, branch_depth=1, trunk_width=16, trunk_depth=1,
                     width=8, modes=4, layers=1),
            baseline=dict(width=8, modes=4, layers=1),
        ),
        figure_samples=2,
    ),
}


# ----------------------------------------------------------------------------- pieces


def guarded(name: str, kwargs: dict, spec: InputSpec, stats: tuple) -> InputGuard:
    """The model as trained and saved: InputGuard(Standardized(net))."""
    if name == "nio":
        net = NIO(spec.n, spec.n_boundary, spec.channels, **kwargs)
    elif name == "baseline":
        net = BoundaryFNO(spec.n, spec.channels, **kwargs)
    else:
        raise PhysinvError(f"unknown model {name!r}; allowed: {', '.join(METHODS)}")
    return InputGuard(Standardized(net, *stats), spec)


def noise_seed(seed: int, level: float, split: str) -> int:
    return 1_000_003 * (seed + 1) + int(round(level * 1e4)) + {"test": 0, "single": 7, "train": 13, "val": 17}[split]


def kept_measurements() -> torch.Tensor:
    """The measurements every method uses: those on electrodes without current (208 of 256)."""
    L = DATASET_DEFAULTS["electrodes"]
    return ~driven_measurements(injection_pattern(DATASET_DEFAULTS["injection"], L),
                                measurement_pattern(DATASET_DEFAULTS["measurement"], L))


def training_inputs(voltages: torch.Tensor, keep: torch.Tensor, seed: int, split: str) -> torch.Tensor:
    """Network inputs with noise of a random level in [0, TRAIN_NOISE_MAX] per sample (seeded)."""
    levels = torch.rand(len(voltages), generator=torch.Generator().manual_seed(noise_seed(seed, 0, split)))
    noisy, _ = add_noise(voltages, 1.0, noise_seed(seed, 1.0, split), keep)
    noisy = voltages + TRAIN_NOISE_MAX * levels[:, None, None].to(voltages) * (noisy - voltages)
    return network_inputs(noisy, keep=keep)


def make_data(out: Path, name: str, n_samples: int, seed: int, params: dict, workers: int, progress: bool):
    """Generate (or reuse) a data set; returns it, its path and the equivalent command."""
    path = out / "data" / f"{name}_N{n_samples}_seed{seed}.h5"
    generate("eit", n_samples, path, seed=seed, workers=workers, chunk=64, params=params, progress=progress)
    command = (f"physinv data generate eit --n {n_samples} --out {path} --seed {seed} --workers {workers} "
               + " ".join(f"--param {k}={v}" for k, v in params.items()))
    return load(path), path, command


def scores(pred_pixels: torch.Tensor, truth_pixels: torch.Tensor, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample relative L2 and Dice on the pixel grid inside the disk."""
    rel = np.array([relative_l2(p, t, region) for p, t in zip(pred_pixels, truth_pixels)])
    dsc = np.array([dice(inclusion_mask(p), inclusion_mask(t), region) for p, t in zip(pred_pixels, truth_pixels)])
    return rel, dsc


def gauss_newton_all(sim: EITSimulator, to_pixels, voltages: torch.Tensor, stds: torch.Tensor,
                     desc: str, progress: bool) -> tuple[torch.Tensor, list[dict]]:
    """Gauss-Newton reconstructions (pixel images) and their records, one sample at a time."""
    images, records = [], []
    for d, std in tqdm(list(zip(voltages, stds)), desc=desc, disable=not progress, leave=False):
        t0 = time.perf_counter()
        result = reconstruct_absolute(sim, d.double(), float(std), **GN_SETTINGS)
        seconds = time.perf_counter() - t0
        images.append(to_pixels(result.sigma.detach().cpu()))
        records.append({"seconds": seconds, "beta": float(result.beta), "iterations": int(result.iterations)})
    return torch.stack(images), records


# ----------------------------------------------------------------------------- the case


def run(args: argparse.Namespace) -> dict:
    setting = "smoke" if args.smoke else ("quick" if args.quick else "full")
    cfg = SETTINGS[setting]
    out = Path(args.out)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    progress = not args.no_progress
    t_start = time.perf_counter()
    n = cfg["n"]
    print(f"eit: {setting} setting, {n}x{n} pixels, {cfg['n_train']}/{cfg['n_val']}/{cfg['n_test']} "
          f"train/val/test, Gauss-Newton on {cfg['n_gn']} test + {cfg['n_single']} single-inclusion phantoms, "
          f"device {device}", flush=True)

    t0 = time.perf_counter()
    total = cfg["n_train"] + cfg["n_val"] + cfg["n_test"]
    ds, data_path, command = make_data(out, "eit", total, args.seed, {"n": n}, cfg["workers"], progress)
    single, single_path, single_command = make_data(
        out, "eit_single", cfg["n_single"], args.seed + 1, {"n": n, "max_inclusions": 1}, 1, progress)
    t_data = time.perf_counter() - t0
    print(f"  data: {data_path}, {single_path} ({t_data:.1f} s)", flush=True)
    volts, sig = ds["voltages"].float(), ds["sigma"].float()
    i1, i2 = cfg["n_train"], cfg["n_train"] + cfg["n_val"]
    keep = kept_measurements()
    data = {"x_train": training_inputs(volts[:i1], keep, args.seed, "train").to(device),
            "y_train": sig[:i1].to(device),
            "x_val": training_inputs(volts[i1:i2], keep, args.seed, "val").to(device), "y_val": sig[i1:i2].to(device)}

    trained = {}
    for name in METHODS:
        print(f"  training {LABELS[name]} ...", flush=True)
        trained[name] = train_and_save(name, guarded, cfg["models"][name], cfg["train"], data, out / "models",
                                       device, args.seed, args.resume, progress)
        r = trained[name]["result"]
        print(f"  {LABELS[name]:12s} {trained[name]['params']} parameters, {r.epoch} epochs (best {r.best_epoch}), "
              f"{trained[name]['seconds']:.1f} s, best val MSE {r.best_val:.3g}", flush=True)

    _, region = pixel_grid(n)
    sets = {"test": (volts[i2:], sig[i2:]), "single": (single["voltages"].float(), single["sigma"].float())}
    inv_mesh = ElectrodeMesh.shipped(INVERSION_MESH)
    gn_sim = EITSimulator(inv_mesh, DATASET_DEFAULTS["injection"], DATASET_DEFAULTS["measurement"],
                          DATASET_DEFAULTS["contact_impedance"])
    to_pixels = cells_to_pixels(inv_mesh.mesh, n)

    metrics: dict = {}
    images: dict = {}
    records: dict = {}
    for split, (v, truth) in sets.items():
        k_gn = cfg["n_gn"] if split == "test" else len(v)
        for level in NOISE_LEVELS:
            tag = f"noise{int(round(100 * level))}"
            noisy, std = add_noise(v.double(), level, noise_seed(args.seed, level, split), keep)
            x = network_inputs(noisy.float(), keep=keep).to(device)
            preds = {name: predict(trained[name]["model"], x).cpu() for name in METHODS}
            floor = NOISE_FLOOR * noisy[:, keep].pow(2).mean(dim=1).sqrt()
            gn_img, rec = gauss_newton_all(gn_sim, to_pixels, noisy[:k_gn], torch.maximum(std[:k_gn], floor[:k_gn]),
                                           f"Gauss-Newton {split} {tag}", progress)
            preds["gn"] = gn_img.float()
            images[(split, level)] = {"truth": truth[:k_gn], **{m: p[:k_gn] for m, p in preds.items()}}
            records[(split, level)] = rec
            suffix = "" if split == "test" else "_single"
            for name in ("gn", *METHODS):
                rel, dsc = scores(preds[name][:k_gn], truth[:k_gn], region)
                metrics[f"{name}_rel_l2{suffix}_{tag}"] = float(rel.mean())
                metrics[f"{name}_dice{suffix}_{tag}"] = float(dsc.mean())
                if split == "test" and name != "gn":  # the networks on the whole test set too
                    rel_all, dsc_all = scores(preds[name], truth, region)
                    metrics[f"{name}_rel_l2_alltest_{tag}"] = float(rel_all.mean())
                    metrics[f"{name}_dice_alltest_{tag}"] = float(dsc_all.mean())
            metrics[f"gn_seconds{suffix}_{tag}"] = float(np.mean([r["seconds"] for r in rec]))
            print(f"  {split:6s} {tag}: rel L2 GN {metrics[f'gn_rel_l2{suffix}_{tag}']:.3f}, "
                  f"NIO {metrics[f'nio_rel_l2{suffix}_{tag}']:.3f}, "
                  f"FNO {metrics[f'baseline_rel_l2{suffix}_{tag}']:.3f}; "
                  f"Dice GN {metrics[f'gn_dice{suffix}_{tag}']:.3f}, NIO {metrics[f'nio_dice{suffix}_{tag}']:.3f}, "
                  f"FNO {metrics[f'baseline_dice{suffix}_{tag}']:.3f}", flush=True)
        flat = torch.full_like(truth[:k_gn], DATASET_DEFAULTS["background"])  # reference: no inclusion found
        metrics["flat_rel_l2" + suffix] = float(scores(flat, truth[:k_gn], region)[0].mean())

    x_clean = network_inputs(sets["test"][0], keep=keep).to(device)
    gn_all = [r for rec in records.values() for r in rec]
    metrics["gn_time_per_sample_s"] = float(np.mean([r["seconds"] for r in gn_all]))
    for name in METHODS:
        metrics[f"{name}_time_per_sample_s"] = timed_inference(trained[name]["model"], x_clean)
        r = trained[name]["result"]
        metrics.update({f"{name}_params": trained[name]["params"], f"{name}_epochs": r.epoch,
                        f"{name}_best_epoch": r.best_epoch, f"{name}_train_seconds": trained[name]["seconds"],
                        f"{name}_best_val_mse": r.best_val})
    metrics.update({
        "speedup_nio_vs_gn": metrics["gn_time_per_sample_s"] / metrics["nio_time_per_sample_s"],
        "gn_mean_iterations": float(np.mean([r["iterations"] for r in gn_all])),
        "n_train": cfg["n_train"], "n_val": cfg["n_val"], "n_test": cfg["n_test"], "n_gn": cfg["n_gn"],
        "n_single": cfg["n_single"], "grid_n": n, "data_seconds": t_data,
    })
    metrics["total_seconds"] = time.perf_counter() - t_start
    write_outputs(out, metrics, cfg, setting, trained, images, inv_mesh, [command, single_command], args)
    metrics["total_seconds"] = time.perf_counter() - t_start
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


# ----------------------------------------------------------------------------- outputs


def plot_error_vs_noise(metrics: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    levels = [100 * s for s in NOISE_LEVELS]
    for name, marker in (("gn", "s"), ("nio", "o"), ("baseline", "^")):
        for ax, what in zip(axes, ("rel_l2", "dice")):
            values = [metrics[f"{name}_{what}_noise{int(round(lv))}"] for lv in levels]
            ax.plot(levels, values, marker=marker, label=LABELS[name])
    axes[0].set_ylabel("mean relative L2 of sigma")
    axes[1].set_ylabel("mean Dice of the inclusion masks")
    for ax in axes:
        ax.set_xlabel("noise [% of the data RMS]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("the same test phantoms for every method", fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def reconstruction_figure(images: dict, k: int, region: np.ndarray, path: Path, title: str) -> None:
    rows, captions = [], []
    for i in range(min(k, len(images["truth"]))):
        truth = images["truth"][i]
        row = {"phantom": truth.numpy()}
        caption = {}
        for name in ("gn", "nio", "baseline"):
            pred = images[name][i]
            row[LABELS[name]] = pred.numpy()
            caption[LABELS[name]] = (f"L2 {relative_l2(pred, truth, region):.3f}, "
                                     f"Dice {dice(inclusion_mask(pred), inclusion_mask(truth), region):.2f}")
        rows.append(row)
        captions.append(caption)
    plot_reconstructions(rows, region, path, [f"sample {i}" for i in range(len(rows))], captions, title)


def write_outputs(out, metrics, cfg, setting, trained, images, inv_mesh, commands, args) -> None:
    _, region = pixel_grid(cfg["n"])
    figures = []
    for level in NOISE_LEVELS:
        name = f"reconstructions_noise{int(round(100 * level))}.png"
        reconstruction_figure(images[("test", level)], cfg["figure_samples"], region, out / name,
                              f"test phantoms, {100 * level:g}% noise: phantom | Gauss-Newton | NIO | FNO baseline")
        figures.append(name)
    reconstruction_figure(images[("single", 0.01)], cfg["figure_samples"], region, out / "single_inclusion.png",
                          "single-inclusion phantoms, 1% noise")
    sim = EITSimulator(inv_mesh)
    plot_protocol(inv_mesh.mesh.points, inv_mesh.mesh.cells, inv_mesh.electrode_edges, sim.currents,
                  sim.measurement_matrix, out / "protocol.png")
    plot_error_vs_noise(metrics, out / "error_vs_noise.png")
    hist = {name: trained[name]["result"].history for name in METHODS}
    plot_histories(
        {"training loss (MSE of sigma)": {LABELS[m]: [h["train_loss"] for h in hist[m]] for m in METHODS},
         "validation loss (MSE of sigma)": {LABELS[m]: [h["val_loss"] for h in hist[m]] for m in METHODS}},
        out / "training.png", xlabel="epoch",
    )
    figures += ["single_inclusion.png", "protocol.png", "error_vs_noise.png", "training.png"]

    def row(name):
        cells = [f"{metrics[f'{name}_rel_l2_noise{t}']:.3f} / {metrics[f'{name}_dice_noise{t}']:.2f}" for t in (0, 1, 5)]
        single = f"{metrics[f'{name}_rel_l2_single_noise1']:.3f} / {metrics[f'{name}_dice_single_noise1']:.2f}"
        t = metrics[f"{name}_time_per_sample_s"]
        return f"| {LABELS[name]} | " + " | ".join(cells) + f" | {single} | {1e3 * t:.3g} |"

    checks = [
        ("Gauss-Newton on single-inclusion phantoms at 1% noise: Dice >= 0.7",
         metrics["gn_dice_single_noise1"] >= 0.7),
        ("NIO at 1% noise: relative L2 <= Gauss-Newton's (same test phantoms)",
         metrics["nio_rel_l2_noise1"] <= metrics["gn_rel_l2_noise1"]),
        ("NIO at least 100x faster per sample than Gauss-Newton", metrics["speedup_nio_vs_gn"] >= 100),
    ]
    check_rows = "\n".join(f"| {text} | {'holds' if ok else 'does NOT hold'} |" for text, ok in checks)
    report = f"""# EIT: Gauss-Newton vs NIO vs FNO baseline ({setting} setting)

Command: `python cases/eit.py {' '.join(sys.argv[1:]) or ''}` (seed {args.seed}).
Data: `{commands[0]}` and `{commands[1]}` (simulated on the h = 0.05 mesh, 16 electrodes, adjacent/adjacent,
contact impedance {DATASET_DEFAULTS['contact_impedance']} Ohm m^2).  Every method uses the 208 measurements
on electrodes without current; noise = level x RMS of those, per sample.  Gauss-Newton inverts on
{INVERSION_MESH} ({', '.join(f'{k}={v}' for k, v in GN_SETTINGS.items())}).  The networks were trained on
inputs with noise of a random level in [0, {100 * TRAIN_NOISE_MAX:g}%].

Scores: mean relative L2 of sigma / mean Dice of the inclusion masks on the {cfg['n']}x{cfg['n']} pixel grid
inside the disk, on the same {cfg['n_gn']} test phantoms for every method (1-4 inclusions), and on
{cfg['n_single']} single-inclusion phantoms at 1% noise.  Networks on all {cfg['n_test']} test phantoms:
NIO {metrics['nio_rel_l2_alltest_noise1']:.3f} / {metrics['nio_dice_alltest_noise1']:.2f},
FNO {metrics['baseline_rel_l2_alltest_noise1']:.3f} / {metrics['baseline_dice_alltest_noise1']:.2f} at 1% noise.

| method | noise 0% | noise 1% | noise 5% | single inclusion, 1% | time / sample [ms] |
|---|---|---|---|---|---|
{row('gn')}
{row('nio')}
{row('baseline')}

NIO speedup over Gauss-Newton: {metrics['speedup_nio_vs_gn']:.3g}x (Gauss-Newton: mean
{metrics['gn_mean_iterations']:.1f} iterations, time includes the choice of the regularization weight;
networks: one batch of all test samples, per sample).  Parameters: NIO {metrics['nio_params']},
FNO {metrics['baseline_params']}; training {metrics['nio_train_seconds']:.0f} s /
{metrics['baseline_train_seconds']:.0f} s.
Reference: the flat background image (no inclusion found) scores a relative L2 of
{metrics['flat_rel_l2']:.3f} on the test phantoms and {metrics['flat_rel_l2_single']:.3f} on the single-inclusion ones.
Total wall time {metrics['total_seconds']:.0f} s.

| claim checked | |
|---|---|
{check_rows}

Figures: {', '.join(figures)}.
"""
    atomic_write_text(out / "report.md", report)


KEYS = ["gn_rel_l2_noise0", "gn_rel_l2_noise1", "gn_rel_l2_noise5", "gn_dice_noise0", "gn_dice_noise1",
        "gn_dice_noise5", "nio_rel_l2_noise0", "nio_rel_l2_noise1", "nio_rel_l2_noise5", "nio_dice_noise0",
        "nio_dice_noise1", "nio_dice_noise5", "baseline_rel_l2_noise0", "baseline_rel_l2_noise1",
        "baseline_rel_l2_noise5", "gn_dice_single_noise1", "nio_dice_single_noise1", "gn_time_per_sample_s",
        "nio_time_per_sample_s", "speedup_nio_vs_gn", "total_seconds"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = case_parser("eit", __doc__, "1536 training phantoms, 32x32 pixels (about 12 minutes on 2 CPU cores)",
                         "where to train and evaluate the networks (Gauss-Newton runs on the CPU)")
    return add_training_flags(parser).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outputs = ["metrics.json", "report.md", "reconstructions_noise*.png", "single_inclusion.png", "protocol.png",
               "error_vs_noise.png", "training.png", "models/*.pt", "data/*.h5"]
    return case_main("eit", run, args, outputs, KEYS)


if __name__ == "__main__":
    sys.exit(main())
