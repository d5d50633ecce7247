"""Flame PINN (deepxde): residual, hard constraints, deepxde configuration, a short training, bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, MissingExtraError
from physinv.problems.flame import pinn as fp
from physinv.problems.flame.model import algebraic_fields, energy_residual, make_problem
from physinv.problems.flame.pinn import (
    PINNSettings,
    flame_residual,
    inlet_slope,
    reduced_temperature,
    train_flame_pinn,
)
from physinv.problems.flame.solver import solve_flame


@pytest.fixture(scope="module")
def fine():
    return solve_flame(0.46, grid=6001)


def _reduced(sol):
    prob = sol.problem
    L, dT = prob.length, prob.T_max - prob.T_in
    xi = sol.x / L
    theta = (sol.T - prob.T_in) / dT
    t1 = np.gradient(theta, xi, edge_order=2)
    t2 = np.gradient(t1, xi, edge_order=2)
    return prob, xi, theta, t1, t2


def test_residual_vanishes_on_the_converged_solution(fine):
    """The PINN residual on the simulator's solution is small relative to its terms, and not at a wrong s_L."""
    prob, xi, theta, t1, t2 = _reduced(fine)
    th, d1, d2 = (torch.from_numpy(a) for a in (theta, t1, t2))
    r = flame_residual(th, d1, d2, fine.s_L, prob)
    inner = slice(5, -5)  # one-sided differences at the ends
    scale = float(d1.abs().max())
    assert scale > 5  # a steep flame: theta_xi ~ 10
    assert float(r[inner].abs().max()) < 2e-3 * scale
    wrong = flame_residual(th, d1, d2, 1.05 * fine.s_L, prob)
    assert float(wrong[inner].abs().max()) > 20 * float(r[inner].abs().max())


def _random_states(prob, count: int, seed: int):
    """``count`` random ``(T, T_x, T_xx)`` (K, K/m, K/m^2) in the flame's range, as float64 tensors."""
    rng = np.random.default_rng(seed)
    return (torch.from_numpy(rng.uniform(prob.T_in, prob.T_max - 1.0, count)),
            torch.from_numpy(rng.uniform(0, 5e6, count)), torch.from_numpy(rng.uniform(-1e10, 1e10, count)))


def test_residual_terms_match_the_dimensional_equation(fine):
    """r = L/(T_max - T_in) * (T_x - lambda/(rho_in s_L c_p) T_xx - q_F omega/(rho_in s_L c_p)), term by term."""
    prob = fine.problem
    L, dT = prob.length, prob.T_max - prob.T_in
    T, Tx, Txx = _random_states(prob, 7, seed=0)
    s, lam, Ea = 0.3, 0.031, 1.3e5
    pr = prob.params
    rho_in = prob.p / (pr["R"] / pr["W"] * prob.T_in)
    Y = prob.Y_in + pr["cp"] * (prob.T_in - T) / pr["qF"]
    Rg = pr["R"] / pr["W"]
    c = s + Rg * prob.T_in / s
    u = 0.5 * (c - torch.sqrt(c * c - 4 * Rg * T))  # the textbook smaller root
    rho = rho_in * s / u
    omega = pr["A"] * torch.exp(-Ea / (pr["R"] * T)) * (Y * rho) ** 1.6
    k = 1 / (rho_in * s * pr["cp"])
    expected = (Tx - k * lam * Txx - k * omega * pr["qF"]) * L / dT
    got = flame_residual((T - prob.T_in) / dT, Tx * L / dT, Txx * L**2 / dT, s, prob, lam=lam, Ea=Ea)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    alg = algebraic_fields(T, s, prob, {"Ea": Ea})
    torch.testing.assert_close(alg["u"], u, rtol=1e-10, atol=0)
    torch.testing.assert_close(alg["omega"], omega, rtol=1e-9, atol=0)


def test_residual_is_the_models_energy_equation_scaled(fine):
    """flame_residual = energy_residual * L / (rho_in s_L c_p (T_max - T_in)): one equation, two scalings."""
    prob = fine.problem
    L, dT = prob.length, prob.T_max - prob.T_in
    T, Tx, Txx = _random_states(prob, 9, seed=1)
    s, lam, Ea = 0.32, 0.028, 1.25e5
    m_cp = prob.rho_in * s * prob.params["cp"]
    scaled = energy_residual(T, Tx, Txx, s, prob, {"lam": lam, "Ea": Ea}) * L / (m_cp * dT)
    got = flame_residual((T - prob.T_in) / dT, Tx * L / dT, Txx * L**2 / dT, s, prob, lam=lam, Ea=Ea)
    torch.testing.assert_close(got, scaled, rtol=1e-9, atol=1e-9)


def test_algebraic_fields_agree_with_the_simulator(fine):
    alg = algebraic_fields(torch.from_numpy(fine.T), fine.s_L, fine.problem)
    for key in ("u", "rho", "Y_F", "omega"):
        np.testing.assert_allclose(alg[key].numpy(), getattr(fine, key), rtol=1e-12, atol=1e-12)


def test_hard_constraint_keeps_T_in_range_and_imposes_the_inlet():
    prob = make_problem(0.46)
    g0 = inlet_slope(prob)
    assert g0 == pytest.approx(1e5 * 1.5e-3 / (prob.T_max - prob.T_in))
    xi = torch.linspace(0, 1, 401, dtype=torch.float64).reshape(-1, 1).requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    for scale in (0.1, 5.0, 40.0, 300.0):  # wild networks, including ones that saturate
        n = scale * torch.randn(401, 1, generator=gen, dtype=torch.float64)
        theta = reduced_temperature(xi, n, g0)
        T = (prob.T_in + (prob.T_max - prob.T_in) * theta).detach()
        assert bool(torch.isfinite(T).all())
        assert float(T.min()) >= prob.T_in and float(T.max()) <= prob.T_max
    # inlet value and slope are exact for any smooth network output
    x0 = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    for c in (-3.0, 0.0, 4.0):
        theta0 = reduced_temperature(x0, torch.sin(7 * x0) + c, g0)
        (slope,) = torch.autograd.grad(theta0.sum(), x0)
        assert float(theta0.detach()) == 0.0
        assert float(slope) == pytest.approx(g0, rel=1e-14)


