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
