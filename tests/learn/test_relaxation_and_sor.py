"""SOR, the shifted-Laplacian instances, omega*, and the Tsallis-INF policies."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError
from physinv.learn.relaxation import (
    OMEGA_GRID,
    BanditOmega,
    ContextualBanditOmega,
    FixedOmega,
    InstanceOptimalOmega,
    IterationTable,
    ShiftedLaplacianFamily,
    TsallisINF,
    build_table,
    replay,
)
from physinv.linalg.sor import jacobi_spectral_radius, optimal_omega, sor, sor_iterations, sweep_levels


@pytest.fixture(scope="module")
def family():
    return ShiftedLaplacianFamily(10)


def reference_sor(A, b, omega, tol=1e-8, maxiter=10_000):
    """Textbook row-by-row SOR (Gauss-Seidel for omega = 1) in natural order, from x = 0."""
    A = sp.csr_matrix(A)
    n = A.shape[0]
    x = np.zeros(n)
    bnorm = np.linalg.norm(b)
    for k in range(1, maxiter + 1):
        for i in range(n):
            cols = A.indices[A.indptr[i]:A.indptr[i + 1]]
            vals = A.data[A.indptr[i]:A.indptr[i + 1]]
            sigma, diag = 0.0, 0.0
            for j, v in zip(cols, vals):
                if j == i:
                    diag = v
                else:
                    sigma += v * x[j]
            x[i] = (1 - omega) * x[i] + omega * (b[i] - sigma) / diag
        if np.linalg.norm(b - A @ x) <= tol * bnorm:
            return x, k
    return x, maxiter


def test_laplacian_is_the_unscaled_stencil_and_stays_positive_definite(family):
    A0 = family.A0.toarray()
    assert family.n == 100 and A0.shape == (100, 100)
    assert np.all(np.diag(A0) == 4.0)
    assert np.allclose(A0, A0.T)
    assert set(np.unique(A0[~np.eye(100, dtype=bool)])) == {-1.0, 0.0}
    lam = np.linalg.eigvalsh(A0)[0]
    assert lam == pytest.approx(8 * math.sin(math.pi / 22) ** 2, rel=1e-12)  # 0.16203
    c, _ = family.sample(2000, np.random.default_rng(3), "high")
    assert c.min() >= -0.15 and c.max() <= 0.45
    assert np.linalg.eigvalsh(family.matrix(c.min()).toarray())[0] == pytest.approx(lam + c.min(), rel=1e-10)
    assert family.lambda_min(c).min() > 0.012 - 1e-12


def test_sample_distributions(family):
    rng = np.random.default_rng(0)
    c_hi, b = family.sample(20_000, rng, "high")
    c_lo, _ = family.sample(20_000, rng, "low")
    # -0.15 + 0.6 Beta(a, b): mean -0.15 + 0.6 a/(a+b), std 0.6 sqrt(ab/((a+b)^2 (a+b+1)))
    assert c_hi.mean() == pytest.approx(-0.15 + 0.6 * 0.25, abs=0.005)
    assert c_lo.mean() == pytest.approx(-0.15 + 0.6 * 0.25, abs=0.005)
    assert c_hi.std() == pytest.approx(0.6 * math.sqrt(0.75 / 12), abs=0.005)
    assert c_lo.std() == pytest.approx(0.6 * math.sqrt(12 / (64 * 9)), abs=0.005)
    norms = np.linalg.norm(b, axis=1)
    assert norms.max() <= 12.0 and b.shape == (20_000, 100)
    assert abs(b.mean()) < 0.01 and b.std() == pytest.approx(1.0, abs=0.01)


def test_sor_converges_to_the_solution(family):
    c, b = family.sample(1, np.random.default_rng(1), "high")
    A = family.matrix(c[0])
    res = sor(A, b[0], 1.6)
    assert res.converged
    assert res.residual_history[0] == 1.0 and len(res.residual_history) == res.iterations + 1
    assert res.residual_history[-1] <= 1e-8 < res.residual_history[-2]
    x = spla.spsolve(A.tocsc(), b[0])
    # error <= cond(A) * residual, cond <= 8 / 0.012
    assert np.linalg.norm(res.x - x) / np.linalg.norm(x) <= 1e-8 * 8 / 0.012


@pytest.mark.parametrize("omega", [1.0, 1.55])
def test_sor_matches_the_row_by_row_reference(family, omega):
    c, b = family.sample(2, np.random.default_rng(2), "high")
    for k in range(2):
        A = family.matrix(c[k])
        x_ref, k_ref = reference_sor(A, b[k], omega)
        res = sor(A, b[k], omega)
        assert res.iterations == k_ref
        assert np.allclose(res.x, x_ref, rtol=1e-10, atol=1e-12 * np.abs(x_ref).max())


def test_sor_levels_respect_a_nonsymmetric_pattern():
    rng = np.random.default_rng(5)
    n = 30
    M = sp.random(n, n, density=0.12, random_state=6, data_rvs=lambda k: -rng.random(k)).tocsr()
    M = M - sp.diags(M.diagonal())
    A = (M + sp.diags(np.abs(M).sum(axis=1).A1 + 1.0)).tocsr()  # diagonally dominant, nonsymmetric pattern
    levels = sweep_levels(A)
    assert sorted(np.concatenate(levels).tolist()) == list(range(n))
    b = rng.standard_normal(n)
    for omega in (1.0, 1.3):
        x_ref, k_ref = reference_sor(A, b, omega)
        res = sor(A, b, omega)
        assert res.iterations == k_ref
        assert np.allclose(res.x, x_ref, rtol=1e-10, atol=1e-13)


def test_batched_counts_equal_single_solves(family):
    c, b = family.sample(3, np.random.default_rng(4), "low")
    omegas = np.array([1.0, 1.5, 1.9])
    batched = sor_iterations(family.A0, b, omegas, shift=c)
    single = [sor(family.matrix(c[k]), b[k], omegas[k]).iterations for k in range(3)]
    assert batched.tolist() == single


def test_jacobi_radius_and_optimal_omega(family):
    for c in (-0.15, 0.0, 0.3):
        beta = jacobi_spectral_radius(family.matrix(c))
        assert family.jacobi_radius(c) == pytest.approx(beta, rel=1e-10)
        assert beta == pytest.approx(4 * math.cos(math.pi / 11) / (4 + c), rel=1e-10)
    assert optimal_omega(0.0) == 1.0
    # Young: omega* = 2 / (1 + sqrt(1 - beta^2)), the same number
    assert optimal_omega(0.9) == pytest.approx(2 / (1 + math.sqrt(1 - 0.81)), rel=1e-14)


def test_optimal_omega_is_within_one_grid_step_of_the_empirical_best(family):
    c = np.array([-0.15, -0.1, 0.0, 0.15, 0.45])
    b = family.sample(5, np.random.default_rng(7), "high")[1]
    table = build_table(family, c, b, OMEGA_GRID)
    step = OMEGA_GRID[1] - OMEGA_GRID[0]
    best = OMEGA_GRID[np.argmin(table.grid, axis=1)]
    assert np.all(np.abs(table.omega_star - best) <= step + 1e-12), (table.omega_star, best)
    # and omega* needs no more sweeps than the best grid omega, to within 10%
    assert np.all(table.optimal <= 1.1 * table.grid.min(axis=1))


def test_bad_inputs_are_clear_errors(family):
    A = family.matrix(0.0)
    b = np.ones(100)
    for omega in (0.0, 2.0, -0.5, 2.5, float("nan")):
        with pytest.raises(InvalidParameterError, match=r"\(0, 2\)"):
            sor(A, b, omega)
    bad = b.copy()
    bad[3] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        sor(A, bad, 1.5)
    with pytest.raises(ShapeMismatchError, match="shape"):
        sor(A, np.ones(99), 1.5)
    with pytest.raises(ShapeMismatchError, match="square"):
        sor(sp.csr_matrix(np.ones((3, 4))), np.ones(3), 1.5)
    with pytest.raises(ShapeMismatchError):
        sor_iterations(A, np.ones((2, 100)), [1.1, 1.2, 1.3])
    D = sp.diags([1.0, 0.0, 2.0]).tocsr()
    with pytest.raises(InvalidParameterError, match="positive diagonal"):
        sor(D, np.ones(3), 1.0)
    with pytest.raises(InvalidParameterError, match="positive diagonal"):
        sor(sp.diags([1.0, -2.0]).tocsr(), np.ones(2), 1.0)
    with pytest.raises(InvalidParameterError, match="positive diagonal"):
        sor_iterations(A, np.ones((1, 100)), 1.2, shift=[-5.0])
    with pytest.raises(InvalidParameterError, match="indefinite"):
        family.lambda_min(-0.2)
    with pytest.raises(InvalidParameterError, match="variance"):
        family.sample(3, np.random.default_rng(0), "medium")
    with pytest.raises(InvalidParameterError):
        optimal_omega(1.0)
    assert issubclass(InvalidParameterError, PhysinvError)


def test_zero_rhs_needs_no_iterations(family):
    res = sor(family.matrix(0.1), np.zeros(100), 1.5)
    assert res.iterations == 0 and res.converged and np.all(res.x == 0)


def test_tsallis_inf_probabilities_sum_to_one():
    rng = np.random.default_rng(0)
    bandit = TsallisINF(20, rng)
    for t in range(200):
        bandit.cum_loss = rng.exponential(50.0, 20)
        bandit.t = t
        p = bandit.probabilities()
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(p > 0)
        assert np.argmax(p) == np.argmin(bandit.cum_loss)


def test_tsallis_inf_concentrates_on_the_best_arm():
    """Bernoulli arms with means 0.5, 0.45, 0.6, 0.3, 0.55: after 3000 rounds p(best) > 0.8."""
    means = np.array([0.5, 0.45, 0.6, 0.3, 0.55])
    finals, shares = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        bandit = TsallisINF(5, rng)
        pulls = np.zeros(5)
        for _ in range(3000):
            arm = bandit.select_arm()
            pulls[arm] += 1
            bandit.update(float(rng.random() < means[arm]))
        finals.append(bandit.probabilities()[3])
        shares.append(pulls[3] / 3000)
    assert min(finals) > 0.8  # measured 0.94-0.99
    assert min(shares) > 0.6  # measured 0.75-0.91


def test_replay_and_policies(family):
    c, b = family.sample(40, np.random.default_rng(8), "high")
    table = build_table(family, c, b, OMEGA_GRID)
    assert replay(FixedOmega(1.8), table, c).tolist() == table.grid[:, 16].tolist()
    assert replay(InstanceOptimalOmega(), table, c).tolist() == table.optimal.tolist()
    seen = replay(BanditOmega(np.random.default_rng(0)), table, c)
    assert np.all(np.any(seen[:, None] == table.grid, axis=1))  # always one of the grid's counts
    ctx = ContextualBanditOmega(np.random.default_rng(0), bins=5)
    assert [ctx.bin_of(x) for x in (-0.2, -0.15, 0.0, 0.44, 0.45, 1.0)] == [0, 0, 1, 4, 4, 4]
    seen = replay(ctx, table, c)
    assert np.all(np.any(seen[:, None] == table.grid, axis=1))
    with pytest.raises(InvalidParameterError):
        table.lookup(0, 1.234)


def test_bandit_regret_falls_as_the_sequence_grows(family):
    """Mean regret over instances [T/2, T) against the best fixed grid omega in hindsight.

    Instances are drawn i.i.d. (with replacement) from a pool of 400 precomputed
    instances, so a long sequence costs no new solves.  With losses = iterations /
    10,000 Tsallis-INF learns slowly, so the comparison is T = 200 (40 seeds;
    measured mean 168, standard error 5) against T = 10,000 (4 seeds; measured 112 +- 1.4).
    """
    c, b = family.sample(400, np.random.default_rng(11), "high")
    pool = build_table(family, c, b, OMEGA_GRID)

    def regret(T, seed):
        rng = np.random.default_rng([seed, T])
        idx = rng.integers(0, len(c), T)
        sub = IterationTable(pool.omegas, pool.grid[idx], pool.beta[idx], pool.omega_star[idx], pool.optimal[idx])
        spent = replay(BanditOmega(rng), sub, c[idx])
        best = sub.grid[:, np.argmin(sub.grid.mean(axis=0))]
        return float((spent - best)[T // 2:].mean())

    short = np.mean([regret(200, s) for s in range(40)])
    long = np.mean([regret(10_000, s) for s in range(4)])
    assert short > 100  # the bandit starts near uniform: regret of order 150 iterations
    assert long < 0.85 * short, (short, long)
