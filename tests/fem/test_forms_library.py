"""The UFL form library (physinv.problems.forms) and TimeSteppingFormSimulator.

* each convenience form (nonlinear diffusion, elasticity, advection-diffusion-reaction):
  Taylor slope in [1.9, 2.1], dot-product test of its linearization <= 1e-10, and a
  physical check (E scaling, linearity detection, steady state, time order);
* the time-stepping simulator: gradcheck, the gradient against central differences of
  the whole trajectory (linear and nonlinear steps), forward mode against differences,
  one factorization reused for every step, stored states growing linearly with the
  number of steps (exact bytes and tracemalloc), batches, errors;
* the split of form_simulator.py keeps every old import working.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from physinv.core.autodiff import jvp
from physinv.core.errors import InvalidParameterError, MissingExtraError, ShapeMismatchError
from physinv.core.verify import fit_slope, gradcheck_model, jacobian_dot_test, taylor_test


def _randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _objective(sim, w):
    return lambda m: (w * sim(m)).sum() + 0.5 * (sim(m) ** 2).sum()


def _ladder(sim, m0, seed=0):
    """Taylor slope and dot-product mismatch of the linearization (the numbers `physinv verify` prints)."""
    with torch.no_grad():
        w = _randn(sim(m0).shape, seed)
    taylor = taylor_test(_objective(sim, w), m0, 0.2 * m0 * _randn(m0.shape, seed + 1))
    dot = jacobian_dot_test(sim, m0, _randn(m0.shape, seed + 2), w)
    return taylor, dot


@pytest.fixture(scope="module")
def ufl(dolfinx):
    import ufl

    return ufl


# --------------------------------------------------------------------------
# the split of form_simulator.py


def test_public_names_come_from_their_modules():
    import physinv.fem as pf
    from physinv.fem import form_regularizer, form_simulator, form_solve, point_evaluation, time_stepping

    assert pf.FormRegularizer is form_regularizer.FormRegularizer
    assert pf.point_evaluation_matrix is point_evaluation.point_evaluation_matrix
    assert pf.FormSimulator is form_simulator.FormSimulator
    assert pf.NewtonError is form_solve.NewtonError is form_simulator.NewtonError
    assert pf.TimeSteppingFormSimulator is time_stepping.TimeSteppingFormSimulator
    assert pf.theta_scheme is time_stepping.theta_scheme
    from physinv.problems.forms.examples import SENSORS, nonlinear_diffusion, smooth_log_kappa  # noqa: F401


# --------------------------------------------------------------------------
# nonlinear diffusion


def test_nonlinear_diffusion_with_a_user_q(ufl):
    from physinv.problems.forms import nonlinear_diffusion

    sim = nonlinear_diffusion(cells=6, control="DG0", q=lambda u: 1 + 0.5 * u**2 + 0.1 * ufl.sin(u))
    assert not sim.linear and sim.num_controls == 72 and sim.obs_shape == (5,)
    m0 = sim.interpolate_control(lambda x: 0.3 + 0.2 * np.cos(np.pi * x[0]) * x[1])
    taylor, dot = _ladder(sim, m0)
    assert 1.9 <= taylor.slope <= 2.1, str(taylor)
    assert dot <= 1e-10, dot
    # q = 1: a linear problem, detected (one solve); the default q is 1 + u^2
    assert nonlinear_diffusion(cells=4, q=lambda u: 1.0 + 0 * u).linear
    default = nonlinear_diffusion(cells=4)
    explicit = nonlinear_diffusion(cells=4, q=lambda u: 1 + u**2)
    m = default.interpolate_control(lambda x: 0.5 * x[0])
    torch.testing.assert_close(default(m), explicit(m), rtol=0, atol=1e-13)
    with pytest.raises(InvalidParameterError, match="control must be 'P1' or 'DG0'"):
        nonlinear_diffusion(cells=4, control="P2")


# --------------------------------------------------------------------------
# elasticity


@pytest.fixture(scope="module")
def elasticity(dolfinx):
    from physinv.problems.forms import linear_elasticity

    sim = linear_elasticity(cells=3, control="DG0")
    m0 = sim.interpolate_control(lambda x: np.log(1.5 + 0.5 * np.sin(np.pi * x[0]) * np.cos(np.pi * x[1])))
    return sim, m0


def test_elasticity_taylor_and_dot(elasticity):
    sim, m0 = elasticity
    assert sim.linear and sim.obs_shape == (5, 2)
    taylor, dot = _ladder(sim, m0)
    assert 1.9 <= taylor.slope <= 2.1, str(taylor)
    assert dot <= 1e-10, dot
    # forward mode against central differences (the dot test alone passes two consistent wrong products)
    d = _randn(m0.shape, 5)
    h = 1e-6
    with torch.no_grad():
        fd = (sim(m0 + h * d) - sim(m0 - h * d)) / (2 * h)
    torch.testing.assert_close(jvp(sim, m0, d), fd, rtol=1e-6, atol=1e-10)


def test_elasticity_physics(elasticity, dolfinx):
    """Fixed loads: doubling E everywhere halves the displacement; a downward load bends the plate down;
    the clamped side does not move; a P1 control works as well."""
    from physinv.problems.forms import linear_elasticity

    sim, m0 = elasticity
    u = sim(m0)
    torch.testing.assert_close(sim(m0 + np.log(2.0)), u / 2, rtol=1e-12, atol=1e-15)
    assert bool((u[:, 1] < 0).all())
    full = linear_elasticity(cells=3, control="P1", sensors="state", nu=0.25, traction=(0.2, 0.0))
    state = full(torch.zeros(full.num_controls, dtype=torch.float64)).reshape(-1, 2)
    clamped = np.isclose(full.state_coordinates[:, 0], 0.0)
    assert clamped.sum() == 4 and float(state[clamped].abs().max()) == 0.0
    assert float(state[~clamped].abs().max()) > 0
    # a slender cantilever (4 m x 0.5 m) under an end shear load: the tip deflection approaches
    # Timoshenko beam theory with the plane-strain modulus E / (1 - nu^2) (P1 locks: from below)
    beam = linear_elasticity(cells=16, length=4.0, height=0.5, nu=0.3, body_force=(0.0, 0.0), traction=(0.0, -1e-3),
                             sensors=np.array([[4.0, 0.25]]))
    tip = float(beam(torch.zeros(beam.num_controls, dtype=torch.float64))[0, 1])
    load, length, height, nu = 1e-3 * 0.5, 4.0, 0.5, 0.3
    E, G = 1 / (1 - nu**2), 1 / (2 * (1 + nu))
    timoshenko = load * length**3 / (3 * E * height**3 / 12) + load * length / (5 / 6 * G * height)
    assert -tip == pytest.approx(timoshenko, rel=0.03), (tip, timoshenko)
    with pytest.raises(InvalidParameterError, match=r"Poisson ratio nu must lie in \(-1, 0.5\)"):
        linear_elasticity(cells=2, nu=0.5)


# --------------------------------------------------------------------------
# advection-diffusion-reaction (time-dependent)


@pytest.fixture(scope="module")
def adr(dolfinx):
    from physinv.problems.forms import advection_diffusion_reaction
    from physinv.problems.forms.examples import smooth_source, switch_on

    sim = advection_diffusion_reaction(cells=6, n_steps=12, dt=0.05, theta=0.5, time_profile=switch_on,
                                       u0=lambda x: x[0] * (1 - x[0]) * x[1] * (1 - x[1]))
    return sim, smooth_source(sim)


def test_advection_diffusion_taylor_dot_and_one_factorization(adr):
    sim, m0 = adr
    assert sim.linear and sim.operator_policy == {"jacobian": "global", "coupling": "global", "control": "step"}
    taylor, dot = _ladder(sim, m0)
    assert 1.9 <= taylor.slope <= 2.1, str(taylor)
    assert dot <= 1e-10, dot
    # every forward, adjoint and tangent sweep at every control reused one factorization
    assert sim.calls["factorizations"] == 1, sim.calls
    assert sim.calls["steps"] % sim.n_steps == 0


def test_time_stepping_gradcheck(dolfinx):
    from physinv.problems.forms import advection_diffusion_reaction
    from physinv.problems.forms.examples import smooth_source, switch_on

    sim = advection_diffusion_reaction(cells=3, n_steps=6, dt=0.1, theta=1.0, control="DG0", diffusivity=0.2,
                                       time_profile=switch_on,
                                       sensors=np.array([[0.3, 0.4], [0.6, 0.7]]), observe_steps=[2, 6])
    assert sim(smooth_source(sim)).shape == (2, 2)
    assert gradcheck_model(sim, smooth_source(sim)) is True


def _trajectory_fd(sim, m0, seeds):
    """Relative errors of <grad J, d> against central differences of J = 1/2 sum_k |u_k|^2 + <w, u>."""
    with torch.no_grad():
        w = _randn(sim(m0).shape, 50)

    def J(m):
        u = sim(m)
        return 0.5 * (u**2).sum() + (w * u).sum()

    m = m0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(J(m), m)
    errors = []
    for seed in seeds:
        d = _randn(m0.shape, seed)
        h = 1e-5 * float(m0.abs().max() + 1)
        with torch.no_grad():
            fd = (float(J(m0 + h * d)) - float(J(m0 - h * d))) / (2 * h)
        errors.append(abs(float((g * d).sum()) - fd) / abs(fd))
    return errors


def test_trajectory_gradient_against_finite_differences(adr, dolfinx, ufl):
    """The adjoint sweep's gradient of a functional of ALL states u_0..u_N, against central differences:
    the linear ADR (Crank-Nicolson, time-dependent source) and a nonlinear step (Newton each step,
    Jacobian, coupling and dF/dm re-assembled at every step)."""
    from dolfinx import fem

    from physinv.fem import TimeSteppingFormSimulator, theta_scheme
    from physinv.problems.forms import advection_diffusion_reaction
    from physinv.problems.forms.examples import switch_on

    sim = advection_diffusion_reaction(cells=4, n_steps=15, dt=0.04, theta=0.5, time_profile=switch_on,
                                       sensors="state")
    assert sim(torch.ones(sim.num_controls, dtype=torch.float64)).shape == (15, sim.num_states)
    m0 = sim.interpolate_control(lambda x: 1 + x[0] * x[1])
    linear_errors = _trajectory_fd(sim, m0, seeds=(1, 2, 3))
    assert max(linear_errors) < 1e-8, linear_errors

    msh = sim.mesh
    V, M = sim.V, fem.functionspace(msh, ("Lagrange", 1))
    x = ufl.SpatialCoordinate(msh)

    def spatial(u, m, v, t):  # -div(e^m (1 + u^2) grad u) = (1 + t) 10 x
        return ufl.exp(m) * (1 + u**2) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - (1 + t) * 10 * x[0] * v * ufl.dx

    nonlinear = TimeSteppingFormSimulator(V, M, theta_scheme(spatial, 0.1, 0.5), u0=0.0, n_steps=10, dt=0.1,
                                          bcs=[(lambda x: np.isclose(x[0], 0.0), 0.2)], rtol=1e-13, atol=1e-14)
    assert not nonlinear.linear
    assert nonlinear.operator_policy == {"jacobian": "step", "coupling": "step", "control": "step"}
    m1 = nonlinear.interpolate_control(lambda x: 0.3 + 0.5 * np.sin(2 * np.pi * x[0]))
    nonlinear_errors = _trajectory_fd(nonlinear, m1, seeds=(4, 5))
    assert max(nonlinear_errors) < 1e-7, nonlinear_errors
    taylor, dot = _ladder(nonlinear, m1)
    assert 1.9 <= taylor.slope <= 2.1 and dot <= 1e-10, (taylor.slope, dot)
    d = _randn(m1.shape, 6)
    with torch.no_grad():
        fd = (nonlinear(m1 + 1e-6 * d) - nonlinear(m1 - 1e-6 * d)) / 2e-6
    torch.testing.assert_close(jvp(nonlinear, m1, d), fd, rtol=1e-5, atol=1e-8)
    print(f"trajectory gradient vs central differences: linear {max(linear_errors):.1e}, "
          f"nonlinear {max(nonlinear_errors):.1e}")


def test_stored_states_grow_linearly_with_the_number_of_steps(dolfinx):
    """The simulator stores u_0..u_N: (N + 1) n_u float64 per control, nothing else of that size
    (the tracemalloc peak of a forward + backward grows by about one state per step)."""
    from physinv.problems.forms import advection_diffusion_reaction

    steps, stored, peaks = (10, 20, 40, 80), [], []
    for n in steps:
        sim = advection_diffusion_reaction(cells=16, n_steps=n, dt=1.0 / n, cache_size=1)
        m = torch.ones(sim.num_controls, dtype=torch.float64)
        warm = (m + 1).requires_grad_(True)
        (sim(warm) ** 2).sum().backward()  # factorization, form compilation, first allocations
        gc.collect()
        tracemalloc.start()
        mm = m.clone().requires_grad_(True)
        (sim(mm) ** 2).sum().backward()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        stored.append(sim.stored_state_bytes)
        assert sim.stored_state_bytes == (n + 1) * sim.num_states * 8
    state = sim.num_states * 8
    per_step = np.polyfit(steps, peaks, 1)[0]  # bytes per step of the peak: one state, not two
    assert 0.9 * state < per_step < 1.5 * state, (per_step, state, peaks)
    assert abs(fit_slope(np.array(steps), np.array(stored)) - 1) < 0.05
    print("steps, stored KiB, tracemalloc peak KiB:",
          [(n, s / 1024, round(p / 1024, 1)) for n, s, p in zip(steps, stored, peaks)])


def test_steady_state_and_time_order(dolfinx, ufl):
    """Implicit Euler with long steps reaches the steady solution the FormSimulator computes for the same
    operator; at a fixed end time implicit Euler converges with order 1 in dt and Crank-Nicolson with 2."""
    from physinv.fem import FormSimulator
    from physinv.fem.convergence import fit_rate
    from physinv.problems.forms import advection_diffusion_reaction

    kw = dict(cells=5, diffusivity=0.1, velocity=(0.5, 0.25), reaction=0.1, sensors="state")
    transient = advection_diffusion_reaction(n_steps=25, dt=5.0, theta=1.0, observe_steps=[25], **kw)
    m = transient.interpolate_control(lambda x: 1 + x[0])
    b = ufl.as_vector((0.5, 0.25))

    def steady_residual(u, m, v):
        return (0.1 * ufl.inner(ufl.grad(u), ufl.grad(v)) + ufl.dot(b, ufl.grad(u)) * v + 0.1 * u * v
                - m * v) * ufl.dx

    steady = FormSimulator(transient.V, transient.M, steady_residual, bcs=[("boundary", 0.0)])
    torch.testing.assert_close(transient(m)[0], steady(m), rtol=1e-10, atol=1e-12)

    def end_state(n, theta):
        sim = advection_diffusion_reaction(n_steps=n, dt=0.4 / n, theta=theta, observe_steps=[n],
                                           time_profile=lambda t: ufl.cos(4 * t), u0=lambda x: np.sin(np.pi * x[0])
                                           * np.sin(np.pi * x[1]), **kw)
        return sim(m)[0]

    reference = end_state(512, 0.5)
    for theta, order in ((1.0, 1.0), (0.5, 2.0)):
        ns = np.array([4, 8, 16])
        errors = [float((end_state(int(n), theta) - reference).norm()) for n in ns]
        rate = fit_rate(0.4 / ns, errors).rate
        assert abs(rate - order) < 0.15, (theta, rate, errors)
        print(f"theta {theta}: time order {rate:.3f}, errors {errors}")


def test_time_stepping_batches_steps_and_signature(dolfinx, ufl, adr):
    from physinv.fem import TimeSteppingFormSimulator

    sim, m0 = adr
    batch = torch.stack([m0, 2 * m0])
    out = sim(batch)
    assert out.shape == (2, 12, 5)
    torch.testing.assert_close(out[1], 2 * out[0] - sim(torch.zeros_like(m0)), rtol=1e-12, atol=1e-14)  # affine in m
    w = _randn(out.shape, 9)
    mb = batch.clone().requires_grad_(True)
    (w * sim(mb)).sum().backward()
    mi = m0.clone().requires_grad_(True)
    (w[0] * sim(mi)).sum().backward()
    torch.testing.assert_close(mb.grad[0], mi.grad, rtol=1e-12, atol=1e-15)
    # observed times pick the same rows as the steps; step 0 is u_0
    V, M = sim.V, sim.M

    def step(u, u_old, m, v):  # no time argument: implicit Euler of du/dt - div grad u = m
        return ((u - u_old) / 0.05 * v + ufl.inner(ufl.grad(u), ufl.grad(v)) - m * v) * ufl.dx

    full = TimeSteppingFormSimulator(V, M, step, u0=0.5, n_steps=4, dt=0.05, bcs=[("boundary", 0.0)])
    picked = TimeSteppingFormSimulator(V, M, step, u0=0.5, n_steps=4, dt=0.05, bcs=[("boundary", 0.0)],
                                       observe_times=[0.0, 0.1, 0.2])
    assert picked.observe_steps.tolist() == [0, 2, 4] and np.allclose(picked.times, [0, 0.05, 0.1, 0.15, 0.2])
    y_full, y_picked = full(m0), picked(m0)
    torch.testing.assert_close(y_picked[1:], y_full[[1, 3]], rtol=0, atol=0)
    assert bool((y_picked[0] == 0.5).all())
    torch.testing.assert_close(full.trajectory(m0)[1:], y_full, rtol=0, atol=0)


def test_time_stepping_errors(dolfinx, ufl, adr):
    from physinv.fem import TimeSteppingFormSimulator, theta_scheme
    from physinv.problems.forms import advection_diffusion_reaction

    sim, m0 = adr
    V, M = sim.V, sim.M

    def spatial(u, m, v):
        return (ufl.inner(ufl.grad(u), ufl.grad(v)) - m * v) * ufl.dx

    step = theta_scheme(spatial, 0.1)
    with pytest.raises(InvalidParameterError, match="observe_times must be step times"):
        TimeSteppingFormSimulator(V, M, step, 0.0, 5, 0.1, observe_times=[0.25])
    with pytest.raises(InvalidParameterError, match=r"increasing indices in 0..n_steps=5"):
        TimeSteppingFormSimulator(V, M, step, 0.0, 5, 0.1, observe_steps=[3, 6])
    with pytest.raises(InvalidParameterError, match="does not depend on the control m"):
        TimeSteppingFormSimulator(V, M, theta_scheme(lambda u, m, v: ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx,
                                                     0.1), 0.0, 5, 0.1)
    with pytest.raises(ShapeMismatchError, match="u0 must hold the"):
        TimeSteppingFormSimulator(V, M, step, np.zeros(3), 5, 0.1)
    with pytest.raises(InvalidParameterError, match="n_steps must be an int >= 1"):
        TimeSteppingFormSimulator(V, M, step, 0.0, 0, 0.1)
    with pytest.raises(InvalidParameterError, match="dt must be > 0"):
        TimeSteppingFormSimulator(V, M, step, 0.0, 5, -0.1)
    with pytest.raises(InvalidParameterError, match=r"theta must lie in \[0.5, 1\]"):
        advection_diffusion_reaction(cells=2, theta=0.2)
    with pytest.raises(InvalidParameterError, match="diffusivity must be finite and > 0"):
        advection_diffusion_reaction(cells=2, diffusivity=0.0)
    with pytest.warns(UserWarning, match="mesh Peclet number"):
        advection_diffusion_reaction(cells=2, velocity=(10.0, 0.0))
    with pytest.raises(InvalidParameterError, match="float64"):
        sim(m0.float())
    with pytest.raises(ShapeMismatchError, match="expected"):
        sim(m0[:-1])


def test_newton_failure_names_the_step(dolfinx, ufl, adr):
    from physinv.fem import NewtonError, TimeSteppingFormSimulator

    sim, _ = adr

    def bratu(u, u_old, m, v):  # implicit Euler of du/dt - lap u = m e^u: blows up for a large m
        return ((u - u_old) * v + 0.1 * ufl.inner(ufl.grad(u), ufl.grad(v)) - 0.1 * m[0] * ufl.exp(u) * v) * ufl.dx

    blow = TimeSteppingFormSimulator(sim.V, 1, bratu, 0.0, 5, 0.1, bcs=[("boundary", 0.0)], max_it=8)
    with pytest.raises(NewtonError, match=r"time step \d+ \(t = .* s\): Newton") as info:
        blow(torch.tensor([400.0], dtype=torch.float64))
    assert len(info.value.history) >= 2


# --------------------------------------------------------------------------
# registration


@pytest.mark.parametrize("name", ["form-elasticity", "form-advection-diffusion"])
def test_registered_examples_pass_verify(dolfinx, name):
    from physinv.core.verification import verify_simulator

    result = verify_simulator(name)
    assert result["passed"], result
    print(f"{name}: Taylor slope {result['taylor_slope']:.4f}, dot {max(result['dot_tests'].values()):.2e}")


@pytest.mark.parametrize("name", ["form-elasticity", "form-advection-diffusion"])
def test_missing_dolfinx_names_the_fem_extra(monkeypatch, name):
    from physinv.core.simulator import get_simulator_spec

    spec = get_simulator_spec(name)
    monkeypatch.setitem(sys.modules, "dolfinx", None)
    monkeypatch.setitem(sys.modules, "dolfinx_solver", None)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        spec.make_example(torch.float64, torch.device("cpu"))
