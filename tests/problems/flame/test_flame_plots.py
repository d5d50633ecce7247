"""The flame case's figures draw from any forward/inverse result with the documented fields (no training here)."""

from types import SimpleNamespace

import matplotlib.image as mpimg
import numpy as np
import pytest

from physinv.problems.flame.model import DEFAULT_PARAMS
from physinv.problems.flame.plots import plot_flame_study, plot_sweep
from physinv.problems.flame.solver import solve_flame

TRUE = {"lam": DEFAULT_PARAMS["lam"], "Ea": DEFAULT_PARAMS["Ea"]}


@pytest.fixture(scope="module")
def ref():
    return solve_flame(0.46, grid=201)


def _run(ref, scale: float) -> SimpleNamespace:
    """A training run's record: its parameters move from ``scale`` x the truth to the truth."""
    steps = np.arange(5)
    path = lambda true: list(true * np.linspace(scale, 1.0, steps.size))  # noqa: E731
    return SimpleNamespace(steps=steps, loss_history=list(10.0 ** -steps), residual_history=list(10.0 ** -steps),
                           data_history=list(10.0 ** -steps),
                           param_history={"sL": path(ref.s_L), "lam": path(TRUE["lam"]), "Ea": path(TRUE["Ea"])})


def test_study_figures_are_written(ref, tmp_path):
    fields = {"T": ref.T, "u": ref.u, "rho": ref.rho, "Y_F": ref.Y_F}
    classic = SimpleNamespace(objective_history=[30.0, 3.0, 1.0],
                              params={"sL": ref.s_L, **TRUE}, sigma={"sL": 0.01 * ref.s_L, "lam": 1e-3, "Ea": 100.0})
    obs = SimpleNamespace(x=ref.x[::20], T=ref.T[::20], u=ref.u[::20], noise=0.02)
    names = plot_flame_study(tmp_path, ref, _run(ref, 1.2), fields, _run(ref, 0.8), fields, classic, fields, obs,
                             adam_iterations=3, true=TRUE)
    assert names == ["fields_forward.png", "fields_inverse.png", "loss.png", "params.png"]
    for name in names:
        height, width = mpimg.imread(tmp_path / name).shape[:2]
        assert height > 200 and width > 600


def test_sweep_figures_are_written(tmp_path):
    rows = [{"noise": eta, "n_obs": n, **{f"{m}_{p}_rel_err": 0.01 * eta for m in ("pinn", "classic")
                                          for p in ("lam", "Ea", "sL")},
             **{f"classic_{p}_sigma_rel": 0.5 * eta for p in ("lam", "Ea", "sL")}}
            for eta, n in ((0.0, 10), (0.02, 10), (0.05, 10), (0.02, 20))]
    names = plot_sweep(rows, 10, 0.02, 0, tmp_path)
    assert names == ["sweep_pinn.png", "sweep_classic.png"]
    assert all(mpimg.imread(tmp_path / name).shape[1] > 600 for name in names)
