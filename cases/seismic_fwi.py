"""Case study: seismic full-waveform inversion on OpenFWI-style data -- FWI vs InversionNet vs NIO vs the hybrid.

    (1 / v^2) d^2u/dt^2 - Laplacian u = w(t) delta(x - x_s),   data u(x_r, t) at the surface,

recover the velocity v (1500-4500 m/s) from the shot gathers of the OpenFWI
acquisition (5 sources, receivers along the surface, Ricker wavelet).  The
data sets `openfwi-<family>` (physinv.problems.seismic.data) are generated into
DIR/data/ by the package's own simulator with their seed and parameters:
the training family (FlatVel-A-style) for training, validation and the
in-family test, and two other families (CurveVel-A- and FlatFault-A-style, other
seeds) for the out-of-family (zero-shot) test.

Methods, on the same test maps and the same clean gathers:

* InversionNet (the OpenFWI encoder-decoder) and NIO (a CNN branch per shot gather,
  pooled over the shots, FNO to the map), trained alike (AdamW, cosine schedule,
  same epochs and batch, early stopping on the validation loss) on OpenFWI's
  preprocessing: gathers sign(x) log(1 + |x|) min-max scaled to [-1, 1] with the
  training set's range, velocity scaled to [-1, 1];
* multiscale FWI (physinv.problems.seismic.fwi on physinv.invert's L-BFGS-B with the
  velocity bounds, TV regularization; low-pass bands then the full band) from the
  training set's mean 1D depth profile; its weight beta is chosen once by the L-curve
  on a validation map and used for every test map;
* the hybrid: the same FWI started from InversionNet's prediction.

Metrics per OpenFWI: MAE and MSE on velocity normalized to [-1, 1], SSIM on [0, 1]
(11-pixel Gaussian window).  Writes DIR/metrics.json, DIR/report.md,
DIR/maps_in_family.png, DIR/maps_out_of_family.png, DIR/gathers.png,
DIR/misfit.png, DIR/training.png, DIR/models/*.pt.  ``--quick`` is a half-resolution
OpenFWI (35 x 35 cells of 20 m, 500 steps of 2 ms, 10 Hz, 5 shots, 35 receivers;
800 training maps, narrow networks; about 15 minutes on 2 CPU cores); the default is
OpenFWI's size (70 x 70 cells of 10 m, 1000 steps of 1 ms, 15 Hz, 70 receivers, 24k
training maps, the published InversionNet) for a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from physinv.casekit import (add_training_flags, case_main, case_parser, checks_table, inference_times, make_dataset,
                             methods_table, model_builder, plot_training, start_case, train_methods, training_metrics,
                             write_results)
from physinv.invert import lcurve_search
from physinv.learn.models import GatherNIO, InversionNet
from physinv.learn.workflow import predict
from physinv.problems.seismic.benchmark import wrapper_overhead
from physinv.problems.seismic.data import data_range, network_inputs, simulator_for
from physinv.problems.seismic.fwi import KilometresPerSecond, fwi_regularizer, multiscale_fwi
from physinv.problems.seismic.metrics import denormalize_velocity, normalize_velocity, velocity_metrics
from physinv.problems.seismic.plots import plot_gathers, plot_maps, plot_misfit

#: Figures of the --quick run shown in the documentation (physinv docs figures): output -> docs/figures name.
DOCS_FIGURES = {
    "maps_in_family.png": "seismic_maps_in_family.png",
    "maps_curvevel_a.png": "seismic_maps_curvevel_a.png",
    "gathers.png": "seismic_gathers.png",
    "misfit.png": "seismic_misfit.png",
}

METHODS = ("inversionnet", "nio")
LABELS = {"inversionnet": "InversionNet", "nio": "NIO", "fwi": "FWI", "hybrid": "InversionNet + FWI"}
TRAIN_FAMILY, OUT_FAMILIES = "flatvel-a", ("curvevel-a", "flatfault-a")
_SURVEY_QUICK = dict(nz=35, nx=35, dx=20.0, nt=500, dt=2e-3, peak_frequency=10.0, n_shots=5, n_receivers=35,
                     pml_width=10, accuracy=4)
_SURVEY_FULL = dict(nz=70, nx=70, dx=10.0, nt=1000, dt=1e-3, peak_frequency=15.0, n_shots=5, n_receivers=70,
                    pml_width=20, accuracy=4)
SETTINGS = {
    "quick": dict(survey=_SURVEY_QUICK, n_train=800, n_val=100, n_test=50, n_test_out=50, workers=2,
                  train=dict(epochs=25, batch_size=32, patience=8, lr=1e-3, weight_decay=1e-4),
                  models=dict(inversionnet=dict(width=0.25),
                              nio=dict(basis=64, channels=8, trunk_width=128, trunk_depth=3, width=24, modes=10,
                                       layers=3)),
                  fwi=dict(cutoffs=(3.0, 5.0, 7.0, None), iterations=15, samples=3, samples_out=2,
                           beta0=1e3, lcurve_count=4, lcurve_factor=10.0, lcurve_iterations=8)),
    "full": dict(survey=_SURVEY_FULL, n_train=24000, n_val=1000, n_test=500, n_test_out=500, workers=8,
                 train=dict(epochs=120, batch_size=256, patience=20, lr=1e-4, weight_decay=1e-4),
                 models=dict(inversionnet=dict(width=1.0),
                             nio=dict(basis=64, channels=16, trunk_width=128, trunk_depth=4, width=32, modes=16,
                                      layers=2)),
                 fwi=dict(cutoffs=(5.0, 8.0, 12.0, None), iterations=20, samples=10, samples_out=5,
                          beta0=1e3, lcurve_count=5, lcurve_factor=10.0, lcurve_iterations=10)),
    "smoke": dict(survey=dict(nz=12, nx=12, dx=20.0, nt=150, dt=2e-3, peak_frequency=10.0, n_shots=2,
                              n_receivers=12, pml_width=5, accuracy=4),
                  n_train=32, n_val=8, n_test=6, n_test_out=4, workers=1,
                  train=dict(epochs=2, batch_size=8, patience=2, lr=1e-3, weight_decay=1e-4),
                  models=dict(inversionnet=dict(width=0.0625),
                              nio=dict(basis=8, channels=4, trunk_width=16, trunk_depth=1, width=8, modes=4,
                                       layers=1)),
                  fwi=dict(cutoffs=(5.0, None), iterations=3, samples=1, samples_out=1,
                           beta0=1e3, lcurve_count=3, lcurve_factor=10.0, lcurve_iterations=2)),
}


def _inversionnet(spec, kw):
    return InversionNet(spec.n, spec.n, n_shots=spec.L, n_receivers=spec.n_boundary, nt=spec.channels, **kw)


def _nio(spec, kw):
    return GatherNIO(spec.n, spec.n, n_receivers=spec.n_boundary, nt=spec.channels, **kw)


guarded = model_builder({"inversionnet": _inversionnet, "nio": _nio})


def make_data(out, cfg: dict, family: str, count: int, seed: int, progress: bool = True):
    """Generate (or reuse) the data set of one family; returns (data, path, command, seconds)."""
    s = cfg["survey"]
    stem = f"openfwi-{family}_{s['nz']}x{s['nx']}_nt{s['nt']}_N{count}_seed{seed}"
    return make_dataset(out, f"openfwi-{family}", stem, count, seed, s, cfg["workers"], progress)


def run_fwi(sim, gathers: torch.Tensor, v0: torch.Tensor, fcfg: dict, beta: float, label: str, progress: bool):
    """Multiscale FWI of one map from ``v0`` with a progress bar over its iterations."""
    total = fcfg["iterations"] * len(fcfg["cutoffs"])
    with tqdm(total=total, desc=label, disable=not progress, leave=False) as bar:
        return multiscale_fwi(sim, gathers, v0, fcfg["cutoffs"], fcfg["iterations"], beta, "tv",
                              callback=lambda *_: bar.update(1))


def choose_beta(sim, gathers: torch.Tensor, v0: torch.Tensor, fcfg: dict, progress: bool):
    """The FWI weight by the L-curve on one validation map: multiscale FWI (fewer iterations) for
    beta0 / factor^k, warm-started, and the corner of (log misfit, log TV)."""
    fast = dict(fcfg, iterations=fcfg["lcurve_iterations"])
    param = KilometresPerSecond()
    reg = fwi_regularizer("tv", sim.survey.shape, sim.survey.dx)

    def solve(beta: float, m: torch.Tensor):
        result = run_fwi(sim, gathers, param(m).clamp(*sim.velocity_range), fast, beta, f"L-curve beta={beta:.3g}",
                         progress)
        band = result.bands[-1]
        band.calls = result.calls
        return band

    return lcurve_search(solve, param.inverse(v0), fcfg["beta0"], reg, factor=fcfg["lcurve_factor"],
                         count=fcfg["lcurve_count"])


def depth_profile(velocity: torch.Tensor) -> torch.Tensor:
    """The training maps' mean velocity at each depth, as a laterally constant starting model."""
    profile = velocity.mean(dim=(0, 2))
    return profile[:, None].expand(velocity.shape[1:]).contiguous()


