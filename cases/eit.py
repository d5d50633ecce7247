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

import numpy as np
import torch
from tqdm.auto import tqdm

from physinv.casekit import (add_training_flags, case_main, case_parser, checks_table, command_line, inference_times,
                             make_dataset, methods_table, model_builder, noise_tag, plot_training, start_case,
                             stream_seed, train_methods, training_metrics, write_results)
from physinv.core.noise import add_noise
from physinv.learn.models import NIO, BoundaryFNO
from physinv.learn.workflow import predict
from physinv.problems.eit.data import DATASET_DEFAULTS, network_inputs
from physinv.problems.eit.electrodes import ElectrodeMesh
from physinv.problems.eit.phantoms import cells_to_pixels, mean_scores, pixel_grid
from physinv.problems.eit.plots import plot_comparison
from physinv.problems.eit.reconstruction import reconstruct_absolute
from physinv.problems.eit.simulator import EITSimulator, driven_measurements, injection_pattern, measurement_pattern

#: Figures of the --quick run shown in the documentation (physinv docs figures): output -> docs/figures name.
DOCS_FIGURES = {
    "reconstructions_noise1.png": "eit_reconstructions.png",
    "error_vs_noise.png": "eit_error_vs_noise.png",
}

METHODS = ("nio", "baseline")
LABELS = {"gn": "Gauss-Newton", "nio": "NIO", "baseline": "FNO baseline"}
NOISE_LEVELS = (0.0, 0.01, 0.05)
TRAIN_NOISE_MAX = 0.05
INVERSION_MESH = "eit_disk_h0.1.msh"
NOISE_FLOOR = 1e-3  # relative noise assumed for noise-free data (the data weights need a scale)
guarded = model_builder({"nio": lambda spec, kw: NIO(spec.n, spec.n_boundary, spec.channels, **kw),
                         "baseline": lambda spec, kw: BoundaryFNO(spec.n, spec.channels, **kw)})
GN_SETTINGS = dict(regularizer="tv", beta_rule="discrepancy", exclude_driven=True, fit_contact=False)
SETTINGS = {  # quick: 2 CPU cores, <= 15 minutes in all; full: larger data and budget, for a GPU; smoke: the fast test
    "quick": dict(n=32, n_train=1536, n_val=256, n_test=128, n_gn=32, n_single=32, workers=2, figure_samples=4,
                  train=dict(epochs=32, batch_size=32, lr=1e-3, weight_decay=1e-4, patience=10),
                  models=dict(nio=dict(basis=32, branch_width=128, branch_depth=3, trunk_width=128, trunk_depth=3,
                                       width=16, modes=12, layers=3), baseline=dict(width=24, modes=12, layers=4))),
    "full": dict(n=64, n_train=8192, n_val=1024, n_test=1024, n_gn=64, n_single=32, workers=8, figure_samples=6,
                 train=dict(epochs=150, batch_size=64, lr=1e-3, weight_decay=1e-4, patience=25),
                 models=dict(nio=dict(basis=64, branch_width=256, branch_depth=3, trunk_width=256, trunk_depth=6,
                                      width=48, modes=16, layers=3), baseline=dict(width=48, modes=16, layers=4))),
    "smoke": dict(n=16, n_train=48, n_val=16, n_test=8, n_gn=2, n_single=2, workers=1, figure_samples=2,
                  train=dict(epochs=2, batch_size=16, lr=1e-3, weight_decay=1e-4, patience=2),
                  models=dict(nio=dict(basis=8, branch_width=16, branch_depth=1, trunk_width=16, trunk_depth=1,
                                       width=8, modes=4, layers=1), baseline=dict(width=8, modes=4, layers=1))),
}


def kept_measurements() -> torch.Tensor:
    """The measurements every method uses: those on electrodes without current (208 of 256)."""
    L = DATASET_DEFAULTS["electrodes"]
    return ~driven_measurements(injection_pattern(DATASET_DEFAULTS["injection"], L),
                                measurement_pattern(DATASET_DEFAULTS["measurement"], L))


