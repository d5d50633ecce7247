"""physinv.problems.calderon.simulator: the discrete Dirichlet-to-Neumann map, its checks and the data-set generator."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.verify import fit_slope
from physinv.learn.data import generate, get_dataset, load
from physinv.problems.calderon.simulator import (
    CalderonSimulator,
    boundary_nodes,
    draw_conductivity,
    trig_patterns,
)
from physinv.problems.calderon.data import network_inputs
from physinv.core.verification import DOT_TOL, SLOPE_BOUNDS, verify_simulator

DT = torch.float64


def _harmonic_case(n):
    """u = exp(pi x) sin(pi y) (harmonic): boundary values and outward normal derivative.

    At a corner the discrete flux approximates the mean of the two one-sided
    normal derivatives (the node owns half an edge of each side)."""
    i, j, s = boundary_nodes(n)
    x, y = i / (n - 1), j / (n - 1)
    ux = math.pi * np.exp(math.pi * x) * np.sin(math.pi * y)
    uy = math.pi * np.exp(math.pi * x) * np.cos(math.pi * y)
    outward = [-uy, ux, uy, -ux]  # sides y=0, x=1, y=1, x=0 (counter-clockwise order)
    side = np.floor(s).astype(int)
    dn = np.choose(side, outward)
    corner = np.isclose(s, np.round(s))
    before = np.choose((side - 1) % 4, outward)  # the side that ends at the corner
    dn = np.where(corner, 0.5 * (dn + before), dn)
    return np.exp(math.pi * x) * np.sin(math.pi * y), dn


def test_boundary_nodes_are_counter_clockwise_and_complete():
    n = 5
    i, j, s = boundary_nodes(n)
    assert len(i) == 4 * (n - 1) == len(set(zip(i, j)))
    assert (i[0], j[0]) == (0, 0) and (i[n - 1], j[n - 1]) == (n - 1, 0) and (i[-1], j[-1]) == (0, 1)
    steps = np.abs(np.diff(np.r_[i, i[0]])) + np.abs(np.diff(np.r_[j, j[0]]))
    assert (steps == 1).all()  # neighbours along the perimeter, closing the loop
    np.testing.assert_allclose(s, np.arange(4 * (n - 1)) / (n - 1))


def test_dtn_converges_at_second_order_to_the_analytic_normal_derivative():
    """a = 1, g = exp(pi x) sin(pi y): max flux error over ALL boundary nodes (corners included,
    against the mean of the one-sided derivatives) falls as h^2. Measured: 0.346, 0.101, 0.0271,
    0.00704 for n = 17, 33, 65, 129; fitted slope 1.88, last local rate 1.95."""
    ns = [17, 33, 65, 129]
    errors = []
    for n in ns:
        g, dn = _harmonic_case(n)
        sim = CalderonSimulator(n=n, patterns=torch.from_numpy(g)[None])
        flux = sim(torch.ones(n, n, dtype=DT))[0].numpy()
        errors.append(np.abs(flux - dn).max())
    h = 1.0 / (np.array(ns) - 1)
    slope = fit_slope(h, np.array(errors))
    last_rate = math.log2(errors[-2] / errors[-1])
    assert 1.8 <= slope <= 2.2, (slope, errors)
    assert 1.9 <= last_rate <= 2.1, (last_rate, errors)
    assert errors[-1] < 1e-4 * np.abs(dn).max() + 1e-2


def test_dtn_is_conservative_symmetric_and_kills_constants():
    n = 9
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 1, n, dtype=DT)
    a = 1.0 + 0.5 * torch.outer(x, x) + 0.2 * torch.sin(3 * x)[:, None]
    nb = 4 * (n - 1)
    g = torch.randn(3, nb, generator=gen, dtype=DT)
    sim = CalderonSimulator(n=n, L=2)
    flux = sim.neumann(a, g)
    assert flux.shape == (3, nb)
    # conservation: int a du/dn = 0 for every g (nodal weights h)
    assert float((flux.sum(-1) * sim.h).abs().max()) < 1e-12 * float(flux.abs().max())
    # symmetry of the discrete DtN map w.r.t. the boundary inner product
    lhs, rhs = float((flux[0] * g[1]).sum()), float((g[0] * flux[1]).sum())
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    # constants give no flux; the stored patterns give forward()
    assert float(sim.neumann(a, torch.full((nb,), 2.5, dtype=DT)).abs().max()) < 1e-12
    torch.testing.assert_close(sim(a), sim.neumann(a, sim.patterns), rtol=1e-13, atol=1e-13)


def test_registered_simulator_passes_the_verification_ladder():
    result = verify_simulator("calderon-fd")
    assert SLOPE_BOUNDS[0] <= result["taylor_slope"] <= SLOPE_BOUNDS[1], result["taylor_remainders"]
    assert max(result["dot_tests"].values()) <= DOT_TOL
    assert set(result["dot_tests"]) == {"jacobian", "dtn-schur"}
    assert result["gradcheck"] and result["passed"]


def test_gradient_is_implicit_and_matches_finite_differences():
    n = 6
    sim = CalderonSimulator(n=n, L=4)
    x = torch.linspace(0, 1, n, dtype=DT)
    a = (1.5 + torch.outer(x, 1 - x)).requires_grad_(True)
    w = torch.randn(4, sim.n_boundary, generator=torch.Generator().manual_seed(1), dtype=DT)
    (grad,) = torch.autograd.grad((w * sim(a)).sum(), a)
    da = torch.zeros_like(a)
    da[2, 3] = 1.0
    eps = 1e-6
    with torch.no_grad():
        fd = ((w * sim(a + eps * da)).sum() - (w * sim(a - eps * da)).sum()) / (2 * eps)
    assert abs(float(grad[2, 3]) - float(fd)) <= 1e-7 * max(1.0, abs(float(fd)))


def test_bad_input_is_refused():
    sim = CalderonSimulator(n=5, L=2)
    a = torch.ones(5, 5, dtype=DT)
    with pytest.raises(ShapeMismatchError, match="5x5"):
        sim(torch.ones(6, 6, dtype=DT))
    with pytest.raises(InvalidParameterError, match="positive"):
        sim(-a)
    with pytest.raises(InvalidParameterError, match="NaN"):
        sim(a * float("nan"))
    with pytest.raises(InvalidParameterError, match="loop"):
        sim(a.expand(2, 5, 5))
    with pytest.raises(InvalidParameterError, match="patterns"):
        CalderonSimulator(n=5, patterns=torch.ones(2, 7))
    with pytest.raises(InvalidParameterError, match="L"):
        trig_patterns(5, 0)
    with pytest.raises(InvalidParameterError, match="a_min"):
        draw_conductivity(np.random.default_rng(0), 5, 2.0, 1.0, 3, 1.0)


def test_prior_is_bounded_smooth_and_fixed_on_the_boundary():
    rng = np.random.default_rng(3)
    a = np.stack([draw_conductivity(rng, 17, 1.0, 3.0, 5, 2.0) for _ in range(50)])
    assert a.min() > 1.0 and a.max() < 3.0
    np.testing.assert_allclose(a[:, [0, -1], :], 2.0, atol=1e-12)
    np.testing.assert_allclose(a[:, :, [0, -1]], 2.0, atol=1e-12)
    assert a.std(axis=0).mean() > 0.2  # the samples do vary


def test_patterns_are_trigonometric_modes_of_the_perimeter():
    g = trig_patterns(9, 5)
    _, _, s = boundary_nodes(9)
    np.testing.assert_allclose(g[0], np.cos(np.pi * s / 2), atol=1e-15)
    np.testing.assert_allclose(g[3], np.sin(np.pi * s), atol=1e-15)
    np.testing.assert_allclose(g.mean(axis=1), 0.0, atol=1e-14)


def test_dataset_generator_and_network_inputs(tmp_path):
    gen = get_dataset("calderon")
    params = {"n": 9, "L": 4}
    out = generate("calderon", 6, tmp_path / "c.h5", seed=2, chunk=4, params=params, progress=False)
    data = load(out)
    assert data.inputs == ["neumann"] and data.targets == ["a"]
    assert data["a"].shape == (6, 9, 9) and data["neumann"].shape == (6, 4, 32)
    assert data["a"].dtype == torch.float32
    # sample i alone equals the file's row i, and equals the simulator applied to the drawn a
    one = gen.sample(2, 5, gen.resolve_params(params))
    np.testing.assert_array_equal(one["neumann"], data["neumann"][5].numpy())
    sim = CalderonSimulator(n=9, L=4)
    direct = sim(torch.from_numpy(one["a"].astype(np.float64))).numpy()
    np.testing.assert_allclose(one["neumann"], direct, rtol=1e-5, atol=1e-5)
    x = network_inputs(data["neumann"])
    assert x.shape == (6, 4, 32, 2)
    torch.testing.assert_close(x[3, :, :, 0], torch.from_numpy(trig_patterns(9, 4)).float())
    torch.testing.assert_close(x[..., 1], data["neumann"])
    with pytest.raises(InvalidParameterError, match="B, L, n_boundary"):
        network_inputs(data["neumann"][0])
