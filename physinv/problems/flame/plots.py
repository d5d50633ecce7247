"""Flame figures: simulator vs PINN fields, training curves, inferred parameters, sweep errors."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from physinv.viz.figures import plt, save_figure

#: The profiles shown: (field of the solution, axis label).
FIELDS = (("T", "T [K]"), ("u", "u [m/s]"), ("rho", "rho [kg/m^3]"), ("Y_F", "Y_F"))


def plot_flame_study(out: Path, ref, fwd, fwd_fields: Mapping, pinn, pinn_fields: Mapping, classic,
                     classic_fields: Mapping, obs, adam_iterations: int, true: Mapping[str, float]) -> list[str]:
    """fields_forward.png, fields_inverse.png, loss.png and params.png of a forward and an inverse PINN run
    (``fwd``, ``pinn``) against the converged simulator (``ref``) and the classic fit; ``true`` holds the true
    ``lam`` and ``Ea``.  Returns the file names."""
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
        save_figure(fig, out / name)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].semilogy(fwd.steps, fwd.loss_history, label="forward: residual loss")
    axes[0].semilogy(pinn.steps, pinn.residual_history, label="inverse: residual loss")
    axes[0].semilogy(pinn.steps, pinn.data_history, label="inverse: data loss (mean sq. rel. misfit)")
    axes[0].axvline(adam_iterations, color="k", ls=":", lw=0.8, label="Adam -> L-BFGS")
    axes[0].set_xlabel("iteration")
    axes[0].set_title("PINN training loss", fontsize=10)
    axes[1].plot(fwd.steps, np.abs(np.array(fwd.param_history["sL"]) / ref.s_L - 1), label="forward s_L")
    for k, name in (("sL", "s_L"), ("lam", "lambda"), ("Ea", "E_a")):
        target = ref.s_L if k == "sL" else true[k]
        axes[1].plot(pinn.steps, np.abs(np.array(pinn.param_history[k]) / target - 1), label=f"inverse {name}")
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
    save_figure(fig, out / "loss.png")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (k, name, unit) in zip(axes, (("sL", "s_L", "m/s"), ("lam", "lambda", "W/(m K)"), ("Ea", "E_a", "J/mol"))):
        target = ref.s_L if k == "sL" else true[k]
        ax.plot(pinn.steps, pinn.param_history[k], label="PINN inverse")
        if k == "sL":
            ax.plot(fwd.steps, fwd.param_history[k], label="PINN forward")
        ax.axhline(target, color="k", ls="--", lw=0.8, label="true")
        ax.axhspan(classic.params[k] - classic.sigma[k], classic.params[k] + classic.sigma[k], color="C2", alpha=0.3,
                   label="classic fit +- 1 sigma")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{name} [{unit}]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, out / "params.png")
    return ["fields_forward.png", "fields_inverse.png", "loss.png", "params.png"]


def plot_sweep(rows: Sequence[Mapping], n_obs: int, noise: float, seed: int, out: Path) -> list[str]:
    """sweep_pinn.png and sweep_classic.png: parameter errors against the noise level (at ``n_obs`` points)
    and against the number of points (at ``noise``), one row per inversion.  Returns the file names."""
    for method in ("pinn", "classic"):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, (key, select, label) in zip(axes, (
                ("noise", lambda r: r["n_obs"] == n_obs, "relative noise level [%]"),
                ("n_obs", lambda r: r["noise"] == noise, "number of observation points"))):
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
                     f"({n_obs} points when varying noise, {noise:.0%} noise when varying points; seed {seed})",
                     fontsize=9)
        save_figure(fig, out / f"sweep_{method}.png")
    return ["sweep_pinn.png", "sweep_classic.png"]


def plot_flame_structure(solution, phis: Sequence[float], speeds: Sequence[float], path: str | Path) -> Path:
    """The converged profiles of one flame (``solution``: :class:`~physinv.problems.flame.solver.FlameSolution`)
    and the flame speed against the equivalence ratio."""
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.3))
    xmm = solution.x * 1e3
    for ax, (key, label) in zip(axes, FIELDS):
        ax.plot(xmm, getattr(solution, key), "k-", lw=1.5)
        ax.set_xlabel("x [mm]")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"phi = {solution.problem.phi:g}: s_L = {100 * solution.s_L:.2f} cm/s", fontsize=9)
    axes[4].plot(phis, 100 * np.asarray(speeds), "o-")
    axes[4].set_xlabel("equivalence ratio phi")
    axes[4].set_ylabel("s_L [cm/s]")
    axes[4].grid(alpha=0.3)
    return save_figure(fig, path)


def draw_docs_figures(out_dir: str | Path) -> None:
    """``flame_structure.png``: the profiles at phi = 0.46 and s_L(phi) on the default grid (seconds)."""
    from physinv.problems.flame.solver import solve_flame

    phis = np.linspace(0.4, 0.6, 6)
    solutions = [solve_flame(float(phi)) for phi in phis]
    plot_flame_structure(solve_flame(0.46), phis, [s.s_L for s in solutions], Path(out_dir) / "flame_structure.png")
