"""The flame model: mixture constants and the one closure (NumPy and torch, its analytic derivatives)."""

import numpy as np
import pytest
import torch

from physinv.problems.flame.model import (
    algebraic_fields,
    constant_tensors,
    energy_residual,
    make_problem,
    reaction_rate_derivatives,
)


def test_mixture_constants():
    prob = make_problem(0.46)
    assert prob.p == 101325.0
    assert prob.Y_in == pytest.approx(0.46 / 4.46)
    assert prob.rho_in == pytest.approx(101325.0 / (8.3145 / 28.97e-3 * 298.0))
    assert prob.T_max == pytest.approx(298.0 + 5e7 * 0.46 / 4.46 / 1000.0)


def _temperatures(prob, n=41):
    # from the inlet through the flame to beyond T_max (where Y_F is clipped and omega = 0)
    return np.linspace(prob.T_in, prob.T_max + 50.0, n)


def test_closure_is_the_same_for_numpy_and_torch_with_float_or_tensor_constants():
    prob = make_problem(0.46)
    T, s = _temperatures(prob), 0.34
    ref = algebraic_fields(T, s, prob)
    assert isinstance(ref["omega"], np.ndarray)
    with_tensors = algebraic_fields(torch.from_numpy(T), torch.tensor(s, dtype=torch.float64), prob,
                                    constant_tensors(prob))
    for key in ("u", "rho", "Y_F", "omega"):
        np.testing.assert_allclose(with_tensors[key].numpy(), ref[key], rtol=1e-13, atol=0)
    assert ref["u"][0] == pytest.approx(s, rel=1e-14) and ref["rho"][0] == pytest.approx(prob.rho_in, rel=1e-14)
    assert np.all(ref["omega"][T >= prob.T_max] == 0) and np.all(ref["Y_F"] >= 0)


def test_analytic_reaction_rate_derivatives_match_autograd():
    prob = make_problem(0.46)
    T = np.linspace(prob.T_in, prob.T_max - 1.0, 17)
    s = 0.34
    omega, d_T, d_s = reaction_rate_derivatives(T, s, prob)
    Tt = torch.from_numpy(T).requires_grad_(True)
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    om = algebraic_fields(Tt, st, prob)["omega"]
    g_T = torch.autograd.grad(om.sum(), Tt, retain_graph=True)[0].numpy()  # omega_i depends on T_i only
    g_s = np.array([float(torch.autograd.grad(om[i], st, retain_graph=True)[0]) for i in range(T.size)])
    np.testing.assert_allclose(omega, om.detach().numpy(), rtol=1e-14, atol=0)
    np.testing.assert_allclose(d_T, g_T, rtol=1e-10, atol=1e-10 * np.abs(g_T).max())
    np.testing.assert_allclose(d_s, g_s, rtol=1e-10, atol=1e-10 * np.abs(g_s).max())


def test_energy_residual_is_the_flux_form_of_the_energy_equation():
    prob = make_problem(0.46)
    pr = prob.params
    T = _temperatures(prob, 9)
    Tx, Txx, s = np.full(9, 2e6), np.full(9, -3e9), 0.3
    omega = algebraic_fields(T, s, prob)["omega"]
    expected = prob.rho_in * s * pr["cp"] * Tx - pr["lam"] * Txx - pr["qF"] * omega
    np.testing.assert_allclose(energy_residual(T, Tx, Txx, s, prob), expected, rtol=1e-13)
    lam = torch.tensor(0.03, dtype=torch.float64, requires_grad=True)
    r = energy_residual(torch.from_numpy(T), torch.from_numpy(Tx), torch.from_numpy(Txx), s, prob, {"lam": lam})
    (g,) = torch.autograd.grad(r.sum(), lam)
    assert float(g) == pytest.approx(-Txx.sum(), rel=1e-14)
