"""Calderon figures: relative L1 error against the noise level, per method."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from physinv.viz.figures import save_figure, plt


def plot_error_vs_noise(levels: Sequence[float], errors: Mapping[str, Mapping[float, np.ndarray]],
                        classic: tuple[str, float, np.ndarray], path: str | Path) -> Path:
    """Median and quartiles of each method's per-sample errors (``errors[label][level]``, percent) against
    the multiplicative noise level; ``classic = (label, level, errors)``: the classic inversion's median, a star."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    percent = 100 * np.array(levels)
    for j, (label, by_level) in enumerate(errors.items()):
        med = np.array([np.median(by_level[s]) for s in levels])
        lo = np.array([np.percentile(by_level[s], 25) for s in levels])
        hi = np.array([np.percentile(by_level[s], 75) for s in levels])
        ax.errorbar(percent + (j - 1) * 0.06, med, yerr=[med - lo, hi - med], marker="o", capsize=3, label=label)
    label, level, err = classic
    ax.plot([100 * level], [np.median(err)], "k*", ms=10, label=f"{label} ({len(err)} samples)")
    ax.set_xlabel("multiplicative noise on the Neumann data [%]")
    ax.set_ylabel("median relative L1 error [%] (bars: quartiles)")
    ax.set_title("test error vs noise", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_prior_draws(conductivities: Sequence[np.ndarray], neumann: np.ndarray, path: str | Path) -> Path:
    """Conductivities drawn from the prior (nodal, unit square) and the Neumann data of the first one:
    one row per trigonometric input, boundary nodes counter-clockwise from (0, 0) across."""
    count = len(conductivities)
    fig, axes = plt.subplots(1, count + 1, figsize=(3.4 * (count + 1), 3.2))
    for ax, a in zip(axes, conductivities):
        im = ax.imshow(np.asarray(a).T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
        ax.set_title("a(x, y) [S/m], a prior draw", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    im = axes[-1].imshow(neumann, aspect="auto", cmap="RdBu_r")
    axes[-1].set_title("Neumann data of the first draw", fontsize=9)
    axes[-1].set_xlabel("boundary node")
    axes[-1].set_ylabel("input pattern")
    fig.colorbar(im, ax=axes[-1], fraction=0.046, pad=0.04)
    return save_figure(fig, path)


def draw_docs_figures(out_dir: str | Path) -> None:
    """``calderon_prior.png``: three draws of the ``calderon`` data set's prior and the DtN data of one."""
    import torch

    from physinv.problems.calderon.data import DATASET_DEFAULTS as D
    from physinv.problems.calderon.simulator import CalderonSimulator, draw_conductivity

    rng = np.random.default_rng(0)
    draws = [draw_conductivity(rng, D["n"], D["a_min"], D["a_max"], D["modes"], D["amplitude"], D["decay"])
             for _ in range(3)]
    with torch.no_grad():
        neumann = CalderonSimulator(n=D["n"], L=D["L"])(torch.from_numpy(draws[0])).numpy()
    plot_prior_draws(draws, neumann, Path(out_dir) / "calderon_prior.png")
