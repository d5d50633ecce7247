"""Case study: 1D laminar premixed flame (FlamePINN-1D case 1), PINN forward and inverse vs the adjoint fit.

Forward: the flame speed s_L (an eigenvalue) and T(x) at phi = 0.46, 1 atm,
T_in = 298 K, by a deepxde PINN (torch, float64; tanh MLP, T hard-constrained
to [T_in, T_max] with exact inlet conditions T(0) = T_in, T_x(0) = 1e5 K/m),
against the converged, differentiable simulator physinv.problems.flame.simulator.

Inverse: lambda, E_a (and s_L) from 10 observations of T and u with 2%
multiplicative Gaussian noise (data from the simulator on a finer grid,
seeded by --seed).  PINN (s_L, lambda, E_a trainable; start 0.4, 0.03, 1.5e5)
side by side with the classic weighted least-squares fit of (lambda, E_a)
through the simulator (Gauss-Newton with implicit-adjoint derivatives, s_L
derived, 1-sigma from the Gauss-Newton Hessian).

Writes DIR/metrics.json, DIR/report.md, DIR/fields_forward.png,
DIR/fields_inverse.png, DIR/loss.png, DIR/params.png; with --sweep also
DIR/sweep.json, DIR/sweep_pinn.png, DIR/sweep_classic.png (errors vs noise
level and number of observations).  --quick takes about 3 minutes on 2 CPU
cores (the sweep adds about 10 more).
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
from tqdm.auto import tqdm  # noqa: E402

from physinv.casekit import case_main, case_parser  # noqa: E402
from physinv.core.device import resolve_device  # noqa: E402
from physinv.core.io import atomic_savefig, atomic_write_json, atomic_write_text  # noqa: E402
from physinv.core.seeding import seed_everything  # noqa: E402
from physinv.problems.flame.fit import fit_flame, synthetic_observations  # noqa: E402
from physinv.problems.flame.pinn import PINNSettings, train_flame_pinn  # noqa: E402
from physinv.problems.flame.model import DEFAULT_PARAMS  # noqa: E402
from physinv.problems.flame.solver import solve_flame  # noqa: E402

PHI, T_IN, P_ATM = 0.46, 298.0, 1.0
SL_ANCHOR = 0.34354  # FlamePINN-1D's 10,000-point shooting reference (first order, ~0.06% above the h->0 limit)
NOISE, N_OBS = 0.02, 10
REFERENCE_GRID = 3001
SETTINGS = {
    # paper: 1001 collocation points, Adam 1e-3 decayed 0.95 every 1000 steps, 30,000 steps; then L-BFGS
    "quick": PINNSettings(adam_iterations=5000, lbfgs_iterations=1000, display_every=250),
    "full": PINNSettings(adam_iterations=30000, lbfgs_iterations=5000, display_every=500),
}
SWEEP_NOISE = (0.0, 0.005, 0.01, 0.02)
SWEEP_COUNTS = (5, 10, 15, 25)
FIELDS = (("T", "T [K]"), ("u", "u [m/s]"), ("rho", "rho [kg/m^3]"), ("Y_F", "Y_F"))
TRUE = {"lam": DEFAULT_PARAMS["lam"], "Ea": DEFAULT_PARAMS["Ea"]}


def rel_l2(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    """sqrt(int (a - b)^2 dx / int b^2 dx) (trapezoidal rule on the reference nodes)."""
    return float(np.sqrt(np.trapezoid((a - b) ** 2, x) / np.trapezoid(b**2, x)))


def field_errors(fields: dict, ref) -> dict:
    return {k: rel_l2(np.asarray(fields[k]), getattr(ref, k), ref.x) for k, _ in FIELDS}


def inverse_pair(obs, settings: PINNSettings, seed: int, device, sL_true: float, desc: str) -> dict:
    """PINN and classic inversions of the same data; parameter errors (inferred/true - 1)."""
    pinn = train_flame_pinn(PHI, T_IN, P_ATM, observations=obs, infer=("sL", "lam", "Ea"), settings=settings,
                            seed=seed, device=device, desc=desc)
    classic = fit_flame(obs, PHI, T_in=T_IN, p_atm=P_ATM)
    truth = {**TRUE, "sL": sL_true}
    return {
        "pinn": pinn, "classic": classic,
        "pinn_err": {k: pinn.params[k] / truth[k] - 1 for k in truth},
        "classic_err": {k: classic.params[k] / truth[k] - 1 for k in truth},
    }


def run(args: argparse.Namespace) -> dict:
    mode = "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    out = Path(args.out)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    t_start = time.perf_counter()
    print(f"flame_pinn: {mode} setting (Adam {settings.adam_iterations} + L-BFGS {settings.lbfgs_iterations}, "
          f"{settings.collocation} collocation points), phi={PHI}, {P_ATM} atm, T_in={T_IN} K, device {device}",
          flush=True)

    # reference: the converged simulator
    t0 = time.perf_counter()
    ref = solve_flame(PHI, T_IN, P_ATM, grid=REFERENCE_GRID)
    t_ref = time.perf_counter() - t0
    print(f"  reference s_L = {ref.s_L:.6f} m/s ({REFERENCE_GRID} nodes, {t_ref:.2f} s); "
          f"FlamePINN-1D's shooting value {SL_ANCHOR} ({ref.s_L / SL_ANCHOR - 1:+.3%})", flush=True)

    # forward PINN
    fwd = train_flame_pinn(PHI, T_IN, P_ATM, settings=settings, seed=args.seed, device=device, desc="PINN forward")
    fwd_fields = fwd.fields(ref.x)
    fwd_err = field_errors(fwd_fields, ref)
    print(f"  PINN forward: s_L = {fwd.s_L:.6f} ({fwd.s_L / ref.s_L - 1:+.3e}), T rel L2 {fwd_err['T']:.3e}, "
          f"{fwd.seconds:.1f} s", flush=True)

    # inverse: PINN and classic on the same data
    obs = synthetic_observations(PHI, N_OBS, NOISE, seed=args.seed, T_in=T_IN, p_atm=P_ATM)
    inv = inverse_pair(obs, settings, args.seed, device, ref.s_L, "PINN inverse")
    pinn, classic = inv["pinn"], inv["classic"]
    pe, ce = inv["pinn_err"], inv["classic_err"]
    inv_pinn_fields = pinn.fields(ref.x)
    inv_classic_fields = classic.fields(ref.x)
    print(f"  PINN inverse:    lambda {pe['lam']:+.3%}, E_a {pe['Ea']:+.3%}, s_L {pe['sL']:+.3%} "
          f"({pinn.seconds:.1f} s)", flush=True)
    print(f"  classic inverse: lambda {ce['lam']:+.3%} (1-sigma {classic.sigma['lam'] / TRUE['lam']:.2%}), "
          f"E_a {ce['Ea']:+.3%} (1-sigma {classic.sigma['Ea'] / TRUE['Ea']:.2%}), s_L {ce['sL']:+.3%} "
          f"(1-sigma {classic.sigma['sL'] / ref.s_L:.2%}); {classic.iterations} Gauss-Newton iterations, "
          f"{classic.seconds:.2f} s", flush=True)

    metrics = {
        "sL_reference": ref.s_L,
        "sL_anchor": SL_ANCHOR,
        "sL_reference_vs_anchor": ref.s_L / SL_ANCHOR - 1,
        "sL_pinn": fwd.s_L,
        "sL_pinn_rel_err": fwd.s_L / ref.s_L - 1,
        "T_pinn_rel_l2": fwd_err["T"],
        "u_pinn_rel_l2": fwd_err["u"],
        "rho_pinn_rel_l2": fwd_err["rho"],
        "YF_pinn_rel_l2": fwd_err["Y_F"],
        "pinn_forward_final_loss": fwd.loss_history[-1],
        "inv_pinn_lambda_rel_err": pe["lam"],
        "inv_pinn_Ea_rel_err": pe["Ea"],
        "inv_pinn_sL_rel_err": pe["sL"],
        "inv_pinn_T_rel_l2": rel_l2(inv_pinn_fields["T"], ref.T, ref.x),
        "inv_pinn_final_residual_loss": pinn.residual_history[-1],
        "inv_pinn_final_data_loss": pinn.data_history[-1],
        "inv_classic_lambda_rel_err": ce["lam"],
        "inv_classic_Ea_rel_err": ce["Ea"],
        "inv_classic_sL_rel_err": ce["sL"],
        "inv_classic_lambda_sigma": classic.sigma["lam"],
        "inv_classic_Ea_sigma": classic.sigma["Ea"],
        "inv_classic_sL_sigma": classic.sigma["sL"],
        "inv_classic_lambda_Ea_correlation": classic.correlation,
        "inv_classic_T_rel_l2": rel_l2(inv_classic_fields["T"], ref.T, ref.x),
        "inv_classic_misfit_over_noise": classic.misfit_over_noise,
        "inv_classic_iterations": classic.iterations,
        "time_reference_s": t_ref,
        "time_pinn_forward_s": fwd.seconds,
        "time_pinn_s": pinn.seconds,
        "time_classic_s": classic.seconds,
        "noise": NOISE,
        "n_obs": N_OBS,
        "data_seed": args.seed,
        "adam_iterations": settings.adam_iterations,
        "lbfgs_iterations": settings.lbfgs_iterations,
    }
    write_figures(out, ref, fwd, fwd_fields, pinn, inv_pinn_fields, classic, inv_classic_fields, obs,
                  settings.adam_iterations)
    sweep = run_sweep(args, settings, device, ref.s_L, out) if args.sweep else None
    metrics["time_total_s"] = time.perf_counter() - t_start
    write_report(out, metrics, mode, args, classic, sweep)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


# ----------------------------------------------------------------------------------------------
# sweep over noise level and number of observations


def run_sweep(args, settings: PINNSettings, device, sL_true: float, out: Path) -> dict:
    configs = [(eta, N_OBS) for eta in SWEEP_NOISE] + [(NOISE, n) for n in SWEEP_COUNTS if n != N_OBS]
    rows = []
    for eta, n in tqdm(configs, desc="sweep"):
        obs = synthetic_observations(PHI, n, eta, seed=args.seed, T_in=T_IN, p_atm=P_ATM)
        inv = inverse_pair(obs, settings, args.seed, device, sL_true, f"PINN noise {eta:g} n {n}")
        rows.append({"noise": eta, "n_obs": n,
                     **{f"pinn_{k}_rel_err": v for k, v in inv["pinn_err"].items()},
                     **{f"classic_{k}_rel_err": v for k, v in inv["classic_err"].items()},
                     **{f"classic_{k}_sigma_rel": inv["classic"].sigma[k] / (TRUE | {"sL": sL_true})[k]
                        for k in ("lam", "Ea", "sL")},
                     "pinn_seconds": inv["pinn"].seconds, "classic_seconds": inv["classic"].seconds})
        tqdm.write(f"  sweep noise {eta:g}, {n} points: PINN lambda {rows[-1]['pinn_lam_rel_err']:+.2%}, "
                   f"E_a {rows[-1]['pinn_Ea_rel_err']:+.2%}; classic lambda {rows[-1]['classic_lam_rel_err']:+.2%}, "
                   f"E_a {rows[-1]['classic_Ea_rel_err']:+.2%}")
    sweep = {"rows": rows, "seed": args.seed}
    atomic_write_json(out / "sweep.json", sweep)
    for method in ("pinn", "classic"):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, (key, select, label) in zip(axes, (
                ("noise", lambda r: r["n_obs"] == N_OBS, "relative noise level [%]"),
                ("n_obs", lambda r: r["noise"] == NOISE, "number of observation points"))):
            sel = sorted((r for r in rows if select(r)), key=lambda r: r[key])
            xs = np.array([r[key] * (100 if key == "noise" else 1) for r in sel])
            for p, name in (("lam", "lambda"), ("Ea", "E_a"), ("sL", "s_L")):
                err = np.array([abs(r[f"{method}_{p}_rel_err"]) for r in sel]) * 100
                line, = ax.plot(xs, err, "o-", label=f"|{name} error|")
                if method == "classic":
                    ax.plot(xs, np.array([r[f"classic_{p}_sigma_rel"] for r in sel]) * 100, "--",
                            color=line.get_color(), lw=0.8, label=f"1-sigma {name}")
            ax.set_xlabel(label)
            ax.set_ylabel("relative error [%]")
            ax.set_yscale("symlog", linthresh=0.01)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{'PINN' if method == 'pinn' else 'classic adjoint fit'}: parameter errors "
                     f"({N_OBS} points when varying noise, {NOISE:.0%} noise when varying points; seed {args.seed})",
                     fontsize=9)
        _save(fig, out / f"sweep_{method}.png")
    return sweep


# ----------------------------------------------------------------------------------------------
# outputs


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def write_figures(out: Path, ref, fwd, fwd_fields, pinn, pinn_fields, classic, classic_fields, obs,
                  adam_iterations: int) -> None:
    xmm = ref.x * 1e3
    for name, curves, points in (
            ("fields_forward.png", {"PINN (forward)": fwd_fields}, False),
            ("fields_inverse.png", {"PINN (inverse)": pinn_fields, "classic fit": classic_fields}, True)):
        fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
        for ax, (key, label) in zip(axes, FIELDS):
            ax.plot(xmm, getattr(ref, key), "k-", lw=2.5, alpha=0.4, label="reference (simulator)")
            for (cname, f), style in zip(curves.items(), ("--", ":")):
                ax.plot(xmm, f[key], style, lw=1.5, label=cname)
            if points and key in ("T", "u"):
                ax.plot(obs.x * 1e3, getattr(obs, key), "o", ms=4, mfc="none", label=f"data ({obs.noise:.0%} noise)")
            ax.set_xlabel("x [mm]")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        _save(fig, out / name)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].semilogy(fwd.steps, fwd.loss_history, label="forward: residual loss")
    axes[0].semilogy(pinn.steps, pinn.residual_history, label="inverse: residual loss")
    axes[0].semilogy(pinn.steps, pinn.data_history, label="inverse: data loss (mean sq. rel. misfit)")
    axes[0].axvline(adam_iterations, color="k", ls=":", lw=0.8, label="Adam -> L-BFGS")
    axes[0].set_xlabel("iteration")
    axes[0].set_title("PINN training loss", fontsize=10)
    axes[1].plot(fwd.steps, np.abs(np.array(fwd.param_history["sL"]) / ref.s_L - 1), label="forward s_L")
    for k, name in (("sL", "s_L"), ("lam", "lambda"), ("Ea", "E_a")):
        true = ref.s_L if k == "sL" else TRUE[k]
        axes[1].plot(pinn.steps, np.abs(np.array(pinn.param_history[k]) / true - 1), label=f"inverse {name}")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("iteration")
    axes[1].set_title("PINN |parameter error|", fontsize=10)
    axes[2].semilogy(np.arange(len(classic.objective_history)), classic.objective_history, "o-",
                     label="classic: 1/2 ||(F - d)/sigma||^2")
    axes[2].set_xlabel("Gauss-Newton iteration")
    axes[2].set_title("classic fit objective", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, out / "loss.png")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (k, name, unit) in zip(axes, (("sL", "s_L", "m/s"), ("lam", "lambda", "W/(m K)"), ("Ea", "E_a", "J/mol"))):
        true = ref.s_L if k == "sL" else TRUE[k]
        ax.plot(pinn.steps, pinn.param_history[k], label="PINN inverse")
        if k == "sL":
            ax.plot(fwd.steps, fwd.param_history[k], label="PINN forward")
        ax.axhline(true, color="k", ls="--", lw=0.8, label="true")
        ax.axhspan(classic.params[k] - classic.sigma[k], classic.params[k] + classic.sigma[k], color="C2", alpha=0.3,
                   label="classic fit +- 1 sigma")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{name} [{unit}]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, out / "params.png")



def write_report(out: Path, m: dict, mode: str, args, classic, sweep) -> None:
    def pct(v):
        return f"{100 * v:+.3f}%"

    def sig(k, true):
        return f"{100 * classic.sigma[k] / true:.3f}%"

    rows = [
        ("lambda (true 0.026 W/(m K))", pct(m["inv_pinn_lambda_rel_err"]), pct(m["inv_classic_lambda_rel_err"]),
         sig("lam", TRUE["lam"])),
        ("E_a (true 1.214172e5 J/mol)", pct(m["inv_pinn_Ea_rel_err"]), pct(m["inv_classic_Ea_rel_err"]),
         sig("Ea", TRUE["Ea"])),
        (f"s_L (true {m['sL_reference']:.6f} m/s)", pct(m["inv_pinn_sL_rel_err"]), pct(m["inv_classic_sL_rel_err"]),
         sig("sL", m["sL_reference"]) + " (derived)"),
        ("T relative L2 of the inferred flame", f"{m['inv_pinn_T_rel_l2']:.2e}",
         f"{m['inv_classic_T_rel_l2']:.2e}", ""),
        ("wall time [s]", f"{m['time_pinn_s']:.1f}", f"{m['time_classic_s']:.2f}", ""),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    sweep_text = ""
    if sweep:
        lines = "\n".join(
            f"| {100 * r['noise']:g}% | {r['n_obs']} | {pct(r['pinn_lam_rel_err'])} | {pct(r['pinn_Ea_rel_err'])} | "
            f"{pct(r['pinn_sL_rel_err'])} | {pct(r['classic_lam_rel_err'])} | {pct(r['classic_Ea_rel_err'])} | "
            f"{pct(r['classic_sL_rel_err'])} |" for r in sweep["rows"])
        sweep_text = f"""
