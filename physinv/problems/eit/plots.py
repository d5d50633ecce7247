"""EIT figures: electrode numbering and protocol, phantoms beside their reconstructions, scores vs noise."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from physinv.problems.eit.electrodes import ElectrodeMesh
from physinv.problems.eit.phantoms import dice, inclusion_mask, relative_l2
from physinv.problems.eit.simulator import EITSimulator
from physinv.viz.figures import plt, save_figure


def plot_protocol(points: np.ndarray, cells: np.ndarray, electrode_edges: Sequence[np.ndarray],
                  currents: np.ndarray, measurements: np.ndarray, path: str | Path, pattern: int = 0,
                  measurement: int = 2) -> Path:
    """The mesh, electrodes ``1..L`` numbered as in the arrays (``+1``), one current pattern
    (red: current in, blue: out) and one measurement (the pair whose voltage difference is read)."""
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    ax.triplot(points[:, 0], points[:, 1], cells, color="0.8", lw=0.4)
    currents = np.asarray(currents)
    meas = np.asarray(measurements)
    for k, edges in enumerate(electrode_edges):
        p = points[np.asarray(edges)]
        current = currents[pattern, k]
        colour = "tab:red" if current > 0 else ("tab:blue" if current < 0 else "k")
        for seg in p:
            ax.plot(seg[:, 0], seg[:, 1], color=colour, lw=4, solid_capstyle="butt")
        centre = p.reshape(-1, 2).mean(axis=0)
        direction = centre / max(np.linalg.norm(centre), 1e-12)
        label = f"{k + 1}" + (f"\n{current:+g} A" if current else "")
        ax.text(*(centre + 0.13 * direction), label, ha="center", va="center", fontsize=8, color=colour)
        if meas[measurement, k]:
            ax.plot(*(centre - 0.07 * direction), marker="v" if meas[measurement, k] > 0 else "^", color="tab:green",
                    ms=7)
    ax.annotate("", xy=(0.0, 1.32), xytext=(0.45, 1.25),
                arrowprops=dict(arrowstyle="->", color="0.3", connectionstyle="arc3,rad=0.15"))
    ax.text(0.22, 1.38, "numbering", fontsize=8, color="0.3", ha="center")
    ax.set_aspect("equal")
    ax.set_xlim(-1.45, 1.45)
    ax.set_ylim(-1.45, 1.45)
    ax.set_title(f"electrodes (counter-clockwise from (1, 0)), current pattern {pattern + 1}\n"
                 f"green: measurement {measurement + 1} = U(v) - U(^)", fontsize=9)
    ax.axis("off")
    return save_figure(fig, path)


def plot_reconstructions(rows: Sequence[Mapping[str, np.ndarray]], mask: np.ndarray, path: str | Path,
                         row_titles: Sequence[str] = (), captions: Sequence[Mapping[str, str]] = (),
                         title: str = "") -> Path:
    """A grid of conductivity images on the pixel grid of ``[-1, 1]^2`` (``[i, j]`` = row ``i`` from
    the bottom): one row per sample, one column per method (the first is the truth); one colour scale
    per row; pixels outside ``mask`` blank."""
    names = list(rows[0])
    fig, axes = plt.subplots(len(rows), len(names), figsize=(2.6 * len(names), 2.4 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        images = {name: np.where(mask, np.asarray(row[name], dtype=float), np.nan) for name in names}
        vmin = min(np.nanmin(im) for im in images.values())
        vmax = max(np.nanmax(im) for im in images.values())
        for c, name in enumerate(names):
            ax = axes[r, c]
            im = ax.imshow(images[name], origin="lower", extent=(-1, 1, -1, 1), cmap="viridis", vmin=vmin, vmax=vmax)
            caption = captions[r].get(name, "") if r < len(captions) else ""
            ax.set_title(name + (f"\n{caption}" if caption else ""), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and r < len(row_titles):
                ax.set_ylabel(row_titles[r], fontsize=8)
        fig.colorbar(im, ax=axes[r, -1], fraction=0.046, pad=0.04, label="S/m")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_compared_reconstructions(images: Mapping[str, Sequence], labels: Mapping[str, str], count: int,
                                  mask: np.ndarray, path: str | Path, title: str) -> Path:
    """The first ``count`` phantoms (``images["truth"]``) beside every method's pixel image, each captioned
    with its relative L2 error and the Dice coefficient of its inclusion mask."""
    rows, captions = [], []
    for i in range(min(count, len(images["truth"]))):
        truth = images["truth"][i]
        rows.append({"phantom": truth.numpy(), **{labels[m]: images[m][i].numpy() for m in labels}})
        captions.append({labels[m]: f"L2 {relative_l2(images[m][i], truth, mask):.3f}, "
                                    f"Dice {dice(inclusion_mask(images[m][i]), inclusion_mask(truth), mask):.2f}"
                         for m in labels})
    return plot_reconstructions(rows, mask, path, [f"sample {i}" for i in range(len(rows))], captions, title)


def plot_scores_vs_noise(levels: Sequence[float], scores: Mapping[str, Mapping[str, Sequence[float]]],
                         path: str | Path) -> Path:
    """Mean relative L2 and mean Dice of each method (``scores[label]["rel_l2" | "dice"]``) against the noise
    level (fraction of the data RMS)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    percent = [100 * lv for lv in levels]
    for (label, values), marker in zip(scores.items(), "so^vD"):
        for ax, what in zip(axes, ("rel_l2", "dice")):
            ax.plot(percent, values[what], marker=marker, label=label)
    axes[0].set_ylabel("mean relative L2 of sigma")
    axes[1].set_ylabel("mean Dice of the inclusion masks")
    for ax in axes:
        ax.set_xlabel("noise [% of the data RMS]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("the same test phantoms for every method", fontsize=10)
    return save_figure(fig, path)


def plot_comparison(out: Path, images: Mapping[tuple[str, float], Mapping], labels: Mapping[str, str],
                    levels: Sequence[float], count: int, mask: np.ndarray, mesh: ElectrodeMesh,
                    metrics: Mapping[str, float]) -> list[str]:
    """The figures of a comparison of methods on test (``images[("test", level)]``) and single-inclusion
    (``images[("single", 0.01)]``) phantoms: reconstructions per noise level, the protocol on ``mesh``, and
    ``metrics["NAME_rel_l2_noiseK"]`` / ``["NAME_dice_noiseK"]`` against the noise; returns the file names."""
    names = []
    for level in levels:
        names.append(f"reconstructions_noise{int(round(100 * level))}.png")
        plot_compared_reconstructions(images[("test", level)], labels, count, mask, out / names[-1],
                                      f"test phantoms, {100 * level:g}% noise: phantom | "
                                      + " | ".join(labels.values()))
    plot_compared_reconstructions(images[("single", 0.01)], labels, count, mask, out / "single_inclusion.png",
                                  "single-inclusion phantoms, 1% noise")
    sim = EITSimulator(mesh)
    plot_protocol(mesh.mesh.points, mesh.mesh.cells, mesh.electrode_edges, sim.currents, sim.measurement_matrix,
                  out / "protocol.png")
    tags = [f"noise{int(round(100 * level))}" for level in levels]
    plot_scores_vs_noise(levels, {label: {w: [metrics[f"{m}_{w}_{t}"] for t in tags] for w in ("rel_l2", "dice")}
                                  for m, label in labels.items()}, out / "error_vs_noise.png")
    return names + ["single_inclusion.png", "protocol.png", "error_vs_noise.png"]


def draw_docs_figures(out_dir: str | Path) -> None:
    """``eit_protocol.png``: the adjacent protocol on the shipped 16-electrode disk (``eit_disk_h0.1.msh``)."""
    mesh = ElectrodeMesh.shipped("eit_disk_h0.1.msh")
    sim = EITSimulator(mesh)
    plot_protocol(mesh.mesh.points, mesh.mesh.cells, mesh.electrode_edges, sim.currents, sim.measurement_matrix,
                  Path(out_dir) / "eit_protocol.png")
