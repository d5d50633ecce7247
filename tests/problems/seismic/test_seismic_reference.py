"""The independent torch propagator (reference.py) against Deepwave: same discrete map, so round-off agreement."""

import math
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("deepwave")

from physinv.core.errors import InvalidParameterError, ShapeMismatchError  # noqa: E402
from physinv.problems.seismic.reference import PML_REFLECTION, pml_profile, reference_forward  # noqa: E402
from physinv.problems.seismic.simulator import AcousticSimulator, _layered  # noqa: E402
from physinv.problems.seismic.survey import Survey, surface_line  # noqa: E402

# Both codes evaluate the same float64 arithmetic in a different order; over ~100 steps the
# round-off (1e-16 per operation) grows to ~1e-15 relative (measured 2e-15..3e-15), so 1e-12
# leaves three decades of margin while any discretization mismatch (PML profile, stencil,
# source scaling) shows at >= 1e-6.
TOL = 1e-12
VRANGE = (1500.0, 3000.0)


@pytest.fixture(scope="module")
def tiny():
    shape = (14, 18)
    survey = Survey(shape, 10.0, 1e-3, 120, 20.0, surface_line(2, shape[1]), surface_line(5, shape[1]))
    return survey, _layered(shape, torch.float64, "cpu")


@pytest.mark.parametrize("accuracy", [2, 4, 6, 8])
def test_reference_matches_deepwave_compiled(tiny, accuracy, one_thread):
    survey, v = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = AcousticSimulator(survey, VRANGE, accuracy=accuracy, pml_width=6)(v)
    r = reference_forward(v, survey, accuracy, 6, VRANGE[1])
    assert r.shape == survey.data_shape
    assert float(d.abs().max()) > 0
    assert float((d - r).norm() / d.norm()) <= TOL


def test_reference_gradient_matches_eager_backend(tiny, one_thread):
    """Autograd through the reference loop and Deepwave's eager backend: both the exact adjoint."""
    survey, v_true = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = AcousticSimulator(survey, VRANGE, accuracy=4, pml_width=6, backend="eager")
        observed = sim(v_true).detach()
        grads = []
        for fn in (sim, lambda x: reference_forward(x, survey, 4, 6, VRANGE[1])):
            v = torch.full(survey.shape, 2300.0, dtype=torch.float64, requires_grad=True)
            (0.5 * (fn(v) - observed).square().sum()).backward()
            grads.append(v.grad)
    assert float(grads[0].norm()) > 0
    assert float((grads[0] - grads[1]).norm() / grads[1].norm()) <= 1e-11


def test_source_scaling_is_minus_v2_dt2_w():
    """The first nonzero sample at the source cell is u^1 = -v^2 dt^2 w_0 (Deepwave's injection)."""
    shape, dt, vel = (9, 9), 1e-3, 2000.0
    wavelet = torch.zeros(5, dtype=torch.float64)
    wavelet[0] = 1.0
    survey = Survey(shape, 10.0, dt, 5, 20.0, np.array([[4, 4]]), np.array([[4, 4], [4, 5]]), wavelet=wavelet)
    v = torch.full(shape, vel, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = AcousticSimulator(survey, (1000.0, vel), accuracy=2, pml_width=2)(v)[0]
    r = reference_forward(v, survey, 2, 2, vel)[0]
    expected = -(vel**2) * dt**2
    for data in (d, r):
        assert float(data[0, 0]) == 0.0  # recorded before the first update
        assert float(data[0, 1]) == pytest.approx(expected, rel=1e-14)
        assert float(data[1, 1]) == 0.0  # the neighbour is reached one step later
        # second step: u^2 = 2 u^1 + v^2 dt^2 (Laplacian u^1) = u^1 (2 - 4 C^2), C = v dt / dx
        courant2 = (vel * dt / 10.0) ** 2
        assert float(data[0, 2]) == pytest.approx(expected * (2 - 4 * courant2), rel=1e-13)
        assert float(data[1, 2]) == pytest.approx(expected * courant2, rel=1e-13)


def test_pml_profile_values():
    """a = b = 0 in the interior; at the outermost layer cell sigma = 3 v ln(1/R) / (2 W dx), alpha = 0."""
    n, width, acc, dx, dt, vmax, f = 10, 5, 4, 10.0, 1e-3, 3000.0, 15.0
    a, b, db = pml_profile(n, width, acc, dx, dt, vmax, f)
    pad = acc // 2
    assert a.shape == (n + 2 * (width + pad),)
    interior = slice(pad + width, pad + width + n)
    assert float(a[interior].abs().max()) == 0.0 and float(b[interior].abs().max()) == 0.0
    sigma0 = 3 * vmax * math.log(1 / PML_REFLECTION) / (2 * width * dx)
    for edge in (pad, n + 2 * width + pad - 1):  # outermost layer cells: fraction 1
        assert float(a[edge]) == pytest.approx(math.exp(-sigma0 * dt), rel=1e-14)
        assert float(b[edge]) == pytest.approx(math.expm1(-sigma0 * dt), rel=1e-14)
    # two cells into the layer: fraction 2/5, sigma = sigma0 (2/5)^2, alpha = pi f (3/5)
    mid = pad + width - 2
    frac = 2 / width
    sigma, alpha = sigma0 * frac**2, math.pi * f * (1 - frac)
    assert float(a[mid]) == pytest.approx(math.exp(-(sigma + alpha) * dt), rel=1e-14)
    assert float(b[mid]) == pytest.approx(sigma / (sigma + alpha) * math.expm1(-(sigma + alpha) * dt), rel=1e-13)
    assert torch.allclose(db, -db.flip(0), atol=1e-18)  # symmetric b: antisymmetric derivative
    assert torch.all(b <= 0) and torch.all((a >= 0) & (a < 1))


def test_reference_refuses_bad_input(tiny):
    survey, v = tiny
    with pytest.raises(ShapeMismatchError):
        reference_forward(v[:-1], survey)
    with pytest.raises(InvalidParameterError):
        reference_forward(v, survey, accuracy=3)