def run(args: argparse.Namespace) -> dict:
    case = start_case(args, SETTINGS)
    cfg, out, device = case.cfg, case.out, case.device
    s, fcfg = cfg["survey"], cfg["fwi"]
    print(f"seismic_fwi: {case.setting} setting, {s['nz']}x{s['nx']} cells of {s['dx']:g} m, {s['nt']} steps of "
          f"{1e3 * s['dt']:g} ms, {s['peak_frequency']:g} Hz, {s['n_shots']} shots x {s['n_receivers']} receivers; "
          f"{cfg['n_train']}/{cfg['n_val']}/{cfg['n_test']} train/val/test ({TRAIN_FAMILY}), device {device}",
          flush=True)
    total = cfg["n_train"] + cfg["n_val"] + cfg["n_test"]
    ds = make_data(case.work, cfg, TRAIN_FAMILY, total, args.seed, case.progress)
    outs = {f: make_data(case.work, cfg, f, cfg["n_test_out"], args.seed + 1000 * (k + 1), case.progress)
            for k, f in enumerate(OUT_FAMILIES)}
    data_seconds = ds.seconds + sum(o.seconds for o in outs.values())
    print(f"  data: {ds.path} and {len(outs)} out-of-family sets ({data_seconds:.1f} s)", flush=True)
    v_all, g_all = ds.data["velocity"].float(), ds.data["gathers"].float()
    i1, i2 = cfg["n_train"], cfg["n_train"] + cfg["n_val"]
    lo, hi = data_range(g_all[:i1])
    x = lambda g: network_inputs(g, lo, hi).float()  # noqa: E731
    y = lambda v: normalize_velocity(v).float()  # noqa: E731
    data = {"x_train": x(g_all[:i1]).to(device), "y_train": y(v_all[:i1]).to(device),
            "x_val": x(g_all[i1:i2]).to(device), "y_val": y(v_all[i1:i2]).to(device)}
    tests = {"in_family": (v_all[i2:], g_all[i2:])}
    for f, o in outs.items():
        tests[f] = (o.data["velocity"].float(), o.data["gathers"].float())
    trained = train_methods(case, METHODS, LABELS, guarded, data)
    del data

    # networks on every test map (prediction clipped to the velocity range)
    to_velocity = lambda u: denormalize_velocity(u.clamp(-1, 1)).cpu()  # noqa: E731
    preds = {m: {t: to_velocity(predict(trained[m]["model"], x(g).to(device))) for t, (_, g) in tests.items()}
             for m in METHODS}
    scores = {m: {t: velocity_metrics(preds[m][t], v) for t, (v, _) in tests.items()} for m in METHODS}
    metrics = inference_times(trained, x(tests["in_family"][1]).to(device))

    # FWI and the hybrid on the first maps of each test set (CPU: Deepwave's compiled kernels)
    sim = simulator_for(s)
    v_start = depth_profile(v_all[:i1])
    print("  choosing the FWI weight by the L-curve on a validation map ...", flush=True)
    t0 = time.perf_counter()
    chosen = choose_beta(sim, g_all[i1], v_start, fcfg, case.progress)
    beta, lcurve_seconds = chosen.beta, time.perf_counter() - t0
    print(f"  beta = {beta:.3g} ({', '.join(f'{b:.3g}' for b, _, _ in chosen.beta_path)} tried, "
          f"{lcurve_seconds:.0f} s)", flush=True)
    fwi_runs = {"fwi": {}, "hybrid": {}}
    for t, (v, g) in tests.items():
        k = fcfg["samples"] if t == "in_family" else fcfg["samples_out"]
        for method, starts in (("fwi", [v_start] * k), ("hybrid", preds["inversionnet"][t][:k])):
            runs = []
            for i in range(k):
                r = run_fwi(sim, g[i], starts[i], fcfg, beta, f"{LABELS[method]} {t} map {i}", case.progress)
                runs.append(r)
                tqdm.write(f"  {LABELS[method]:20s} {t:12s} map {i}: MAE {(r.velocity - v[i]).abs().mean():.0f} m/s "
                           f"(start {(starts[i] - v[i]).abs().mean():.0f}), {r.calls.forward} forward + "
                           f"{r.calls.adjoint} adjoint, {r.wall_time:.1f} s")
            fwi_runs[method][t] = runs
    for method, by_test in fwi_runs.items():
        scores[method] = {t: velocity_metrics(torch.stack([r.velocity for r in runs]), tests[t][0][:len(runs)])
                          for t, runs in by_test.items()}
    scores["start"] = {t: velocity_metrics(v_start.expand(len(runs), -1, -1), tests[t][0][:len(runs)])
                       for t, runs in fwi_runs["fwi"].items()}

    # metrics: in family, out of family (mean over the other families), and on the FWI maps only
    def mean_out(method, key, first=None):
        vals = [scores[method][f][f"{key}_per_sample"][:first] for f in OUT_FAMILIES]
        return float(np.mean(np.concatenate(vals)))

    fwi_k = {"in_family": fcfg["samples"], "out": fcfg["samples_out"]}
    for method in (*METHODS, "fwi", "hybrid", "start"):
        for key in ("mae", "mse", "ssim"):
            per = scores[method]["in_family"][f"{key}_per_sample"]
            metrics[f"{method}_{key}_in_family"] = float(np.mean(per))
            metrics[f"{method}_{key}_out_of_family"] = mean_out(method, key)
            if method in METHODS:  # the networks on the maps FWI inverted, for the like-for-like table
                metrics[f"{method}_{key}_in_family_fwi_maps"] = float(np.mean(per[:fwi_k["in_family"]]))
                metrics[f"{method}_{key}_out_of_family_fwi_maps"] = mean_out(method, key, fwi_k["out"])
    fwi_time = float(np.mean([r.wall_time for runs in fwi_runs["fwi"].values() for r in runs]))
    learned_time = max(metrics[f"{m}_time_per_sample_s"] for m in METHODS)
    overhead = wrapper_overhead(sim, v_all[0], repeats=3 if case.setting != "smoke" else 1)
    metrics.update({
        "fwi_time_per_sample_s": fwi_time,
        "hybrid_time_per_sample_s": float(np.mean([r.wall_time for runs in fwi_runs["hybrid"].values() for r in runs])),
        "fwi_mean_forward_calls": float(np.mean([r.calls.forward for runs in fwi_runs["fwi"].values() for r in runs])),
        "fwi_beta": beta, "fwi_lcurve_seconds": lcurve_seconds,
        "speedup_learned_vs_fwi": fwi_time / learned_time,
        "wrapper_over_deepwave_time": overhead["wrapper_over_deepwave_time"],
        "grad_over_forward_time": overhead["grad_over_forward_time"],
        "forward_time_s": overhead["forward_s"], "forward_gradient_time_s": overhead["forward_gradient_s"],
        "data_seconds": data_seconds, "n_train": cfg["n_train"], "n_val": cfg["n_val"],
        "n_test": cfg["n_test"], "n_test_out_of_family": cfg["n_test_out"] * len(OUT_FAMILIES),
        "fwi_samples_in_family": fwi_k["in_family"], "fwi_samples_out_of_family": fwi_k["out"] * len(OUT_FAMILIES),
    })
    metrics.update(training_metrics(trained))

    figures = []
    for t, title in (("in_family", "in family"), (OUT_FAMILIES[0], f"out of family ({OUT_FAMILIES[0]})"),
                     (OUT_FAMILIES[1], f"out of family ({OUT_FAMILIES[1]})")):
        name = f"maps_{t.replace('-', '_')}.png"
        k = len(fwi_runs["fwi"][t])
        plot_maps({"true": tests[t][0][:k], LABELS["fwi"]: [r.velocity for r in fwi_runs["fwi"][t]],
                   LABELS["inversionnet"]: preds["inversionnet"][t][:k], LABELS["nio"]: preds["nio"][t][:k],
                   LABELS["hybrid"]: [r.velocity for r in fwi_runs["hybrid"][t]]}, s["dx"], out / name,
                  f"velocity (m/s), {title}: true and reconstructed")
        figures.append(name)
    v0, g0 = tests["in_family"][0][0], tests["in_family"][1][0]
    with torch.no_grad():
        predicted = sim(fwi_runs["fwi"]["in_family"][0].velocity)
    plot_gathers({"observed": g0, "FWI result": predicted, "residual": predicted - g0}, sim.survey, out / "gathers.png",
                 shot=s["n_shots"] // 2)
    plot_misfit({f"{LABELS[m]} ({t})": runs[0].objective_history for m, by_test in fwi_runs.items()
                 for t, runs in by_test.items() if t in ("in_family", OUT_FAMILIES[0])}, out / "misfit.png")
    plot_training(trained, LABELS, "normalized velocity", out / "training.png")
    figures += ["gathers.png", "misfit.png", "training.png"]
    metrics["total_seconds"] = case.elapsed()
    write_results(out, metrics, report(metrics, cfg, case.setting, args.seed, ds.command, figures))
    return metrics


OPENFWI_INVERSIONNET_FLATVEL_A = {"mae": 0.0131, "ssim": 0.9895, "mae_gfi": 0.0065, "ssim_gfi": 0.9976}


def report(m: dict, cfg: dict, setting: str, seed: int, command: str, figures: list[str]) -> str:
    s, f, t = cfg["survey"], cfg["fwi"], cfg["train"]

    def row(method: str, params, time_key: str):
        cells = [LABELS.get(method, method), params]
        for where in ("in_family", "out_of_family"):
            suffix = "_fwi_maps" if method in METHODS else ""
            cells += [f"{m[f'{method}_mae_{where}']:.4f}", f"{m[f'{method}_ssim_{where}']:.3f}"]
            if method in METHODS:
                cells += [f"{m[f'{method}_mae_{where}{suffix}']:.4f} / {m[f'{method}_ssim_{where}{suffix}']:.3f}"]
            else:
                cells += ["(these maps)"]
        cells.append(f"{1e3 * m[time_key]:.3g}")
        return cells

    rows = [row(x, m[f"{x}_params"], f"{x}_time_per_sample_s") for x in METHODS]
    rows += [row("fwi", f"{s['nz'] * s['nx']} (unknowns)", "fwi_time_per_sample_s"),
             row("hybrid", "-", "hybrid_time_per_sample_s")]
    table = methods_table(["method", "parameters", "MAE in family", "SSIM in family", "on the FWI maps (MAE / SSIM)",
                           "MAE out of family", "SSIM out of family", "on the FWI maps (MAE / SSIM)",
                           "time / sample [ms]"], rows)
    hybrid_ok = m["hybrid_mae_in_family"] <= min(m["fwi_mae_in_family"], m["inversionnet_mae_in_family_fwi_maps"])
    checks = checks_table([
        ("hybrid MAE in family <= min(FWI, InversionNet) on the same maps", hybrid_ok),
        ("learned >= 100x faster per sample than FWI", m["speedup_learned_vs_fwi"] >= 100),
        ("physinv forward+gradient within 1.2x of bare Deepwave", m["wrapper_over_deepwave_time"] <= 1.2),
    ], "claim checked")
    ref = OPENFWI_INVERSIONNET_FLATVEL_A
    return f"""# Seismic FWI: FWI vs InversionNet vs NIO vs InversionNet + FWI ({setting}, seed {seed})

Survey: {s['nz']} x {s['nx']} cells of {s['dx']:g} m, {s['nt']} steps of {1e3 * s['dt']:g} ms, Ricker
{s['peak_frequency']:g} Hz, {s['n_shots']} shots, {s['n_receivers']} receivers one cell below the surface,
{s['pml_width']}-cell PML, 4th-order finite differences (Deepwave).  Training family {TRAIN_FAMILY}
(OpenFWI-style, physinv's own generator -- not OpenFWI's files): {m['n_train']} / {m['n_val']} / {m['n_test']}
train / validation / test maps; out of family: {', '.join(OUT_FAMILIES)} ({m['n_test_out_of_family']} maps,
other seeds).  Data: `{command}` (and the same for the other families), {m['data_seconds']:.0f} s.

Networks trained alike: AdamW lr {t['lr']:g}, weight decay {t['weight_decay']:g}, batch {t['batch_size']},
cosine schedule over {t['epochs']} epochs, early stopping after {t['patience']} epochs (best model
restored), MSE on normalized velocity; inputs OpenFWI's log + min-max scaled gathers, standardized with
training statistics.  FWI: bands {', '.join('full' if c is None else f'{c:g} Hz' for c in f['cutoffs'])},
{f['iterations']} L-BFGS-B iterations each, bounds 1500-4500 m/s, TV weight beta = {m['fwi_beta']:.3g}
chosen by the L-curve on one validation map ({m['fwi_lcurve_seconds']:.0f} s, not counted per sample);
start: the training maps' mean depth profile (MAE {m['start_mae_in_family']:.4f} in family).  FWI and the
hybrid run on the first {m['fwi_samples_in_family']} in-family and {m['fwi_samples_out_of_family']}
out-of-family test maps ({m['fwi_mean_forward_calls']:.0f} forward + adjoint simulations each on average);
the networks are scored on every test map and on those maps alone.

MAE / MSE on velocity normalized to [-1, 1], SSIM on [0, 1] (OpenFWI's metrics):

{table}

OpenFWI's published InversionNet on FlatVel-A (full budget: 24k maps, 120 epochs, 70 x 70): MAE
{ref['mae']}, SSIM {ref['ssim']} (retrained by the GFI paper: {ref['mae_gfi']} / {ref['ssim_gfi']}).
{'This run is the quick setting: half resolution, ' + str(m['n_train']) + ' training maps and a narrow network, so its numbers are not comparable one to one.' if setting != 'full' else ''}

Speed: learned {m['speedup_learned_vs_fwi']:.3g}x faster per sample than FWI.  Simulator: forward
{1e3 * m['forward_time_s']:.0f} ms, forward + gradient {1e3 * m['forward_gradient_time_s']:.0f} ms per sample
(ratio {m['grad_over_forward_time']:.2f}); physinv's wrapper over bare Deepwave {m['wrapper_over_deepwave_time']:.3f}x.
Total wall time {m['total_seconds']:.0f} s.

{checks}

Figures: {', '.join(figures)}.
"""


KEYS = [f"{m}_{k}_{w}" for m in ("fwi", "inversionnet", "nio", "hybrid") for k in ("mae", "ssim")
        for w in ("in_family", "out_of_family")]
KEYS += ["speedup_learned_vs_fwi", "wrapper_over_deepwave_time", "grad_over_forward_time", "total_seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = case_parser("seismic_fwi", __doc__, "35x35 half-resolution OpenFWI, 800 training maps (about 15 minutes "
                         "on 2 CPU cores)", "where to train and evaluate the networks (FWI runs on the CPU)")
    outputs = ["metrics.json", "report.md", "maps_*.png", "gathers.png", "misfit.png", "training.png",
               "models/*.pt", "data/*.h5"]
    return case_main("seismic_fwi", run, add_training_flags(parser).parse_args(argv), outputs, KEYS)


if __name__ == "__main__":
    sys.exit(main())