## Sweep (seed {args.seed}; one noise draw per row)

| noise | points | PINN lambda | PINN E_a | PINN s_L | classic lambda | classic E_a | classic s_L |
|---|---|---|---|---|---|---|---|
{lines}

Figures: sweep_pinn.png, sweep_classic.png.
"""
    report = f"""# 1D premixed flame: PINN vs converged simulator ({mode}, seed {args.seed})

phi = {PHI}, {P_ATM} atm, T_in = {T_IN} K.  PINN: deepxde (torch, float64), {m['adam_iterations']} Adam +
{m['lbfgs_iterations']} L-BFGS iterations.

## Forward

| | converged simulator | PINN |
|---|---|---|
| s_L [m/s] | {m['sL_reference']:.6f} | {m['sL_pinn']:.6f} ({pct(m['sL_pinn_rel_err'])}) |
| T relative L2 | - | {m['T_pinn_rel_l2']:.2e} |
| u / rho / Y_F relative L2 | - | {m['u_pinn_rel_l2']:.2e} / {m['rho_pinn_rel_l2']:.2e} / {m['YF_pinn_rel_l2']:.2e} |
| wall time [s] | {m['time_reference_s']:.2f} | {m['time_pinn_forward_s']:.1f} |

FlamePINN-1D's shooting reference {SL_ANCHOR} m/s (10,000 points, first order) lies
{100 * (SL_ANCHOR / m['sL_reference'] - 1):.3f}% above the simulator's value.

