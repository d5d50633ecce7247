"""Poisson figures of the documentation: the convergence study of ``physinv validate poisson``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from physinv.viz.figures import plt, save_figure


def plot_convergence(result: dict, path: str | Path) -> Path:
    """Discrete L2 errors of the FD and P1 discretizations against ``h = 1/n``, with the fitted rates
    (``result``: :func:`physinv.problems.poisson.validate.validate_poisson`)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    for key, label, marker in (("fd_l2_table", "finite differences", "o"), ("p1_l2_table", "P1 elements", "s")):
        table = result[key]
        ax.loglog(table["h"], table["error"], marker=marker, label=f"{label}: rate {table['rate']:.3f}")
    h = np.asarray(result["fd_l2_table"]["h"], dtype=float)
    ref = result["fd_l2_table"]["error"][-1] * (h / h[-1]) ** 2
    ax.loglog(h, ref, "k:", lw=1, label="slope 2")
    ax.set_xlabel("h = 1/n")
    ax.set_ylabel("L2 error against the manufactured solution")
    ax.set_title("-div(kappa grad u) = f on the unit square", fontsize=10)
    ax.legend(fontsize=8)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)


def draw_docs_figures(out_dir: str | Path) -> None:
    """``poisson_convergence.png``: the study at 4 levels (n = 8..64), without DOLFINx (seconds)."""
    from physinv.problems.poisson.validate import validate_poisson

    plot_convergence(validate_poisson(levels=4, use_dolfinx=False), Path(out_dir) / "poisson_convergence.png")
