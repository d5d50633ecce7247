"""Multiscale FWI on a tiny survey, and its low-pass filter."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.problems.seismic.fwi import lowpass, multiscale_fwi
from physinv.problems.seismic.simulator import AcousticSimulator
from physinv.problems.seismic.survey import Survey, surface_line

pytest.importorskip("deepwave")


def test_lowpass_passes_low_and_stops_high_frequencies_and_is_self_adjoint():
    dt, nt = 1e-3, 2000
    t = torch.arange(nt, dtype=torch.float64) * dt
    window = torch.sin(math.pi * t / t[-1]) ** 2  # tapered, so spectral leakage does not blur the test
    low, high = torch.sin(2 * math.pi * 2.0 * t) * window, torch.sin(2 * math.pi * 20.0 * t) * window
    # gain 1 / (1 + (f / fc)^12): 0.9998 at 2 Hz, 2.4e-4 at 20 Hz for fc = 10 Hz
    assert float((lowpass(low, 10.0, dt) - low).norm() / low.norm()) < 2e-3
    assert float(lowpass(high, 10.0, dt).norm() / high.norm()) < 2e-3
    a, b = torch.randn(3, nt, dtype=torch.float64), torch.randn(3, nt, dtype=torch.float64)
    lhs, rhs = float((lowpass(a, 5.0, dt) * b).sum()), float((a * lowpass(b, 5.0, dt)).sum())
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)  # symmetric (zero-phase) filter on the zero-padded record
    assert lowpass(a, None, dt) is a
    with pytest.raises(InvalidParameterError, match="cutoff"):
        lowpass(a, -1.0, dt)


def _setup():
    shape = (14, 16)
    survey = Survey(shape, 20.0, 2e-3, 250, 10.0, surface_line(3, shape[1]), surface_line(16, shape[1]))
    sim = AcousticSimulator(survey, pml_width=6)
    z = torch.arange(shape[0], dtype=torch.float32)[:, None].expand(shape)
    x = torch.arange(shape[1], dtype=torch.float32)[None, :].expand(shape)
    true = 2000.0 + 1200.0 * (z >= 7) + 400.0 * torch.exp(-((z - 4) ** 2 + (x - 8) ** 2) / 6)
    start = 2000.0 + 1200.0 * torch.sigmoid((z - 7) / 2.0)
    return sim, true, start


def test_fwi_reduces_the_model_error_within_the_bounds_and_counts_its_calls():
    sim, true, start = _setup()
    data = sim(true)
    result = multiscale_fwi(sim, data, start, cutoffs=(4.0, None), iterations=30, beta=0.0)
    before, after = float((start - true).abs().mean()), float((result.velocity - true).abs().mean())
    assert after < 0.6 * before, (before, after)
    assert 1500.0 <= float(result.velocity.min()) and float(result.velocity.max()) <= 4500.0
    assert result.calls.forward == sum(b.calls.forward for b in result.bands) >= result.iterations
    assert len(result.bands) == 2 and result.iterations <= 60


def test_fwi_refuses_bad_input():
    sim, true, start = _setup()
    data = sim(true)
    with pytest.raises(InvalidParameterError, match="cutoffs must increase"):
        multiscale_fwi(sim, data, start, cutoffs=(8.0, 4.0))
    with pytest.raises(InvalidParameterError, match="cutoffs must increase"):
        multiscale_fwi(sim, data, start, cutoffs=(None, 4.0))
    with pytest.raises(ShapeMismatchError, match="data must have shape"):
        multiscale_fwi(sim, data[:, :-1], start)
    with pytest.raises(InvalidParameterError, match="NaN"):
        multiscale_fwi(sim, data * float("nan"), start)
    with pytest.raises(InvalidParameterError, match="iterations"):
        multiscale_fwi(sim, data, start, iterations=0)
