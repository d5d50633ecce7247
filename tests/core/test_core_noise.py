"""The seeded Gaussian noise model: scales, mask, reproducibility, derived seeds, bad input."""

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.noise import add_noise, noise_seed


def test_rms_noise_is_relative_to_each_samples_rms_and_seeded():
    data = torch.randn(200, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    data[:100] *= 10.0
    noisy, std = add_noise(data, 0.05, seed=7, scale="rms", sample_ndim=2)
    again, _ = add_noise(data, 0.05, seed=7, scale="rms", sample_ndim=2)
    assert torch.equal(noisy, again)
    rms = data.pow(2).mean(dim=(1, 2)).sqrt()
    assert std.shape == (200, 1, 1) and torch.allclose(std.flatten(), 0.05 * rms)
    # the sample std of 256 standard normal draws has a spread of 1 / sqrt(2 * 256) = 4.4%: the worst of
    # 200 samples stays within 4.5 of those (20%), their mean within 3 / sqrt(200) of them (1%)
    ratio = (noisy - data).std(dim=(1, 2)) / std.flatten()
    assert float((ratio - 1).abs().max()) < 0.2
    assert abs(float(ratio.mean()) - 1) < 0.01
    assert torch.equal(add_noise(data, 0.0, seed=1, scale="rms", sample_ndim=2).data, data)
    with pytest.raises(InvalidParameterError):
        add_noise(data, -0.01, seed=1, scale="rms")


def test_multiplicative_noise_is_seeded():
    neumann = torch.linspace(1.0, 2.0, 24).reshape(1, 3, 8)
    a, std = add_noise(neumann, 0.05, 7, scale="multiplicative")
    b, _ = add_noise(neumann, 0.05, 7, scale="multiplicative")
    assert torch.equal(a, b) and a.dtype == neumann.dtype
    assert torch.equal(add_noise(neumann, 0.0, 7, scale="multiplicative").data, neumann)
    ratio = a / neumann - 1
    assert 0.005 < float(ratio.std()) < 0.2
    assert torch.allclose(std, 0.05 * neumann)


def test_mask_sets_the_scale_and_where_noise_goes():
    data = torch.ones(5, 4, 3, dtype=torch.float64)
    data[:, 0, 0] = 100.0  # not measured: neither in the scale nor noisy
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[0, 0] = False
    noisy, std = add_noise(data, 0.1, seed=3, scale="rms", sample_ndim=2, mask=mask)
    assert torch.allclose(std, torch.full((5, 1, 1), 0.1, dtype=torch.float64))
    assert torch.equal(noisy[:, 0, 0], data[:, 0, 0]) and bool((noisy[:, mask] != 1.0).all())
    _, top = add_noise(data, 0.1, seed=3, scale="max", sample_ndim=1)
    assert top.shape == (5, 4, 1) and float(top[0, 0, 0]) == pytest.approx(10.0)


def test_draws_use_their_own_generator():
    data = torch.zeros(50, dtype=torch.float64)
    torch.manual_seed(0)
    a, std = add_noise(data, 0.3, seed=11)
    torch.manual_seed(1)
    b, _ = add_noise(data, 0.3, seed=11)
    assert torch.equal(a, b) and float(std) == 0.3
    assert torch.equal(a, 0.3 * torch.randn(50, generator=torch.Generator().manual_seed(11), dtype=torch.float64))


def test_noise_seeds_are_distinct_and_deterministic():
    seeds = {noise_seed(s, level, stream) for s in range(3) for level in (0.0, 0.01, 0.05, 1.0)
             for stream in (0, 7, 13, 17)}
    assert len(seeds) == 3 * 4 * 4
    assert noise_seed(0, 0.01, 7) == noise_seed(0, 0.01, 7) == 1_000_003 + 100 + 7
    with pytest.raises(InvalidParameterError, match="stream"):
        noise_seed(0, 0.01, 100)


@pytest.mark.parametrize("call, error, match", [
    (lambda d: add_noise(d, float("nan"), 0), InvalidParameterError, "level"),
    (lambda d: add_noise(d, -1.0, 0), InvalidParameterError, "level"),
    (lambda d: add_noise(d, 0.1, 0, scale="peak"), UnknownNameError, "peak"),
    (lambda d: add_noise(d, 0.1, 0, scale="rms", sample_ndim=3), ShapeMismatchError, "sample_ndim"),
    (lambda d: add_noise(d, 0.1, 0, sample_ndim=1, mask=torch.ones(3, dtype=torch.bool)), ShapeMismatchError, "mask"),
    (lambda d: add_noise(d, 0.1, 0, sample_ndim=1, mask=torch.ones(4)), ShapeMismatchError, "boolean"),
    (lambda d: add_noise(d, 0.1, 0, scale="rms", sample_ndim=1, mask=torch.zeros(4, dtype=torch.bool)),
     InvalidParameterError, "measured entry"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.ones(2, 4, dtype=torch.float64))


def test_nan_data_is_refused():
    with pytest.raises(InvalidParameterError, match="NaN"):
        add_noise(torch.tensor([1.0, float("nan")]), 0.1, 0)