def noisy(voltages: torch.Tensor, level: float, keep: torch.Tensor, seed: int, split: str):
    """Noise of ``level`` x the RMS of each sample's kept measurements (seeded per split and level)."""
    return add_noise(voltages, level, stream_seed(seed, level, split), scale="rms", sample_ndim=2, mask=keep)


def training_inputs(voltages: torch.Tensor, keep: torch.Tensor, seed: int, split: str) -> torch.Tensor:
    """Network inputs with noise of a random level in [0, TRAIN_NOISE_MAX] per sample (seeded)."""
    levels = torch.rand(len(voltages), generator=torch.Generator().manual_seed(stream_seed(seed, 0, split)))
    unit = noisy(voltages, 1.0, keep, seed, split).data
    return network_inputs(voltages + TRAIN_NOISE_MAX * levels[:, None, None].to(voltages) * (unit - voltages), keep=keep)


def gauss_newton_all(sim, to_pixels, voltages, stds, desc: str, progress: bool) -> tuple[torch.Tensor, list[dict]]:
    """Gauss-Newton reconstructions (pixel images) and their records, one sample at a time."""
    images, records = [], []
    for d, std in tqdm(list(zip(voltages, stds)), desc=desc, disable=not progress, leave=False):
        t0 = time.perf_counter()
        result = reconstruct_absolute(sim, d.double(), float(std), **GN_SETTINGS)
        records.append({"seconds": time.perf_counter() - t0, "beta": float(result.beta),
                        "iterations": int(result.iterations)})
        images.append(to_pixels(result.sigma.detach().cpu()))
    return torch.stack(images), records


