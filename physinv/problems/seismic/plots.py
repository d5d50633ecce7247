"""Figures of the seismic case: velocity maps side by side, shot gathers, FWI misfit histories."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from physinv.problems.seismic.survey import Survey
from physinv.viz.figures import plot_histories, save_figure

__all__ = ["plot_gathers", "plot_maps", "plot_misfit"]


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def plot_maps(columns: Mapping[str, Sequence], dx: float, path: str | Path, title: str = "") -> Path:
    """A grid of velocity maps (m/s): one column per method (``columns[name][i]`` the ``i``-th map, ``(nz, nx)``),
    one row per map, one colour scale; depth down, lateral position across (m)."""
    names = list(columns)
    rows = min(len(columns[n]) for n in names)
    fig, axes = plt.subplots(rows, len(names), figsize=(2.6 * len(names), 2.4 * rows + 0.4), squeeze=False)
    maps = {n: [_numpy(columns[n][i]) for i in range(rows)] for n in names}
    lo = min(float(m.min()) for n in names for m in maps[n])
    hi = max(float(m.max()) for n in names for m in maps[n])
    for i in range(rows):
        for j, name in enumerate(names):
            ax = axes[i][j]
            v = maps[name][i]
            nz, nx = v.shape
            im = ax.imshow(v, cmap="jet", vmin=lo, vmax=hi, extent=(0, nx * dx, nz * dx, 0))
            if i == 0:
                ax.set_title(name, fontsize=9)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("depth (m)", fontsize=8)
        fig.colorbar(im, ax=axes[i][-1], fraction=0.046, pad=0.04, label="v (m/s)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_gathers(gathers: Mapping[str, torch.Tensor], survey: Survey, path: str | Path, shot: int = 0) -> Path:
    """Shot gathers of one shot side by side (time down, receiver position across), one symmetric colour
    scale clipped at the 99th percentile of the first gather's amplitudes."""
    names = list(gathers)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.8), squeeze=False)
    first = _numpy(gathers[names[0]][shot])
    clip = float(np.percentile(np.abs(first), 99)) or 1.0
    x_end = survey.receivers[-1, 1] * survey.dx
    for ax, name in zip(axes[0], names):
        g = _numpy(gathers[name][shot])
        ax.imshow(g.T, cmap="gray", aspect="auto", vmin=-clip, vmax=clip,
                  extent=(survey.receivers[0, 1] * survey.dx, x_end, survey.nt * survey.dt, 0))
        ax.set_title(f"{name} (shot {shot})", fontsize=9)
        ax.set_xlabel("receiver x (m)", fontsize=8)
        ax.set_ylabel("time (s)", fontsize=8)
    return save_figure(fig, path)


def plot_misfit(histories: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """FWI objective against L-BFGS iteration over all bands (one curve per run; each band restarts the
    objective on its own filtered data, so the curve jumps up at band changes)."""
    return plot_histories({"FWI objective (all bands)": histories}, path, xlabel="L-BFGS iteration")


def draw_docs_figures(out_dir: str | Path) -> None:
    """``seismic_families.png``: one velocity map of each OpenFWI-style family (seed 0), and
    ``seismic_shot.png``: the five shot gathers of the first one on the OpenFWI survey (seconds)."""
    from physinv.problems.seismic.simulator import AcousticSimulator
    from physinv.problems.seismic.survey import openfwi_survey
    from physinv.problems.seismic.velocity_families import FAMILIES, velocity_map

    rng = np.random.default_rng(0)
    maps = {family: velocity_map(family, rng) for family in FAMILIES}
    survey = openfwi_survey()
    kinds = dict.fromkeys(family.rsplit("-", 1)[0] for family in FAMILIES)  # flatvel, curvevel, ...: rows -a, -b
    plot_maps({kind: [maps[f] for f in FAMILIES if f.startswith(kind + "-")] for kind in kinds}, survey.dx,
              Path(out_dir) / "seismic_families.png", "one velocity map per family: -a (top), -b (bottom)")
    with torch.no_grad():
        gathers = AcousticSimulator(survey)(torch.from_numpy(maps[FAMILIES[0]])[None])[0]
    plot_gathers({f"{FAMILIES[0]}": gathers}, survey, Path(out_dir) / "seismic_shot.png", shot=2)
