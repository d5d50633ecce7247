"""physinv.problems.seismic.metrics: OpenFWI MAE / MSE on the normalized velocity and SSIM on [0, 1]."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.problems.seismic.metrics import denormalize_velocity, mae, mse, normalize_velocity, ssim, velocity_metrics

pytest.importorskip("torchmetrics")


def _ssim_numpy(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Independent SSIM of two 2D maps: 5-pixel reflection padding, separable normalized Gaussian window,
    local statistics by 'valid' correlation, SSIM map averaged over all pixels (Wang et al. 2004 constants)."""
    r = size // 2
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    g /= g.sum()

    def blur(x):
        x = np.pad(x, r, mode="reflect")
        x = np.apply_along_axis(lambda row: np.convolve(row, g, mode="valid"), 1, x)
        return np.apply_along_axis(lambda col: np.convolve(col, g, mode="valid"), 0, x)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ma, mb = blur(a), blur(b)
    va = np.maximum(blur(a * a) - ma**2, 0.0)
    vb = np.maximum(blur(b * b) - mb**2, 0.0)
    cov = blur(a * b) - ma * mb
    s = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def _smooth_map(rng, n=35):
    """A velocity-like map (m/s): a few depth layers plus a smooth bump, within [1500, 4500]."""
    z = np.linspace(0, 1, n)[:, None]
    x = np.linspace(0, 1, n)[None, :]
    layers = 1500 + 3000 * np.floor(z * rng.integers(2, 6) + 0.3 * np.sin(2 * np.pi * x * rng.random())) / 6
    bump = 400 * np.exp(-((z - rng.random()) ** 2 + (x - rng.random()) ** 2) / 0.02)
    return np.clip(layers + bump, 1500, 4500) * np.ones((n, n))


def test_normalize_velocity_maps_the_openfwi_range_to_minus_one_one():
    v = torch.tensor([1500.0, 3000.0, 4500.0])
    assert torch.allclose(normalize_velocity(v), torch.tensor([-1.0, 0.0, 1.0]))
    assert np.allclose(normalize_velocity(np.array([2250.0]), 1500, 4500), [-0.5])
    assert torch.allclose(denormalize_velocity(normalize_velocity(v, 1000, 5000), 1000, 5000), v)
    with pytest.raises(InvalidParameterError):
        normalize_velocity(v, 4500, 1500)


def test_identical_maps_have_ssim_one_and_zero_errors():
    rng = np.random.default_rng(0)
    v = np.stack([_smooth_map(rng) for _ in range(3)])
    m = velocity_metrics(v, v)
    assert abs(m["ssim"] - 1.0) < 1e-6 and np.all(np.abs(m["ssim_per_sample"] - 1.0) < 1e-6)
    assert m["mae"] == 0.0 and m["mse"] == 0.0
    assert m["mae_per_sample"].shape == (3,)


def test_mae_and_mse_on_a_hand_computed_example():
    """8 x 8 maps, true 3000 m/s (u = 0).  Sample 0: one 4 x 4 quadrant at 4500 m/s (u = 1): 16 of 64 pixels
    off by 1 -> MAE = MSE = 0.25.  Sample 1: 2250 m/s everywhere (u = -0.5) -> MAE 0.5, MSE 0.25."""
    true = torch.full((2, 8, 8), 3000.0)
    pred = true.clone()
    pred[0, :4, :4] = 4500.0
    pred[1] = 2250.0
    m = velocity_metrics(pred, true)
    assert np.allclose(m["mae_per_sample"], [0.25, 0.5]) and np.allclose(m["mse_per_sample"], [0.25, 0.25])
    assert m["mae"] == pytest.approx(0.375) and m["mse"] == pytest.approx(0.25)
    # the same on normalized input, and through the per-map functions
    m2 = velocity_metrics(normalize_velocity(pred), normalize_velocity(true), normalized=True)
    assert m2["mae"] == pytest.approx(0.375) and m2["mse"] == pytest.approx(0.25)
    assert np.allclose(mae(normalize_velocity(pred), normalize_velocity(true)).numpy(), [0.25, 0.5])
    assert np.allclose(mse(normalize_velocity(pred), normalize_velocity(true)).numpy(), [0.25, 0.25])


def test_ssim_matches_an_independent_gaussian_window_implementation():
    """SSIM of a map against a constant map (and against a noisy copy) equals the numpy implementation
    above to 1e-10 (float64); SSIM against a constant is far below 1."""
    rng = np.random.default_rng(1)
    v = _smooth_map(rng)
    const = np.full_like(v, 3000.0)
    noisy = np.clip(v + rng.normal(0, 100, v.shape), 1500, 4500)
    m = velocity_metrics(np.stack([v, v]), np.stack([const, noisy]))
    u = (normalize_velocity(v) + 1) / 2
    expected = [_ssim_numpy(u, (normalize_velocity(w) + 1) / 2) for w in (const, noisy)]
    assert np.allclose(m["ssim_per_sample"], expected, atol=1e-10, rtol=0), (m["ssim_per_sample"], expected)
    print("ssim vs constant, vs noisy copy:", m["ssim_per_sample"])
    assert m["ssim_per_sample"][0] < 0.5 < m["ssim_per_sample"][1] < 1
    # the ssim function on [0, 1] maps directly, single map input
    assert float(ssim(torch.tensor(u), torch.tensor(u))[0]) == pytest.approx(1.0, abs=1e-12)


def test_clear_errors_for_shape_mismatch_nan_and_unit_mix_up():
    a = torch.full((2, 10, 10), 3000.0)
    with pytest.raises(ShapeMismatchError, match="differ in shape"):
        velocity_metrics(a, a[:, :, :9])
    with pytest.raises(ShapeMismatchError, match="expected velocity maps"):
        velocity_metrics(a[0, 0], a[0, 0])
    bad = a.clone()
    bad[1, 3, 3] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        velocity_metrics(bad, a)
    with pytest.raises(InvalidParameterError, match="NaN"):
        mae(a, bad)
    with pytest.raises(InvalidParameterError, match="normalized=True"):
        velocity_metrics(torch.zeros(2, 10, 10), torch.zeros(2, 10, 10))
    with pytest.raises(InvalidParameterError, match="m/s"):
        velocity_metrics(a, a, normalized=True)
    with pytest.raises(ShapeMismatchError, match="at least 6 x 6"):
        ssim(torch.zeros(1, 5, 5), torch.zeros(1, 5, 5))