def run(args: argparse.Namespace) -> dict:
    case = start_case(args, SETTINGS)
    cfg, out, device, n = case.cfg, case.out, case.device, case.cfg["n"]
    print(f"eit: {case.setting} setting, {n}x{n} pixels, {cfg['n_train']}/{cfg['n_val']}/{cfg['n_test']} "
          f"train/val/test, Gauss-Newton on {cfg['n_gn']} test + {cfg['n_single']} single-inclusion phantoms, "
          f"device {device}", flush=True)
    total = cfg["n_train"] + cfg["n_val"] + cfg["n_test"]
    ds = make_dataset(case.work, "eit", f"eit_N{total}_seed{args.seed}", total, args.seed, {"n": n}, cfg["workers"],
                      case.progress)
    single = make_dataset(case.work, "eit", f"eit_single_N{cfg['n_single']}_seed{args.seed + 1}", cfg["n_single"],
                          args.seed + 1, {"n": n, "max_inclusions": 1}, 1, case.progress)
    print(f"  data: {ds.path}, {single.path} ({ds.seconds + single.seconds:.1f} s)", flush=True)
    volts, sig = ds.data["voltages"].float(), ds.data["sigma"].float()
    i1, i2 = cfg["n_train"], cfg["n_train"] + cfg["n_val"]
    keep = kept_measurements()
    data = {"x_train": training_inputs(volts[:i1], keep, args.seed, "train").to(device), "y_train": sig[:i1].to(device),
            "x_val": training_inputs(volts[i1:i2], keep, args.seed, "val").to(device), "y_val": sig[i1:i2].to(device)}
    trained = train_methods(case, METHODS, LABELS, guarded, data)

    region = pixel_grid(n)[1]
    sets = {"test": (volts[i2:], sig[i2:]), "single": (single.data["voltages"].float(), single.data["sigma"].float())}
    inv_mesh = ElectrodeMesh.shipped(INVERSION_MESH)
    gn_sim = EITSimulator(inv_mesh, DATASET_DEFAULTS["injection"], DATASET_DEFAULTS["measurement"],
                          DATASET_DEFAULTS["contact_impedance"])
    to_pixels = cells_to_pixels(inv_mesh.mesh, n)
    metrics, images, records = {}, {}, []
    for split, (v, truth) in sets.items():
        k, suffix = (cfg["n_gn"], "") if split == "test" else (len(v), "_single")
        for level in NOISE_LEVELS:
            tag = noise_tag(level)
            d, std = noisy(v.double(), level, keep, args.seed, split)
            x = network_inputs(d.float(), keep=keep).to(device)
            preds = {name: predict(trained[name]["model"], x).cpu() for name in METHODS}
            floor = NOISE_FLOOR * d[:, keep].pow(2).mean(dim=1).sqrt()
            gn_img, rec = gauss_newton_all(gn_sim, to_pixels, d[:k], torch.maximum(std.flatten()[:k], floor[:k]),
                                           f"Gauss-Newton {split} {tag}", case.progress)
            preds["gn"] = gn_img.float()
            images[(split, level)] = {"truth": truth[:k], **{m: p[:k] for m, p in preds.items()}}
            records += rec
            for name in LABELS:
                metrics[f"{name}_rel_l2{suffix}_{tag}"], metrics[f"{name}_dice{suffix}_{tag}"] = mean_scores(
                    preds[name][:k], truth[:k], region)
                if split == "test" and name != "gn":  # the networks on the whole test set too
                    metrics[f"{name}_rel_l2_alltest_{tag}"], metrics[f"{name}_dice_alltest_{tag}"] = mean_scores(
                        preds[name], truth, region)
            metrics[f"gn_seconds{suffix}_{tag}"] = float(np.mean([r["seconds"] for r in rec]))
            print(f"  {split:6s} {tag}: rel L2 / Dice " + ", ".join(
                f"{LABELS[m]} {metrics[f'{m}_rel_l2{suffix}_{tag}']:.3f} / {metrics[f'{m}_dice{suffix}_{tag}']:.3f}"
                for m in LABELS), flush=True)
        flat = torch.full_like(truth[:k], DATASET_DEFAULTS["background"])  # reference: no inclusion found
        metrics["flat_rel_l2" + suffix] = mean_scores(flat, truth[:k], region)[0]

    x_clean = network_inputs(sets["test"][0], keep=keep).to(device)
    metrics["gn_time_per_sample_s"] = float(np.mean([r["seconds"] for r in records]))
    metrics.update({**inference_times(trained, x_clean), **training_metrics(trained)})
    metrics.update({
        "speedup_nio_vs_gn": metrics["gn_time_per_sample_s"] / metrics["nio_time_per_sample_s"],
        "gn_mean_iterations": float(np.mean([r["iterations"] for r in records])),
        "n_train": cfg["n_train"], "n_val": cfg["n_val"], "n_test": cfg["n_test"], "n_gn": cfg["n_gn"],
        "n_single": cfg["n_single"], "grid_n": n, "data_seconds": ds.seconds + single.seconds,
    })
    figures = plot_comparison(out, images, {m: LABELS[m] for m in ("gn", *METHODS)}, NOISE_LEVELS,
                              cfg["figure_samples"], region, inv_mesh, metrics)
    plot_training(trained, LABELS, "sigma", out / "training.png")
    metrics["total_seconds"] = case.elapsed()
    write_results(out, metrics, report(metrics, cfg, case.setting, args.seed, [ds.command, single.command], figures))
    return metrics


