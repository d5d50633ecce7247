"""Matplotlib figures shared by the case studies (written atomically, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from physinv.core.io import atomic_savefig

matplotlib.use("Agg")  # switching after importing pyplot is allowed while no figure is open


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, write it atomically to ``path`` (PNG, 120 dpi) and close it."""
    fig.tight_layout()
    out = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return out


def _style(ax, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_fields(
    fields: Mapping[str, np.ndarray],
    path: str | Path,
    extent: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0),
    points: np.ndarray | None = None,
    shared_range: Sequence[str] = (),
    title: str = "",
) -> Path:
    """Side-by-side images of 2D nodal fields (array index ``[i, j]`` = ``(x_i, y_j)``).

    Fields named in ``shared_range`` use one colour scale; ``points`` (k, 2)
    are drawn as sensor markers.
    """
    names = list(fields)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.3), squeeze=False)
    shared = [np.asarray(fields[n]) for n in names if n in shared_range]
    vmin = min(float(a.min()) for a in shared) if shared else None
    vmax = max(float(a.max()) for a in shared) if shared else None
    for ax, name in zip(axes[0], names):
        data = np.asarray(fields[name])
        kw = {"vmin": vmin, "vmax": vmax} if name in shared_range else {}
        im = ax.imshow(data.T, origin="lower", extent=extent, cmap="viridis", **kw)
        if points is not None:
            ax.plot(points[:, 0], points[:, 1], "w.", ms=2, alpha=0.7)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_histories(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    xlabel: str = "iteration",
    logy: bool = True,
    hlines: Mapping[str, float] | None = None,
) -> Path:
    """One panel per entry of ``panels``; each maps a curve label to its values."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for label, values in curves.items():
            ax.plot(np.arange(len(values)), values, marker=".", label=label)
        if hlines and title in hlines:
            ax.axhline(hlines[title], color="k", ls="--", lw=0.8)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        _style(ax, title)
    return save_figure(fig, path)


def plot_discrepancy_path(path_points: Sequence[tuple[float, float, int]], tau: float, path: str | Path) -> Path:
    """Misfit/noise ratio against the regularization weight beta, in solve order."""
    betas = np.array([p[0] for p in path_points])
    ratios = np.array([p[1] for p in path_points])
    fig, ax = plt.subplots(figsize=(4.4, 3.4))
    ax.loglog(betas, ratios, "o")
    for k, (b, r) in enumerate(zip(betas, ratios)):
        ax.annotate(str(k + 1), (b, r), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(tau, color="k", ls="--", lw=0.8, label=f"tau = {tau}")
    ax.set_xlabel("beta")
    ax.set_ylabel("misfit / noise")
    _style(ax, "discrepancy principle")
    return save_figure(fig, path)
