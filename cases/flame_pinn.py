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

import numpy as np
from tqdm.auto import tqdm

from physinv.casekit import case_main, case_parser, methods_table, start_case, write_results
from physinv.core.io import atomic_write_json
from physinv.problems.flame.fit import fit_flame, synthetic_observations
from physinv.problems.flame.pinn import PINNSettings, train_flame_pinn
from physinv.problems.flame.plots import FIELDS, plot_flame_study, plot_sweep
from physinv.problems.flame.model import DEFAULT_PARAMS
from physinv.problems.flame.solver import solve_flame

#: Figures of the --quick run shown in the documentation (physinv docs figures): output -> docs/figures name.
DOCS_FIGURES = {
    "fields_inverse.png": "flame_pinn_fields_inverse.png",
    "params.png": "flame_pinn_params.png",
}

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
    case = start_case(args, SETTINGS)
    mode, settings, out, device = case.setting, case.cfg, case.out, case.device
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
        "sL_reference": ref.s_L, "sL_anchor": SL_ANCHOR, "sL_reference_vs_anchor": ref.s_L / SL_ANCHOR - 1,
        "sL_pinn": fwd.s_L, "sL_pinn_rel_err": fwd.s_L / ref.s_L - 1, "T_pinn_rel_l2": fwd_err["T"],
        "u_pinn_rel_l2": fwd_err["u"], "rho_pinn_rel_l2": fwd_err["rho"], "YF_pinn_rel_l2": fwd_err["Y_F"],
        "pinn_forward_final_loss": fwd.loss_history[-1], "inv_pinn_lambda_rel_err": pe["lam"],
        "inv_pinn_Ea_rel_err": pe["Ea"], "inv_pinn_sL_rel_err": pe["sL"],
        "inv_pinn_T_rel_l2": rel_l2(inv_pinn_fields["T"], ref.T, ref.x),
        "inv_pinn_final_residual_loss": pinn.residual_history[-1], "inv_pinn_final_data_loss": pinn.data_history[-1],
        "inv_classic_lambda_rel_err": ce["lam"], "inv_classic_Ea_rel_err": ce["Ea"],
        "inv_classic_sL_rel_err": ce["sL"], "inv_classic_lambda_sigma": classic.sigma["lam"],
        "inv_classic_Ea_sigma": classic.sigma["Ea"], "inv_classic_sL_sigma": classic.sigma["sL"],
        "inv_classic_lambda_Ea_correlation": classic.correlation,
        "inv_classic_T_rel_l2": rel_l2(inv_classic_fields["T"], ref.T, ref.x),
        "inv_classic_misfit_over_noise": classic.misfit_ratio, "inv_classic_iterations": classic.iterations,
        "time_reference_s": t_ref, "time_pinn_forward_s": fwd.seconds, "time_pinn_s": pinn.seconds,
        "time_classic_s": classic.seconds, "noise": NOISE, "n_obs": N_OBS, "data_seed": args.seed,
        "adam_iterations": settings.adam_iterations, "lbfgs_iterations": settings.lbfgs_iterations,
    }
    plot_flame_study(out, ref, fwd, fwd_fields, pinn, inv_pinn_fields, classic, inv_classic_fields, obs,
                     settings.adam_iterations, TRUE)
    sweep = run_sweep(args, settings, device, ref.s_L, out) if args.sweep else None
    metrics["time_total_s"] = case.elapsed()
    write_results(out, metrics, report(metrics, mode, args, classic, sweep))
    return metrics


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
    plot_sweep(rows, N_OBS, NOISE, args.seed, out)
    return sweep


def report(m: dict, mode: str, args, classic, sweep) -> str:
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
    table = methods_table(["error (inferred/true - 1)", "PINN", "classic fit", "classic 1-sigma"], rows)
    sweep_text = "" if not sweep else f"""
## Sweep (seed {args.seed}; one noise draw per row)

{methods_table(["noise", "points", *(f"{w} {p}" for w in ("PINN", "classic") for p in ("lambda", "E_a", "s_L"))],
               [[f"{100 * r['noise']:g}%", r["n_obs"], *(pct(r[f"{w}_{p}_rel_err"]) for w in ("pinn", "classic")
                                                        for p in ("lam", "Ea", "sL"))] for r in sweep["rows"]])}

Figures: sweep_pinn.png, sweep_classic.png.
"""
    return f"""# 1D premixed flame: PINN vs converged simulator ({mode}, seed {args.seed})

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

{table}

Classic fit: {m['inv_classic_iterations']} Gauss-Newton iterations, misfit/noise
{m['inv_classic_misfit_over_noise']:.3f}, corr(lambda, E_a) = {m['inv_classic_lambda_Ea_correlation']:.3f}.
The classic fit has two unknowns (lambda, E_a); s_L is the simulator's eigenvalue for them.
{sweep_text}
Figures: fields_forward.png, fields_inverse.png, loss.png, params.png.
"""


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