def report(m: dict, cfg: dict, setting: str, seed: int, commands: list[str], figures: list[str]) -> str:
    def pair(name, tag):
        return f"{m[f'{name}_rel_l2{tag}']:.3f} / {m[f'{name}_dice{tag}']:.2f}"

    table = methods_table(
        ["method", "noise 0%", "noise 1%", "noise 5%", "single inclusion, 1%", "time / sample [ms]"],
        [[LABELS[x], *(pair(x, f"_noise{t}") for t in (0, 1, 5)), pair(x, "_single_noise1"),
          f"{1e3 * m[f'{x}_time_per_sample_s']:.3g}"] for x in LABELS])
    checks = checks_table([
        ("Gauss-Newton on single-inclusion phantoms at 1% noise: Dice >= 0.7", m["gn_dice_single_noise1"] >= 0.7),
        ("NIO at 1% noise: relative L2 <= Gauss-Newton's (same test phantoms)",
         m["nio_rel_l2_noise1"] <= m["gn_rel_l2_noise1"]),
        ("NIO at least 100x faster per sample than Gauss-Newton", m["speedup_nio_vs_gn"] >= 100)])
    return f"""# EIT: Gauss-Newton vs NIO vs FNO baseline ({setting} setting)

Command: `{command_line("eit")}` (seed {seed}).
Data: `{commands[0]}` and `{commands[1]}` (simulated on the h = 0.05 mesh, 16 electrodes, adjacent/adjacent,
contact impedance {DATASET_DEFAULTS['contact_impedance']} Ohm m^2).  Every method uses the 208 measurements
on electrodes without current; noise = level x RMS of those, per sample.  Gauss-Newton inverts on
{INVERSION_MESH} ({', '.join(f'{k}={v}' for k, v in GN_SETTINGS.items())}).  The networks were trained on
inputs with noise of a random level in [0, {100 * TRAIN_NOISE_MAX:g}%].

Scores: mean relative L2 of sigma / mean Dice of the inclusion masks on the {cfg['n']}x{cfg['n']} pixel grid
inside the disk, on the same {cfg['n_gn']} test phantoms for every method (1-4 inclusions), and on
{cfg['n_single']} single-inclusion phantoms at 1% noise.  Networks on all {cfg['n_test']} test phantoms at 1% noise:
NIO {pair('nio', '_alltest_noise1')}, FNO {pair('baseline', '_alltest_noise1')}.

{table}

NIO speedup over Gauss-Newton: {m['speedup_nio_vs_gn']:.3g}x (Gauss-Newton: mean {m['gn_mean_iterations']:.1f}
iterations, time includes the choice of the regularization weight; networks: one batch of all test samples, per
sample).  Parameters: NIO {m['nio_params']}, FNO {m['baseline_params']}; training {m['nio_train_seconds']:.0f} s /
{m['baseline_train_seconds']:.0f} s.  Reference: the flat background image (no inclusion found) scores a relative
L2 of {m['flat_rel_l2']:.3f} on the test phantoms and {m['flat_rel_l2_single']:.3f} on the single-inclusion ones.
Total wall time {m['total_seconds']:.0f} s.

{checks}

Figures: {', '.join(figures)}.
"""


KEYS = ["gn_rel_l2_noise0", "gn_rel_l2_noise1", "gn_rel_l2_noise5", "gn_dice_noise0", "gn_dice_noise1",
        "gn_dice_noise5", "nio_rel_l2_noise0", "nio_rel_l2_noise1", "nio_rel_l2_noise5", "nio_dice_noise0",
        "nio_dice_noise1", "nio_dice_noise5", "baseline_rel_l2_noise0", "baseline_rel_l2_noise1",
        "baseline_rel_l2_noise5", "gn_dice_single_noise1", "nio_dice_single_noise1", "gn_time_per_sample_s",
        "nio_time_per_sample_s", "speedup_nio_vs_gn", "total_seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = case_parser("eit", __doc__, "1536 training phantoms, 32x32 pixels (about 12 minutes on 2 CPU cores)",
                         "where to train and evaluate the networks (Gauss-Newton runs on the CPU)")
    outputs = ["metrics.json", "report.md", "reconstructions_noise*.png", "single_inclusion.png", "protocol.png",
               "error_vs_noise.png", "training.png", "models/*.pt", "data/*.h5"]
    return case_main("eit", run, add_training_flags(parser).parse_args(argv), outputs, KEYS)


if __name__ == "__main__":
    sys.exit(main())
