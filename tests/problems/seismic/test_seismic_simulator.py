"""The acoustic simulator: stability bound, bad input, batching, Born operator, backends."""

import math
import warnings

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnstableTimeStepError
from physinv.problems.seismic.simulator import (AcousticSimulator, DispersionWarning, max_stable_dt,
                                                points_per_wavelength)
from physinv.problems.seismic.survey import Survey, openfwi_survey, ricker, surface_line

deepwave = pytest.importorskip("deepwave")


def tiny_survey(dt=2e-3, nt=80, peak=10.0, shape=(12, 14)):
    return Survey(shape, 20.0, dt, nt, peak, surface_line(2, shape[1]), surface_line(5, shape[1]))


def layered(shape=(12, 14), dtype=torch.float64):
    z = torch.linspace(0, 1, shape[0], dtype=dtype)[:, None]
    x = torch.linspace(0, 1, shape[1], dtype=dtype)[None, :]
    return 2000.0 + 1000.0 * torch.sigmoid(10 * (z - 0.5 - 0.1 * torch.sin(4 * x)))


@pytest.mark.parametrize("accuracy", [2, 4, 6, 8])
def test_stable_dt_is_deepwaves_critical_courant_number(accuracy):
    # our von Neumann bound from the stencil coefficients, against Deepwave's own (re-derived) number
    critical = deepwave.discretisation.critical_courant_number(accuracy, propagator="scalar")
    dt = max_stable_dt(10.0, 4500.0, accuracy)
    assert dt * 4500.0 * math.sqrt(2) / 10.0 == pytest.approx(critical, rel=1e-6)


def test_unstable_dt_is_refused_naming_the_largest_stable_dt():
    limit = max_stable_dt(20.0, 4500.0, 4)
    with pytest.raises(UnstableTimeStepError, match=f"maximum stable dt is {limit:.4g} s"):
        AcousticSimulator(tiny_survey(dt=1.01 * limit))
    AcousticSimulator(tiny_survey(dt=0.99 * limit))  # just below: accepted


def test_a_long_run_at_the_stability_limit_stays_bounded():
    survey = tiny_survey(dt=0.99 * max_stable_dt(20.0, 3000.0, 4), nt=600)
    sim = AcousticSimulator(survey, (1500.0, 3000.0), pml_width=4)
    out = sim(torch.full(survey.shape, 3000.0, dtype=torch.float64))
    assert float(out[..., -100:].abs().max()) < 1e-2 * float(out.abs().max())  # decays: energy left through the PML


def test_bad_velocities_are_refused():
    sim = AcousticSimulator(tiny_survey(), (1500.0, 4500.0))
    v = layered()
    for bad, match in [(v.clone().fill_(float("nan")), "NaN"), (-v, "> 0"), (v * 0, "> 0"),
                       (v * 2, "outside the simulator's velocity_range")]:
        with pytest.raises(InvalidParameterError, match=match):
            sim(bad)
    with pytest.raises(ShapeMismatchError, match=r"\(12, 14\)"):
        sim(v[:-1])
    with pytest.raises(ShapeMismatchError, match="dv must have the shape"):
        sim.born(v, v[:, :-1])


def test_receivers_outside_the_model_are_refused():
    with pytest.raises(InvalidParameterError, match="lie outside the model of 12 x 14 cells"):
        Survey((12, 14), 20.0, 2e-3, 50, 10.0, surface_line(2, 14), np.array([[1, 3], [1, 14]]))
    with pytest.raises(InvalidParameterError, match="integer cell"):
        Survey((12, 14), 20.0, 2e-3, 50, 10.0, surface_line(2, 14), np.array([[1, 3.5]]))


def test_dispersion_warning_below_six_points_per_wavelength():
    with pytest.warns(DispersionWarning, match=r"5\.0 grid points per wavelength"):
        AcousticSimulator(tiny_survey(peak=15.0))  # 1500 / (15 * 20) = 5
    assert points_per_wavelength(1500.0, 10.0, 20.0) == 7.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", DispersionWarning)
        AcousticSimulator(tiny_survey(peak=10.0))


def test_batched_call_equals_one_call_per_sample():
    sim = AcousticSimulator(tiny_survey(), pml_width=5)
    v = torch.stack([layered(), layered().flip(1), torch.full((12, 14), 2500.0, dtype=torch.float64)])
    batched = sim(v)
    assert batched.shape == (3, 2, 5, 80)
    for i in range(3):
        torch.testing.assert_close(batched[i], sim(v[i]), rtol=1e-12, atol=1e-12 * float(batched.abs().max()))


def test_compiled_and_eager_backends_agree_and_born_is_the_jacobian():
    survey = tiny_survey(nt=60)
    compiled = AcousticSimulator(survey, pml_width=4)
    eager = AcousticSimulator(survey, pml_width=4, backend="eager")
    v = layered()
    d = compiled(v)
    assert float((d - eager(v)).norm() / d.norm()) < 1e-12
    dv = 50.0 * torch.randn(v.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Born data vs a central difference of the forward map (second-order accurate in h)
    h = 1e-3
    fd = (compiled(v + h * dv) - compiled(v - h * dv)) / (2 * h)
    born = compiled.born(v, dv)
    assert float((born - fd).norm() / born.norm()) < 1e-7


def test_ricker_peaks_at_its_delay_with_unit_amplitude():
    w = ricker(10.0, 400, 1e-3)
    assert int(w.argmax()) == 150 and float(w.max()) == pytest.approx(1.0)
    # its spectrum peaks at the peak frequency
    spectrum = np.abs(np.fft.rfft(w.numpy(), 8000))
    f = np.fft.rfftfreq(8000, 1e-3)
    assert f[spectrum.argmax()] == pytest.approx(10.0, abs=0.2)


def test_openfwi_survey_geometry():
    s = openfwi_survey()
    assert s.shape == (70, 70) and s.data_shape == (5, 70, 1000)
    assert s.sources[:, 1].tolist() == [0, 17, 34, 52, 69] and set(s.sources[:, 0]) == {1}
    assert s.receivers[:, 1].tolist() == list(range(70))
