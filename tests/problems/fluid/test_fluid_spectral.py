"""The pseudo-spectral vorticity solver: exact solutions, order, dealiasing, batching, dtypes, errors, checkpointing."""

import math

import pytest
import torch

import physinv.problems.fluid.spectral as sp
from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnstableTimeStepError


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _w0(n=32, seed=0, scale=0.5, batch=()):
    return scale * sp.smooth_random_vorticity(n, torch.Generator().manual_seed(seed), modes=4, batch=batch)


@pytest.mark.parametrize("k,nu,drag", [(1, 0.1, 0.0), (2, 0.02, 0.1)])
def test_taylor_green_decays_exactly(k, nu, drag):
    n = 32
    w, info = sp.simulate(sp.taylor_green(n, 0.0, nu, k=k, drag=drag), 1.0, nu, 0.0, drag, return_info=True)
    exact = sp.taylor_green(n, 1.0, nu, k=k, drag=drag)
    assert info["n_steps"] * info["dt"] == pytest.approx(1.0, rel=1e-14)
    assert float((w - exact).norm() / exact.norm()) < 1e-12


def test_temporal_order_is_four():
    from physinv.fem.convergence import fit_rate

    w0, T = _w0(), 1.0
    ref = sp.simulate(w0, T, 0.02, 1.0, dt=T / 320)
    ms = [10, 20, 40]
    errors = [float((sp.simulate(w0, T, 0.02, 1.0, dt=T / m) - ref).norm() / ref.norm()) for m in ms]
    assert 3.8 <= fit_rate([T / m for m in ms], errors).rate <= 4.2


