"""Ensemble Kalman inversion: Kalman formula, subspace property, Poisson, options, bad input."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.invert import (
    EKIResult,
    IdentityParametrization,
    InverseProblem,
    OptimizationResult,
    distance_taper,
    gaspari_cohn,
    gaussian_ensemble,
    minimize_eki,
)

N_PARAM, N_DATA = 10, 30


@pytest.fixture
def linear():
    """``d = G m_true + e``, ``m_true ~ N(m0, C0)``, ``e ~ N(0, diag(sigma^2))`` and the exact
    Gaussian posterior: ``K = C0 G^T (G C0 G^T + Gamma)^{-1}``, ``mu = m0 + K (d - G m0)``."""
    g = torch.Generator().manual_seed(0)
    f64 = torch.float64
    G = torch.randn(N_DATA, N_PARAM, generator=g, dtype=f64) / math.sqrt(N_PARAM)
    m0 = torch.randn(N_PARAM, generator=g, dtype=f64)
    L = torch.randn(N_PARAM, N_PARAM, generator=g, dtype=f64) / math.sqrt(N_PARAM) + torch.eye(N_PARAM, dtype=f64)
    C0 = L @ L.T
    sigma = 0.1 + 0.1 * torch.rand(N_DATA, generator=g, dtype=f64)
    m_true = m0 + L @ torch.randn(N_PARAM, generator=g, dtype=f64)
    d = G @ m_true + sigma * torch.randn(N_DATA, generator=g, dtype=f64)
    problem = InverseProblem(lambda m: m @ G.T, d, sigma, lambda m: 0 * m.sum(), IdentityParametrization())
    gamma = torch.diag(sigma**2)
    K = C0 @ G.T @ torch.linalg.inv(G @ C0 @ G.T + gamma)
    mu = m0 + K @ (d - G @ m0)
    c_post = C0 - K @ G @ C0
    return dict(problem=problem, G=G, m0=m0, L=L, C0=C0, d=d, gamma=gamma, mu=mu, c_post=c_post)


def exact_moment_ensemble(m0, L, size, seed=1):
    """``size`` members whose sample mean is ``m0`` and sample covariance ``L L^T``, to rounding."""
    x = torch.randn(size, m0.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(0))
    return m0 + math.sqrt(size - 1) * q @ L.T


def test_one_deterministic_step_is_the_kalman_posterior_mean_exactly(linear):
    """With the ensemble's mean and covariance equal to the prior's, the unperturbed update of
    the mean is ``m0 + C G^T (G C G^T + Gamma)^{-1} (d - G m0)``: the posterior mean, to rounding."""
    ens = exact_moment_ensemble(linear["m0"], linear["L"], 50)
    assert torch.allclose(torch.cov(ens.T), linear["C0"], atol=1e-12, rtol=0)
    result = minimize_eki(linear["problem"], ens, 1, perturb=False, batched=True)
    assert isinstance(result, EKIResult) and isinstance(result, OptimizationResult) and result.method == "eki"
    assert float((result.m - linear["mu"]).abs().max()) <= 1e-10 * float(linear["mu"].abs().max())
    # batched: J forward calls for the ensemble + one for each reported mean (start, end)
    assert result.calls.forward == 50 * 1 + 2 and result.calls.adjoint == result.calls.linearized == 0
    # the analysed ensemble covariance: the unperturbed square-root-free update shrinks it to
    # (I - K G) C (I - K G)^T, below the posterior covariance (no perturbations to restore it)
    assert result.spread.shape == (N_PARAM,) and result.ensemble.shape == (50, N_PARAM)


def test_one_perturbed_step_from_a_gaussian_ensemble_matches_the_posterior_mean(linear):
    """Stochastic EKI from ``J`` prior draws: ``u_bar' - mu`` is, to leading order in ``1/J``,
    ``(I - K G)(u_bar - m0) + K xi_bar`` with covariance ``((I-KG) C0 (I-KG)^T + K Gamma K^T)/J
    = C_post / J`` (Joseph form), so ``e = C_post^{-1/2}(u_bar' - mu)`` has ``E|e|^2 ~ n/J``
    and ``|e|^2 J ~ chi^2_n``.  The bound ``|e| <= 2 sqrt(n/J)`` (``chi^2_10 > 40``: p ~ 2e-5)
    holds for every seed tried (40 seeds: mean |e| 0.228 = 1.02 sqrt(n/J), max 0.33 = 1.46 sqrt(n/J))."""
    J = 200
    white = torch.linalg.cholesky(torch.linalg.inv(linear["c_post"]))  # W W^T = C_post^{-1}
    errors = []
    for seed in range(4):
        xi = gaussian_ensemble(torch.zeros(N_PARAM, dtype=torch.float64), 1.0, J, seed=10 + seed)
        ens = linear["m0"] + xi @ linear["L"].T  # J draws of N(m0, C0)
        result = minimize_eki(linear["problem"], ens, 1, seed=seed, batched=True)
        errors.append(float((white.T @ (result.m - linear["mu"])).norm()))
    bound = 2 * math.sqrt(N_PARAM / J)
    assert max(errors) <= bound, errors
    # the update moved the mean by ~40 posterior standard deviations: the test is not vacuous
    assert float((white.T @ (linear["mu"] - linear["m0"])).norm()) > 40


def test_iterated_eki_stays_in_the_initial_affine_span_and_reaches_its_best_fit(linear):
    problem = linear["problem"]
    J = 5  # a 4-dimensional affine subspace of the 10 parameters
    ens = linear["m0"] + torch.randn(J, N_PARAM, generator=torch.Generator().manual_seed(7),
                                     dtype=torch.float64) @ linear["L"].T
    mean0 = ens.mean(0)
    span = (ens - mean0).T  # (n, J)
    for perturb in (False, True):
        result = minimize_eki(problem, ens, 30, perturb=perturb)
        coef = torch.linalg.lstsq(span, (result.m - mean0)[:, None]).solution
        assert float((span @ coef[:, 0] - (result.m - mean0)).norm()) <= 1e-10
        assert float((span @ coef[:, 0]).norm()) > 1.0  # it did move
        ratios = result.misfit_ratio_history
        assert len(ratios) == 31 and result.calls.forward == J * 30 + 31
        if not perturb:  # linear F: r_{k+1} = lambda (Y Y^T + lambda I)^{-1} r_k, a contraction
            assert all(b <= a * (1 + 1e-12) for a, b in zip(ratios, ratios[1:]))
        else:  # perturbed observations: decrease "ish"
            assert ratios[-1] < 0.6 * ratios[0] and max(ratios[1:]) <= ratios[0]
        # the limit: the least-squares fit within the affine span
        w = 1 / problem.noise_std
        c = torch.linalg.lstsq(w[:, None] * (linear["G"] @ span),
                               (w * (linear["d"] - linear["G"] @ mean0))[:, None]).solution[:, 0]
        best = problem.misfit_ratio(w * (linear["G"] @ (mean0 + span @ c) - linear["d"]))
        assert best <= ratios[-1] <= best * (1 + 1e-3)  # EKI approaches it at rate ~1/k
    # a full-rank ensemble leaves the span of a small one: the property is not trivial
    full = minimize_eki(problem, gaussian_ensemble(linear["m0"], 1.0, 40, seed=3), 20)
    assert full.misfit_ratio < 0.5 * ratios[-1]


def test_eki_inverts_a_poisson_conductivity(small_problem):
    """Nonlinear, registered simulator; log-conductivity search variable; smooth prior ensemble
    around the constant start; the mean of the prior ensemble is the starting guess."""
    problem, m0, kappa_true = small_problem
    J, iterations = 40, 8
    ens = gaussian_ensemble(m0, 0.3, J, seed=0, smooth=3.0)
    log_true = torch.log(kappa_true)
    err = lambda m: float((m - log_true).norm() / log_true.norm())  # noqa: E731
    steps = []
    result = minimize_eki(problem, ens, iterations, callback=lambda k, j, r: steps.append(k))
    assert steps == list(range(1, iterations + 1)) and result.iterations == iterations
    start_error, final_error = err(ens.mean(0)), err(result.m)
    ratio0, ratio = result.misfit_ratio_history[0], result.misfit_ratio
    print(f"Poisson EKI: rel. error of log kappa {start_error:.3f} -> {final_error:.3f}, "
          f"misfit ratio {ratio0:.2f} -> {ratio:.2f}, forward calls {result.calls.forward}")
    assert final_error < 0.6 * start_error
    assert ratio0 > 5 and ratio < 1.2
    # J forward calls per update, one per reported ensemble mean
    assert result.calls.forward == J * iterations + iterations + 1
    assert result.calls.adjoint == 0 and result.calls.linearized == 0
    assert result.spread_history[-1] < 0.3 * result.spread_history[0]
    assert result.spread.shape == m0.shape and result.ensemble.shape == (J, *m0.shape)
    # discrepancy principle: stop at the first mean with misfit ratio <= tau
    stopped = minimize_eki(problem, ens, iterations, tau=1.1)
    k = stopped.iterations
    assert stopped.converged and 1 <= k < iterations and stopped.misfit_ratio <= 1.1
    assert all(r > 1.1 for r in stopped.misfit_ratio_history[:-1])
    assert stopped.calls.forward == J * k + k + 1
    assert stopped.misfit_ratio_history == result.misfit_ratio_history[:k + 1]  # same seed, same path
    # without evaluating the mean: histories of the mean prediction, J calls per iterate
    cheap = minimize_eki(problem, ens, 2, evaluate_mean=False)
    assert cheap.calls.forward == J * 3 and len(cheap.misfit_ratio_history) == 3
    assert torch.equal(cheap.m, minimize_eki(problem, ens, 2).m)


def test_inflation(linear):
    problem = linear["problem"]
    ens = gaussian_ensemble(linear["m0"], 0.5, 12, seed=2)
    plain = minimize_eki(problem, ens, 3)
    assert torch.equal(minimize_eki(problem, ens, 3, inflation=1.0).ensemble, plain.ensemble)
    assert torch.equal(minimize_eki(problem, ens, 3, inflation=None).ensemble, plain.ensemble)
    inflated = minimize_eki(problem, ens, 3, inflation=1.5)
    assert float(inflated.spread.mean()) > float(plain.spread.mean())
    # linear F, exact moments: the deterministic step is the Kalman mean for the prior rho C0
    rho = 2.0
    ens = exact_moment_ensemble(linear["m0"], linear["L"], 50)
    result = minimize_eki(problem, ens, 1, inflation=rho, perturb=False)
    C, G = rho * linear["C0"], linear["G"]
    innovation = linear["d"] - G @ linear["m0"]
    expected = linear["m0"] + C @ G.T @ torch.linalg.solve(G @ C @ G.T + linear["gamma"], innovation)
    assert torch.allclose(result.m, expected, atol=1e-10, rtol=0)


def test_localization(linear):
    problem, G = linear["problem"], linear["G"]
    ens = exact_moment_ensemble(linear["m0"], linear["L"], 50)
    plain = minimize_eki(problem, ens, 2)
    # zero taper: no update at all
    frozen = minimize_eki(problem, ens, 2, localization=torch.zeros(N_PARAM, N_DATA, dtype=torch.float64))
    assert torch.equal(frozen.ensemble, ens)
    # taper of ones, or the identity callable: the plain update (other arithmetic path)
    for loc in (torch.ones(N_PARAM, N_DATA, dtype=torch.float64), lambda c: c):
        assert torch.allclose(minimize_eki(problem, ens, 2, localization=loc).ensemble, plain.ensemble,
                              atol=1e-11, rtol=0)
    # a general taper: the deterministic mean update is m0 + (T o C G^T)(G C G^T + Gamma)^{-1}(d - G m0)
    taper = torch.rand(N_PARAM, N_DATA, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    result = minimize_eki(problem, ens, 1, localization=taper, perturb=False)
    C = linear["C0"]
    expected = linear["m0"] + (taper * (C @ G.T)) @ torch.linalg.solve(G @ C @ G.T + linear["gamma"],
                                                                       linear["d"] - G @ linear["m0"])
    assert torch.allclose(result.m, expected, atol=1e-10, rtol=0)
    # Gaspari-Cohn: 1 at 0, compact support 2c, continuous at c
    r = torch.tensor([0.0, 1.0 - 1e-12, 1.0 + 1e-12, 2.0, 3.0], dtype=torch.float64)
    gc = gaspari_cohn(r, 1.0)
    assert gc[0] == 1 and gc[3] == 0 and gc[4] == 0 and abs(float(gc[1] - gc[2])) < 1e-9
    assert float(gc[1]) == pytest.approx(0.2083, abs=1e-4)
    taper = distance_taper(torch.rand(N_PARAM, 2, dtype=torch.float64), torch.rand(N_DATA, 2, dtype=torch.float64), 0.3)
    assert taper.shape == (N_PARAM, N_DATA) and float(taper.min()) >= 0


def test_mask_is_respected(linear):
    """Masked-out measurements (here: absurd values) change nothing: the same run as on the
    problem that holds only the used measurements."""
    G, d, sigma = linear["G"], linear["d"], linear["problem"].noise_std
    mask = torch.arange(N_DATA) % 3 != 0
    garbage = torch.where(mask, d, torch.full_like(d, 1e6))
    masked = InverseProblem(lambda m: m @ G.T, garbage, sigma, lambda m: 0 * m.sum(), IdentityParametrization(),
                            mask=mask)
    reduced = InverseProblem(lambda m: m @ G[mask].T, d[mask], sigma[mask], lambda m: 0 * m.sum(),
                             IdentityParametrization())
    ens = gaussian_ensemble(linear["m0"], 0.5, 15, seed=4)
    a, b = minimize_eki(masked, ens, 4), minimize_eki(reduced, ens, 4)
    assert torch.allclose(a.ensemble, b.ensemble, atol=1e-12, rtol=0)
    assert a.misfit_ratio_history == pytest.approx(b.misfit_ratio_history, rel=1e-12)
    full_taper = torch.ones(N_PARAM, N_DATA, dtype=torch.float64)  # (n_param, all data): masked for us
    assert torch.allclose(minimize_eki(masked, ens, 4, localization=full_taper).ensemble, a.ensemble, atol=1e-11)


def test_tikhonov_eki_step_is_the_kalman_mean_of_the_augmented_problem(linear):
    problem, G = linear["problem"], linear["G"]
    prior, beta = torch.zeros(N_PARAM, dtype=torch.float64), 4.0
    ens = exact_moment_ensemble(linear["m0"], linear["L"], 50)
    result = minimize_eki(problem, ens, 1, regularization=(prior, beta), perturb=False)
    assert result.method == "teki" and result.beta == beta
    Ga = torch.cat([G, torch.eye(N_PARAM, dtype=torch.float64)])
    da = torch.cat([linear["d"], prior])
    gamma = torch.block_diag(linear["gamma"], torch.eye(N_PARAM, dtype=torch.float64) / beta)
    C = linear["C0"]
    expected = linear["m0"] + C @ Ga.T @ torch.linalg.solve(Ga @ C @ Ga.T + gamma, da - Ga @ linear["m0"])
    assert torch.allclose(result.m, expected, atol=1e-10, rtol=0)
    # iterated, the prior term pulls the fit towards m_prior: a larger misfit than plain EKI
    teki = minimize_eki(problem, ens, 20, regularization=(prior, beta))
    eki = minimize_eki(problem, ens, 20)
    assert teki.misfit_ratio > eki.misfit_ratio and float(teki.m.norm()) < float(eki.m.norm())


def test_gaussian_ensemble():
    mean = torch.zeros(6, 7, dtype=torch.float64)
    white = gaussian_ensemble(mean, 2.0, 4000, seed=0)
    smooth = gaussian_ensemble(mean, 2.0, 4000, seed=0, smooth=2.0)
    assert white.shape == smooth.shape == (4000, 6, 7)
    for ens in (white, smooth):  # pointwise std is std
        assert float((ens.std(0) - 2).abs().max()) < 0.15
    # neighbours correlate as exp(-1/(2 l^2)) = 0.88 along each axis for l = 2
    corr = lambda e: float(torch.corrcoef(torch.stack([e[:, 2, 3], e[:, 3, 3]]))[0, 1])  # noqa: E731
    assert abs(corr(white)) < 0.1 and corr(smooth) == pytest.approx(math.exp(-1 / 8), abs=0.05)
    assert torch.equal(gaussian_ensemble(mean, 1.0, 3, seed=5), gaussian_ensemble(mean, 1.0, 3, seed=5))


def test_bad_input_is_refused(linear):
    problem, m0 = linear["problem"], linear["m0"]
    ens = gaussian_ensemble(m0, 1.0, 8, seed=0)
    with pytest.raises(InvalidParameterError, match="at least 2 members"):
        minimize_eki(problem, ens[:1], 3)
    bad = ens.clone()
    bad[2, 3] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        minimize_eki(problem, bad, 3)
    with pytest.raises(InvalidParameterError, match="iterations"):
        minimize_eki(problem, ens, 0)
    with pytest.raises(ShapeMismatchError, match=r"\(J, \*m.shape\)"):
        minimize_eki(problem, m0, 3)
    with pytest.raises(InvalidParameterError, match="torch.Tensor"):
        minimize_eki(problem, ens.numpy(), 3)
    with pytest.raises(ShapeMismatchError, match="dtype"):
        minimize_eki(problem, ens.float(), 3)
    with pytest.raises(InvalidParameterError, match="step"):
        minimize_eki(problem, ens, 3, step=0.0)
    with pytest.raises(InvalidParameterError, match="inflation"):
        minimize_eki(problem, ens, 3, inflation=0.5)
    with pytest.raises(InvalidParameterError, match="tau"):
        minimize_eki(problem, ens, 3, tau=-1.0)
    with pytest.raises(ShapeMismatchError, match="taper"):
        minimize_eki(problem, ens, 3, localization=torch.ones(N_PARAM, N_DATA + 1, dtype=torch.float64))
    with pytest.raises(ShapeMismatchError, match="callable"):
        minimize_eki(problem, ens, 3, localization=lambda c: c[:, :5])
    with pytest.raises(ShapeMismatchError, match="prior mean"):
        minimize_eki(problem, ens, 3, regularization=(torch.zeros(N_PARAM + 1, dtype=torch.float64), 1.0))
    with pytest.raises(InvalidParameterError, match="weight"):
        minimize_eki(problem, ens, 3, regularization=(torch.zeros(N_PARAM, dtype=torch.float64), 0.0))
    # a simulator without a batch axis, asked for batches
    unbatched = InverseProblem(lambda m: (m @ linear["G"].T).reshape(-1)[:N_DATA], linear["d"],
                               problem.noise_std, lambda m: 0 * m.sum(), IdentityParametrization())
    with pytest.raises(ShapeMismatchError, match="batched=True"):
        minimize_eki(unbatched, ens, 2, batched=True)
    # members whose prediction is NaN: no silent NaN result
    nan_problem = InverseProblem(lambda m: torch.log(m[:1] - 100) * linear["d"], linear["d"], problem.noise_std,
                                 lambda m: 0 * m.sum(), IdentityParametrization())
    with pytest.raises(FloatingPointError, match="NaN"):
        minimize_eki(nan_problem, ens, 2)
    with pytest.raises(InvalidParameterError, match="size"):
        gaussian_ensemble(m0, 1.0, 1)
    with pytest.raises(InvalidParameterError, match="> 0"):
        gaussian_ensemble(m0, 1.0, 4, smooth=0.0)


def test_subspace_map_equals_the_gaussian_posterior_mean_of_a_linear_problem():
    # MAP in the span of the samples with penalty 1/2||z||^2 = the posterior mean under N(mean, C_samples)
    from physinv.invert import InverseProblem, minimize_lbfgs, sample_subspace

    gen = torch.Generator().manual_seed(3)
    samples = torch.randn(12, 6, dtype=torch.float64, generator=gen)
    g = torch.randn(9, 6, dtype=torch.float64, generator=gen)
    d = torch.randn(9, dtype=torch.float64, generator=gen)
    sigma = 0.3
    space = sample_subspace(samples)
    problem = InverseProblem(lambda m: g @ m, d, sigma, lambda z: 0.5 * (z**2).sum(), space)
    z = minimize_lbfgs(problem, torch.zeros(12, dtype=torch.float64), 1.0, maxiter=500, gtol=1e-12).m
    mean, c = samples.mean(0), torch.cov(samples.T)
    k = c @ g.T @ torch.linalg.inv(g @ c @ g.T + sigma**2 * torch.eye(9, dtype=torch.float64))
    expected = mean + k @ (d - g @ mean)
    assert float((space(z) - expected).norm() / expected.norm()) < 1e-6
    # coordinates round-trip for a point of the span
    torch.testing.assert_close(space(space.inverse(space(z))), space(z))