## Inverse ({m['n_obs']} observations of T and u, {100 * m['noise']:g}% noise, data seed {m['data_seed']})

| error (inferred/true - 1) | PINN | classic fit | classic 1-sigma |
|---|---|---|---|
{table}

Classic fit: {m['inv_classic_iterations']} Gauss-Newton iterations, misfit/noise
{m['inv_classic_misfit_over_noise']:.3f}, corr(lambda, E_a) = {m['inv_classic_lambda_Ea_correlation']:.3f}.
The classic fit has two unknowns (lambda, E_a); s_L is the simulator's eigenvalue for them.
{sweep_text}
Figures: fields_forward.png, fields_inverse.png, loss.png, params.png.
"""
    atomic_write_text(out / "report.md", report)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = case_parser("flame_pinn", __doc__, "small setting (about 3 minutes on 2 CPU cores)",
                         "torch device of the PINN training (the simulator runs on the CPU)")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep noise (0, 0.5, 1, 2%%) and observation count (5, 10, 15, 25); long")
    return parser.parse_args(argv)


KEYS = ["sL_reference", "sL_pinn_rel_err", "T_pinn_rel_l2", "inv_pinn_lambda_rel_err", "inv_pinn_Ea_rel_err",
        "inv_pinn_sL_rel_err", "inv_classic_lambda_rel_err", "inv_classic_Ea_rel_err", "inv_classic_sL_rel_err",
        "inv_classic_lambda_sigma", "inv_classic_Ea_sigma", "time_pinn_s", "time_classic_s"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outputs = ["metrics.json", "report.md", "fields_forward.png", "fields_inverse.png", "loss.png", "params.png"]
    if args.sweep:
        outputs += ["sweep.json", "sweep_pinn.png", "sweep_classic.png"]
    return case_main("flame_pinn", run, args, outputs, KEYS)


if __name__ == "__main__":
    sys.exit(main())
