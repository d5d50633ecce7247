"""Energy spectrum, two-point correlation and the prior_spectrum_rel_err metric on fields with known statistics."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.diffusion import (StationaryGaussianPrior, energy_spectrum, spectrum_relative_error,
                                     two_point_correlation)

N = 32


def _gaussian_fields(count, seed, slope=3.0):
    """Isotropic Gaussian fields with power (1 + |k|^2)^(-slope / 2) per mode (zero mean)."""
    k = torch.fft.fftfreq(N, d=1.0 / N, dtype=torch.float64)
    amplitude = (1 + k[:, None] ** 2 + k[None, :] ** 2) ** (-slope / 4)
    z = torch.randn(count, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return torch.fft.ifft2(amplitude * torch.fft.fft2(z)).real * N


def test_spectrum_obeys_parseval_and_puts_a_mode_in_its_shell():
    fields = _gaussian_fields(5, 0)
    spectrum = energy_spectrum(fields)
    assert float(spectrum.sum()) == pytest.approx(float((fields**2).mean()), rel=1e-12)
    x = torch.arange(N, dtype=torch.float64)
    mode = 2.0 * torch.cos(2 * math.pi * (3 * x[:, None] + 4 * x[None, :]) / N)  # |k| = 5, mean square 2
    spectrum = energy_spectrum(mode)
    assert float(spectrum[5]) == pytest.approx(2.0, rel=1e-12)
    assert float(spectrum.sum() - spectrum[5]) < 1e-20


def test_two_point_correlation_of_a_cosine_is_exact():
    x = torch.arange(N, dtype=torch.float64)
    field = torch.cos(2 * math.pi * 3 * x / N)[:, None].expand(N, N)  # varies along axis 0 only
    r = torch.arange(9, dtype=torch.float64)
    expected = 0.25 * (torch.cos(2 * math.pi * 3 * r / N) + 1)  # mean of the two axes: 0.5 cos(k r) and 0.5
    torch.testing.assert_close(two_point_correlation(field[None], 8), expected, rtol=0, atol=1e-12)
    # C(0) is the variance about the overall mean
    fields = _gaussian_fields(4, 1) + 7.0
    assert float(two_point_correlation(fields, 0)[0]) == pytest.approx(float(fields.var(unbiased=False)), rel=1e-12)


def test_exact_gaussian_samples_match_the_reference_spectrum_and_white_noise_does_not():
    reference = _gaussian_fields(200, 2)  # held-out "simulated" fields
    prior = StationaryGaussianPrior(_gaussian_fields(200, 3))  # fitted on other fields, exact draws
    samples = prior.sample(200, seed=4)
    good = spectrum_relative_error(samples, reference)
    # the norm is dominated by shell 1 (4 modes, 2 independent complex amplitudes per field): its power
    # from 200 fields has a relative error sqrt(1/400) = 5%, three such estimates (reference, fit, draws)
    # ~9%; 0.15 leaves room, white noise of the same variance is off by far more
    assert good < 0.15
    white = reference.std() * torch.randn(200, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert spectrum_relative_error(white, reference) > 0.5
    assert spectrum_relative_error(reference, reference) == 0.0
    # the definition: ||E_s - E_r|| / ||E_r|| over shells 1..k_max
    e_s, e_r = energy_spectrum(samples)[1:9], energy_spectrum(reference)[1:9]
    assert spectrum_relative_error(samples, reference, k_max=8) == pytest.approx(
        float((e_s - e_r).norm() / e_r.norm()), rel=1e-12)


def test_statistics_refuse_bad_input():
    with pytest.raises(ShapeMismatchError):
        energy_spectrum(torch.zeros(5))
    with pytest.raises(ShapeMismatchError):
        spectrum_relative_error(torch.zeros(2, 8, 8), torch.zeros(2, 16, 16))
    with pytest.raises(InvalidParameterError):
        spectrum_relative_error(torch.randn(2, 8, 8), torch.randn(2, 8, 8), k_max=5)
    with pytest.raises(InvalidParameterError):
        two_point_correlation(torch.randn(2, 8, 8), 5)
    with pytest.raises(InvalidParameterError):
        energy_spectrum(torch.full((2, 8, 8), float("nan")))