def test_deepxde_is_configured_without_touching_home(tmp_path):
    """A fresh process with HOME in a temp dir and no DDE_BACKEND: pytorch backend, float64, no ~/.deepxde."""
    env = {k: v for k, v in os.environ.items() if k not in ("DDE_BACKEND", "DDEBACKEND")}
    env["HOME"] = str(tmp_path)
    code = (
        "import json, torch\n"
        "from physinv.problems.flame.pinn import load_deepxde\n"
        "dde = load_deepxde()\n"
        "print(json.dumps({'backend': dde.backend.backend_name, 'real': str(dde.config.real(torch)),"
        " 'default': str(torch.get_default_dtype())}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info == {"backend": "pytorch", "real": "torch.float64", "default": "torch.float32"}
    assert not (tmp_path / ".deepxde").exists()
    assert not [p for p in tmp_path.rglob("*") if "deepxde" in p.name.lower()]


def test_another_backend_in_the_environment_is_a_clear_error(tmp_path):
    env = {**os.environ, "DDE_BACKEND": "tensorflow", "HOME": str(tmp_path)}
    code = (
        "from physinv.problems.flame.pinn import load_deepxde\n"
        "from physinv.core.errors import PhysinvError\n"
        "try:\n    load_deepxde()\nexcept PhysinvError as e:\n    print('ERR', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "ERR" in proc.stdout and "DDE_BACKEND='tensorflow'" in proc.stdout


def test_missing_deepxde_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepxde", None)  # import deepxde -> ImportError
    with pytest.raises(MissingExtraError, match=r"physinv\[learn\]"):
        fp.load_deepxde()


def test_short_forward_training_lowers_the_loss():
    settings = PINNSettings(hidden=(20, 20), collocation=201, adam_iterations=300, display_every=50)
    res = train_flame_pinn(0.46, settings=settings, seed=0, progress=False)
    assert res.steps[0] <= 1 and res.steps[-1] == 300
    assert res.loss_history[-1] < 0.05 * res.loss_history[0]
    assert np.all(np.isfinite(res.loss_history))
    f = res.fields(np.linspace(0, 1.5e-3, 301))
    prob = res.problem
    assert f["T"][0] == pytest.approx(prob.T_in, abs=1e-9)
    assert f["T"].min() >= prob.T_in and f["T"].max() <= prob.T_max
    assert np.all(f["Y_F"] >= 0) and np.all(f["u"] > 0)
    assert torch.get_default_dtype() == torch.float32  # global torch state restored


class _Obs:
    def __init__(self, x, T, u, noise=0.02):
        self.x, self.T, self.u, self.noise = x, T, u, noise


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(phi=0.1), "phi"),
        (dict(phi=1.5), "phi"),
        (dict(T_in=0.0), "T_in"),
        (dict(T_in=-10.0), "T_in"),
        (dict(p_atm=0.0), "p_atm"),
        (dict(infer=("lam",)), "sL"),
        (dict(infer=("sL", "kappa")), "sL"),
        (dict(infer=("sL", "lam", "Ea")), "observations"),
        (dict(initial={"sL": -0.4}), "initial sL"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, match):
    args = dict(phi=0.46)
    args.update(kwargs)
    phi = args.pop("phi")
    with pytest.raises(InvalidParameterError, match=match):
        train_flame_pinn(phi, **args, settings=PINNSettings(adam_iterations=1), progress=False)


@pytest.mark.parametrize(
    "obs, match",
    [
        (_Obs([0.0, 1e-3], [298.0, 3000.0], [0.34, 3.0]), "at least 3"),
        (_Obs([0.0, 5e-4, 1e-3], [298.0, np.nan, 3000.0], [0.34, 1.0, 3.0]), "NaN"),
        (_Obs([0.0, 5e-4, 1e-3], [298.0, 900.0, 3000.0], [0.34, np.inf, 3.0]), "NaN"),
        (_Obs([0.0, 5e-4, 1e-3], [298.0, 900.0], [0.34, 1.0, 3.0]), "same length"),
        (_Obs([0.0, 5e-4, 2e-3], [298.0, 900.0, 3000.0], [0.34, 1.0, 3.0]), "lie in"),
        (_Obs([0.0, 5e-4, 1e-3], [298.0, -900.0, 3000.0], [0.34, 1.0, 3.0]), "> 0"),
        (_Obs([0.0, 5e-4, 1e-3], [298.0, 900.0, 3000.0], [0.34, 1.0, 3.0], noise=-0.1), "noise"),
    ],
)
def test_bad_observations_are_a_clear_error(obs, match):
    with pytest.raises(InvalidParameterError, match=match):
        train_flame_pinn(0.46, observations=obs, infer=("sL", "lam", "Ea"),
                         settings=PINNSettings(adam_iterations=1), progress=False)


def test_bad_settings_are_a_clear_error():
    with pytest.raises(InvalidParameterError):
        PINNSettings(collocation=3)
    with pytest.raises(InvalidParameterError):
        PINNSettings(adam_iterations=0, lbfgs_iterations=0)
    with pytest.raises(InvalidParameterError):
        PINNSettings(lr=-1e-3)
