"""Classic EIT reconstruction (physinv.problems.eit.reconstruction): Gauss-Newton absolute imaging, difference imaging."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.problems.eit.electrodes import ElectrodeMesh
from physinv.invert.cell_regularizers import CellTotalVariation, cell_graph, cell_regularizer
from physinv.invert.weight_rules import lcurve_corner
from physinv.problems.eit.reconstruction import (
    data_space,
    homogeneous_fit,
    log_conductivity_jacobian,
    reconstruct_absolute,
    reconstruct_difference,
)
from physinv.problems.eit.reconstruction import _forward, _jacobians
from physinv.problems.eit.simulator import EITSimulator
from physinv.problems.eit.phantoms import Inclusion, Phantom, cells_to_pixels, dice, inclusion_mask, pixel_grid

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def sims():
    """Data mesh h = 0.05 and inversion mesh h = 0.1 (no inverse crime), default CEM protocols."""
    torch.set_num_threads(1)
    fine = EITSimulator(ElectrodeMesh.shipped("eit_disk_h0.05.msh"))
    coarse = EITSimulator(ElectrodeMesh.shipped("eit_disk_h0.1.msh"))
    return fine, coarse


# a conductive and a resistive inclusion at the strong end of draw_phantom's range (radius 0.3,
# contrast 4-5), halfway to the boundary: their signal is well above 1% noise, so the Dice
# coefficient does not hinge on the noise draw (weaker ones are scored in docs/inversion.md)
PHANTOMS = [
    Phantom(1.0, (Inclusion(0.45, 0.2, 0.3, 0.3, 0.0, 4.0),)),
    Phantom(1.0, (Inclusion(-0.35, -0.4, 0.3, 0.24, 0.6, 0.2),)),
]


def _noisy(fine, phantom, level, seed):
    with torch.no_grad():
        clean = fine(torch.as_tensor(phantom.on_cells(fine.operator.mesh)))
    rms = float(clean.pow(2).mean().sqrt())
    gen = torch.Generator().manual_seed(seed)
    return clean + level * rms * torch.randn(clean.shape, generator=gen, dtype=torch.float64), level * rms


def _dice(coarse, phantom, sigma):
    centres, region = pixel_grid(32)
    pixels = cells_to_pixels(coarse.operator.mesh, 32)(sigma)
    truth = torch.as_tensor(phantom.on_points(centres))
    return dice(inclusion_mask(pixels), inclusion_mask(truth), region)


# ------------------------------------------------------------------------------------------------ derivatives


def test_log_sigma_jacobian_matches_finite_differences(sims):
    _, coarse = sims
    rng = np.random.default_rng(0)
    m = torch.as_tensor(rng.normal(0.0, 0.3, coarse.parameter_shape), dtype=torch.float64)
    v = torch.as_tensor(rng.normal(0.0, 1.0, coarse.parameter_shape), dtype=torch.float64)
    jv = log_conductivity_jacobian(coarse, m) @ v
    h = 1e-5
    with torch.no_grad():
        fd = (coarse(torch.exp(m + h * v)) - coarse(torch.exp(m - h * v))).reshape(-1) / (2 * h)
    # central differences: O(h^2) truncation ~ 1e-10 relative, rounding ~ 1e-16 / h ~ 1e-11
    assert float((jv - fd).norm() / fd.norm()) < 1e-7


def test_contact_scaling_identity_and_derivative(sims):
    """F(sigma, k z) = k F(k sigma, z) (CEM matrix K(sigma) + E/z, K linear in sigma) against a
    simulator built with contact impedance k z, and dF/dlog k against finite differences."""
    _, coarse = sims
    em = coarse.electrode_mesh
    rng = np.random.default_rng(1)
    m = torch.as_tensor(rng.normal(0.0, 0.3, coarse.parameter_shape), dtype=torch.float64)
    k = 1.7
    direct = EITSimulator(em, contact_impedance=0.01 * k)
    with torch.no_grad():
        expected = direct(torch.exp(m)).reshape(-1)
    got = _forward(coarse, m, math.log(k))
    assert float((got - expected).norm() / expected.norm()) < 1e-10  # the same linear system, rescaled
    f = _forward(coarse, m, math.log(k))
    jm, jk = _jacobians(coarse, m, math.log(k), f)
    h = 1e-5
    fd_k = (_forward(coarse, m, math.log(k) + h) - _forward(coarse, m, math.log(k) - h)) / (2 * h)
    assert float((jk - fd_k).norm() / fd_k.norm()) < 1e-7
    v = torch.as_tensor(rng.normal(0.0, 1.0, coarse.parameter_shape), dtype=torch.float64)
    fd_m = (_forward(coarse, m + h * v, math.log(k)) - _forward(coarse, m - h * v, math.log(k))) / (2 * h)
    assert float((jm @ v - fd_m).norm() / fd_m.norm()) < 1e-7


def test_model_data_lie_in_data_space(sims):
    _, coarse = sims
    basis = data_space(coarse)
    assert basis.shape == (256, 120)  # symmetric transfer matrices on zero-sum vectors: 15 * 16 / 2
    sigma = torch.as_tensor(np.random.default_rng(2).uniform(0.3, 3.0, coarse.parameter_shape))
    with torch.no_grad():
        d = coarse(sigma).reshape(-1)
    assert float((d - basis @ (basis.T @ d)).norm() / d.norm()) < 1e-12


def test_homogeneous_fit_recovers_constant_and_contact_scale(sims):
    _, coarse = sims
    d = _forward(coarse, torch.full(coarse.parameter_shape, math.log(2.5), dtype=torch.float64),
                 math.log(1.3)).reshape(16, 16)
    sigma, k = homogeneous_fit(coarse, d, fit_contact=True)
    assert sigma == pytest.approx(2.5, rel=1e-6) and k == pytest.approx(1.3, rel=1e-6)
    sigma_only, k_fixed = homogeneous_fit(coarse, d, fit_contact=False, contact_scale=1.3)
    assert sigma_only == pytest.approx(2.5, rel=1e-6) and k_fixed == 1.3


# ------------------------------------------------------------------------------------------------ regularizers


def test_cell_graph_counts_interior_edges(sims):
    _, coarse = sims
    mesh = coarse.operator.mesh
    graph = cell_graph(mesh)
    # every cell has 3 edges; boundary edges belong to one cell, interior ones to two
    assert 2 * graph.pairs.shape[0] + len(mesh.boundary_edges()) == 3 * mesh.num_cells
    assert bool((graph.lengths > 0).all()) and bool((graph.distances > 0).all())


def test_tv_irls_weights_gradient_and_majorizer(sims):
    _, coarse = sims
    graph = cell_graph(coarse.operator.mesh)
    tv = CellTotalVariation(graph, beta=0.05)
    rng = np.random.default_rng(3)
    m = torch.as_tensor(rng.normal(0.0, 0.5, graph.num_cells), dtype=torch.float64)
    i, j = graph.pairs[:, 0], graph.pairs[:, 1]
    expected = graph.lengths / torch.sqrt((m[i] - m[j]) ** 2 + 0.05**2)
    torch.testing.assert_close(tv.irls_weights(m), expected)
    # the gradient is exact: D^T diag(w) D m = dR/dm
    mg = m.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(tv.value(mg), mg)
    torch.testing.assert_close(tv.gradient(m), auto)
    # lagged diffusivity: R(m + p) <= R(m) + g.p + 1/2 p^T H(m) p for any p (sqrt is concave), with
    # equality to second order -- the quadratic model the Gauss-Newton steps minimize is a majorizer
    h, g, r0 = tv.hessian(m), tv.gradient(m), float(tv.value(m))
    for scale in (1e-3, 0.1, 1.0, 10.0):
        p = scale * torch.as_tensor(rng.normal(size=graph.num_cells))
        model = r0 + float(g @ p) + 0.5 * float(p @ h @ p)
        assert float(tv.value(m + p)) <= model * (1 + 1e-12)


def test_smoothness_is_quadratic_with_its_hessian(sims):
    _, coarse = sims
    reg = cell_regularizer("tikhonov", coarse.operator.mesh, gamma=0.1, m_ref=0.2)
    m = torch.as_tensor(np.random.default_rng(4).normal(size=coarse.parameter_shape))
    p = torch.as_tensor(np.random.default_rng(5).normal(size=coarse.parameter_shape))
    exact = float(reg.value(m + p))
    model = float(reg.value(m)) + float(reg.gradient(m) @ p) + 0.5 * float(p @ reg.hessian(m) @ p)
    assert exact == pytest.approx(model, rel=1e-10)
    assert float(reg.value(torch.full_like(m, 0.2))) == pytest.approx(0.0, abs=1e-14)  # constants at m_ref


# ------------------------------------------------------------------------------------------------ absolute


def test_gauss_newton_reaches_the_discrepancy_level(sims):
    fine, coarse = sims
    data, noise = _noisy(fine, PHANTOMS[0], 0.01, seed=0)
    out = reconstruct_absolute(coarse, data, noise, regularizer="tikhonov")
    assert out.converged, out.message
    assert out.misfit_ratio_history[0] > 1.05  # the homogeneous fit does not explain the data
    assert out.misfit_ratio <= 1.05  # ... the reconstruction does, at the chosen beta
    # the discrepancy principle stops at the first beta of the decreasing sequence that fits
    betas = [a for a, _, _ in out.beta_path]
    assert betas == sorted(betas, reverse=True) and out.beta == betas[-1]
    assert all(ratio > 1.05 for _, ratio, _ in out.beta_path[:-1])
    assert out.sigma.shape == coarse.parameter_shape and bool((out.sigma > 0).all())
    assert out.iterations == len(out.misfit_ratio_history) - 1 and out.wall_time > 0
    # every simulator call is counted: one dense Jacobian per Gauss-Newton step, one for the beta0 scale,
    # and at most one per weight that bought no step (the solve ended stationary)
    assert out.iterations + 1 <= out.calls.linearized <= out.iterations + 1 + len(out.beta_path)
    assert out.calls.forward > out.iterations


@pytest.mark.parametrize("regularizer", ["tikhonov", "tv"])
def test_recovers_a_single_inclusion(sims, regularizer):
    """Measured (h0.05 data, h0.1 inversion, 1% noise, discrepancy principle, noise seeds 0-5):
    Dice 0.70-0.83 (Tikhonov) and 0.73-0.83 (TV) over these two phantoms.  The bound 0.55 leaves
    a margin for the noise draw and BLAS differences; a missed inclusion gives 0, a misplaced one
    or a blob at the wrong size < 0.4."""
    fine, coarse = sims
    for phantom in PHANTOMS:
        data, noise = _noisy(fine, phantom, 0.01, seed=1)
        out = reconstruct_absolute(coarse, data, noise, regularizer=regularizer)
        assert out.converged, out.message
        assert _dice(coarse, phantom, out.sigma) > 0.55


def test_fixed_beta_and_options(sims):
    fine, coarse = sims
    data, noise = _noisy(fine, PHANTOMS[0], 0.01, seed=2)
    out = reconstruct_absolute(coarse, data, noise, regularizer="tv", beta=25.0, exclude_driven=True,
                               fit_contact=False, project_data=False, max_iter=3, max_betas=2, progress=True)
    assert out.beta == 25.0 and out.contact_scale == 1.0 and out.num_data == 208  # 16 x 13 kept
    assert out.misfit_ratio < out.misfit_ratio_history[0]
    assert 1 <= out.iterations <= 6


def test_lcurve_corner_of_a_known_curve():
    """An exact L: misfit flat for large beta then growing, penalty the mirror image; the corner is
    where the two branches meet (beta = 1 in the middle of the log grid)."""
    betas = np.logspace(3, -3, 25)
    t = np.log(betas)
    misfit = np.exp(np.logaddexp(0.0, 3.0 * t))      # ~1 for beta << 1, ~beta^3 above
    penalty = np.exp(np.logaddexp(0.0, -3.0 * t))    # ~1 for beta >> 1, ~beta^-3 below
    assert lcurve_corner(betas, misfit, penalty) == 12
    with pytest.raises(InvalidParameterError):
        lcurve_corner([1.0, 0.5], [1.0, 1.0], [1.0, 2.0])


def test_lcurve_rule_sweeps_and_keeps_a_point_of_its_path(sims):
    fine, coarse = sims
    data, noise = _noisy(fine, PHANTOMS[0], 0.01, seed=3)
    out = reconstruct_absolute(coarse, data, noise, regularizer="tikhonov", beta_rule="lcurve", lcurve_betas=6,
                               max_iter=3, exclude_driven=True, fit_contact=False)
    betas = [a for a, _, _ in out.beta_path]
    assert len(betas) == 6 and betas == sorted(betas, reverse=True)
    assert out.beta in betas[1:-1] and out.converged and "L-curve" in out.message
    with pytest.raises(UnknownNameError, match="lcurve"):
        reconstruct_absolute(coarse, data, noise, beta_rule="gcv")


# ------------------------------------------------------------------------------------------------ difference


@pytest.mark.parametrize("regularizer", ["tikhonov", "tv"])
def test_difference_imaging_localizes_the_inclusion(sims, regularizer):
    fine, coarse = sims
    phantom = PHANTOMS[0]
    inc = phantom.inclusions[0]
    data, noise = _noisy(fine, phantom, 0.01, seed=3)
    ref, _ = _noisy(fine, Phantom(1.0, ()), 0.01, seed=4)
    out = reconstruct_difference(coarse, data, ref, math.sqrt(2) * noise, regularizer=regularizer)
    assert out.converged, out.message
    centroids = torch.as_tensor(coarse.operator.mesh.points[coarse.operator.mesh.cells].mean(axis=1))
    change = out.delta_sigma
    peak = centroids[int(change.abs().argmax())]
    # the strongest change lies inside the (conductive) inclusion, and is an increase
    assert math.hypot(float(peak[0]) - inc.x, float(peak[1]) - inc.y) < inc.a
    assert float(change[int(change.abs().argmax())]) > 0
    # the weighted centre of the large changes is near the inclusion's centre (radius 0.26)
    w = torch.where(change >= 0.5 * float(change.max()), change, torch.zeros_like(change))
    centre = (w[:, None] * centroids).sum(0) / w.sum()
    assert math.hypot(float(centre[0]) - inc.x, float(centre[1]) - inc.y) < 0.15


def test_difference_imaging_linear_parametrization_and_fixed_beta(sims):
    fine, coarse = sims
    data, noise = _noisy(fine, PHANTOMS[1], 0.01, seed=5)
    ref, _ = _noisy(fine, Phantom(1.0, ()), 0.0, seed=6)
    out = reconstruct_difference(coarse, data, ref, noise, sigma_ref=1.0, parametrization="linear", beta=5.0)
    assert out.beta == 5.0 and out.contact_scale == 1.0
    torch.testing.assert_close(out.sigma, 1.0 + out.delta_sigma)
    assert float(out.delta_sigma.min()) < 0  # the resistive inclusion shows as a decrease
    assert out.misfit_ratio < out.misfit_ratio_history[0]


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("fn", ["absolute", "difference"])
def test_bad_inputs_raise_clear_errors(sims, fn):
    _, coarse = sims
    with torch.no_grad():
        good = coarse(torch.ones(coarse.parameter_shape, dtype=torch.float64))

    def call(data=good, noise=1e-3, **kw):
        if fn == "absolute":
            return reconstruct_absolute(coarse, data, noise, **kw)
        return reconstruct_difference(coarse, data, good, noise, **kw)

    with pytest.raises(ShapeMismatchError, match=r"\(16, 16\)"):
        call(data=good[:, :8])
    with pytest.raises(ShapeMismatchError):
        call(data=good.reshape(-1))
    bad = good.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN/Inf"):
        call(data=bad)
    bad[3, 4] = float("inf")
    with pytest.raises(InvalidParameterError, match="NaN/Inf"):
        call(data=bad)
    for noise in (0.0, -1e-3, float("nan")):
        with pytest.raises(InvalidParameterError, match="noise_std"):
            call(noise=noise)
    with pytest.raises(ShapeMismatchError, match="noise_std"):
        call(noise=torch.ones(7))
    with pytest.raises(UnknownNameError, match="tikhonov, tv"):
        call(regularizer="l1")
    with pytest.raises(InvalidParameterError, match="beta"):
        call(beta=-1.0)
    with pytest.raises(InvalidParameterError, match="tau"):
        call(tau=0.0)


def test_bad_simulator_and_regularizer_arguments(sims):
    fine, coarse = sims
    with torch.no_grad():
        good = coarse(torch.ones(coarse.parameter_shape, dtype=torch.float64))
    with pytest.raises(ShapeMismatchError, match="data_ref"):
        reconstruct_difference(coarse, good, good[:4], 1e-3)
    with pytest.raises(InvalidParameterError, match="conductivity_on='cell'"):
        reconstruct_absolute(EITSimulator(coarse.electrode_mesh, conductivity_on="node"), good, 1e-3)
    with pytest.raises(UnknownNameError):
        cell_regularizer("h1", coarse.operator.mesh)
    with pytest.raises(InvalidParameterError, match="beta"):
        cell_regularizer("tv", coarse.operator.mesh, tv_beta=0.0)
    with pytest.raises(InvalidParameterError, match="sigma_ref"):
        reconstruct_difference(coarse, good, good, 1e-3, sigma_ref=-1.0)


def test_bad_sweep_settings_raise_clear_errors(sims):
    fine, coarse = sims
    with torch.no_grad():
        good = coarse(torch.ones(coarse.parameter_shape, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="beta_factor"):
        reconstruct_absolute(coarse, good, 1e-3, beta_factor=1.0)
    with pytest.raises(InvalidParameterError, match="max_betas"):
        reconstruct_absolute(coarse, good, 1e-3, max_betas=0)
    with pytest.raises(InvalidParameterError, match="lcurve_betas"):
        reconstruct_absolute(coarse, good * 1.01, 1e-3, beta_rule="lcurve", lcurve_betas=2)
    with pytest.raises(InvalidParameterError, match="contact_scale"):
        reconstruct_absolute(coarse, good, 1e-3, contact_scale=0.0)
    with pytest.raises(InvalidParameterError, match="max_betas"):
        reconstruct_difference(coarse, good, good, 1e-3, max_betas=0)
    with pytest.raises(InvalidParameterError, match="beta0"):
        reconstruct_difference(coarse, good, good, 1e-3, beta0=-2.0)
    with pytest.raises(UnknownNameError, match="parametrization"):
        reconstruct_difference(coarse, good, good, 1e-3, parametrization="sqrt")