@pytest.mark.parametrize("n,K", [(16, 5), (48, 15), (64, 21), (128, 42)])
def test_dealias_mask_keeps_exactly_the_documented_modes(n, K):
    assert sp.cutoff_wavenumber(n) == K
    mask = sp.dealias_mask(n)
    assert mask.shape == (n, n // 2 + 1)
    kx = torch.fft.fftfreq(n, 1.0 / n).round().long()
    kept_x = sorted(int(k) for k in kx[mask[:, 0]])
    assert kept_x == list(range(-K, K + 1))  # symmetric, unlike jax-cfd's -43..41 at 128^2
    assert mask[0].nonzero().flatten().tolist() == list(range(K + 1))
    assert int(mask.sum()) == (2 * K + 1) * (K + 1)
    assert 3 * K < n  # quadratic products alias-free


def test_nonlinear_term_is_alias_free():
    """A product whose sum mode would alias onto a kept mode is removed, not folded back."""
    n = 16  # K = 5
    ops = sp._spectral(n, torch.float64, torch.device("cpu"))
    x, y = sp.grid_coordinates(n)
    w = torch.cos(5 * x) + torch.cos(5 * x + y)  # modes at the cutoff
    N_hat = sp._nonlinear(torch.fft.rfft2(w), ops, torch.zeros_like(ops.k2, dtype=torch.complex128), n)
    # products of k=5 modes make |k_x| = 10 > K (removed) and 0 (kept); nothing folds to |k_x| = 6 = 16 - 10
    assert float(N_hat[(~sp.dealias_mask(n))].abs().max()) == 0.0
    assert float(N_hat[6].abs().max()) < 1e-12 and float(N_hat[-6].abs().max()) < 1e-12


def test_batch_equals_per_sample():
    w0 = _w0(batch=(3,))
    sim = sp.VorticitySimulator(32, T=0.3, nu=0.02, dt=0.02, observe_stride=2)
    out = sim(w0)
    assert out.shape == (3, 16, 16)
    for b in range(3):
        torch.testing.assert_close(out[b], sim(w0[b]), rtol=0, atol=1e-13)


def test_float32_matches_float64():
    w0 = _w0()
    sim = sp.VorticitySimulator(32, T=0.5, nu=0.02, dt=0.02)
    w64 = sim(w0)
    w32 = sim(w0.float())
    assert w32.dtype == torch.float32
    assert float((w32.double() - w64).norm() / w64.norm()) < 1e-5


def test_trajectory_hits_times_and_matches_simulate():
    w0 = _w0()
    traj = sp.simulate_trajectory(w0, [0.0, 0.2, 0.5], 0.02, 1.0, dt=0.01)
    assert traj.shape == (3, 32, 32)
    torch.testing.assert_close(traj[0], w0)
    torch.testing.assert_close(traj[2], sp.simulate(w0, 0.5, 0.02, 1.0, dt=0.01), rtol=0, atol=1e-12)


def test_unstable_dt_is_refused_with_the_limit():
    w0 = _w0(scale=2.0)
    limit = sp.max_stable_dt(w0)
    u, v = sp.velocity(w0, dealias=True)
    assert limit == pytest.approx(2 * math.sqrt(2) / (sp.cutoff_wavenumber(32) * float((u.abs() + v.abs()).max())))
    with pytest.raises(UnstableTimeStepError, match=f"largest stable dt is {limit:.4g}"):
        sp.simulate(w0, 1.0, 0.02, dt=1.01 * limit)
    sp.simulate(w0, 10 * limit, 0.02, dt=0.99 * limit)  # just below: accepted
    _, info = sp.simulate(w0, 1.0, 0.02, return_info=True)  # default CFL step
    assert info["dt"] <= sp.CFL_NUMBER * (2 * math.pi / 32) / float((u.abs() + v.abs()).max()) * (1 + 1e-12)


def test_bad_inputs_are_refused():
    w0 = _w0()
    bad = w0.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        sp.simulate(bad, 0.1, 0.02)
    for nu in (0.0, -0.01, float("nan")):
        with pytest.raises(InvalidParameterError, match="nu"):
            sp.simulate(w0, 0.1, nu)
    with pytest.raises(InvalidParameterError, match="drag"):
        sp.simulate(w0, 0.1, 0.02, drag=-1.0)
    with pytest.raises(ShapeMismatchError, match="square"):
        sp.simulate(torch.zeros(32, 16, dtype=torch.float64), 0.1)
    with pytest.raises(ShapeMismatchError, match="even"):
        sp.simulate(torch.zeros(15, 15, dtype=torch.float64), 0.1)
    with pytest.raises(InvalidParameterError, match="even"):
        sp.VorticitySimulator(15)
    with pytest.raises(ShapeMismatchError):
        sp.VorticitySimulator(16, T=0.1)(w0)
    with pytest.raises(InvalidParameterError, match="observe_stride"):
        sp.VorticitySimulator(16, observe_stride=3)
    with pytest.raises(InvalidParameterError, match="T"):
        sp.simulate(w0, -1.0)


def test_gradients_in_nu_and_amplitude():
    w0 = _w0(n=12, scale=1.0)
    nu = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    amp = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    f = lambda w, n_, a: sp.simulate(w, 0.06, n_, a, dt=0.02)  # noqa: E731
    assert torch.autograd.gradcheck(f, (w0.clone().requires_grad_(True), nu, amp), eps=1e-6, atol=1e-6, rtol=1e-4)


def _saved_bytes(steps, segments, n=64):
    """Bytes the autograd graph holds between forward and backward (distinct storages seen by saved_tensors_hooks)."""
    x = _w0(n).requires_grad_(True)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        w = sp.simulate(x, steps * 0.01, 0.02, 1.0, dt=0.01, checkpoint_segments=segments)
    (grad,) = torch.autograd.grad((w**2).sum(), x)
    return sum(storages.values()), grad


def test_checkpointing_gives_the_same_gradient_and_bounded_memory():
    b_25, g_25 = _saved_bytes(25, None)
    b_50, g_50 = _saved_bytes(50, None)
    c_25, h_25 = _saved_bytes(25, 4)
    c_50, h_50 = _saved_bytes(50, 4)
    for g, h in ((g_25, h_25), (g_50, h_50)):
        assert float((g - h).abs().max() / g.abs().max()) <= 1e-12
    assert b_50 > 1.9 * b_25  # grows with the number of steps
    assert c_50 == c_25  # bounded: S segment states, independent of the number of steps
    assert c_50 < b_25 / 50


def test_verify_ladder_passes():
    from physinv.core.verification import verify_simulator

    result = verify_simulator("fluid-vorticity")
    assert result["passed"], result
