"""physinv's vorticity solver against jax-cfd 0.2.1 (optional extra ``fluid-reference``)."""

import sys

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, MissingExtraError
from physinv.problems.fluid import reference as ref
from physinv.problems.fluid import spectral as sp


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_missing_extra_names_it(monkeypatch):
    # a None entry in sys.modules makes ``import jax_cfd`` raise ImportError, as when it is not installed
    monkeypatch.setitem(sys.modules, "jax_cfd", None)
    with pytest.raises(MissingExtraError, match=r"fluid-reference"):
        ref.require_jaxcfd()
    with pytest.raises(MissingExtraError, match=r"physinv\[fluid-reference\]"):
        ref.jaxcfd_simulate(np.zeros((8, 8)), 0.1, dt=0.05)
    assert not ref.jaxcfd_available()


def test_missing_extra_skips_the_validation_keys(monkeypatch):
    from physinv.problems.fluid import validate

    monkeypatch.setattr(ref, "jaxcfd_available", lambda: False)
    out = validate.jaxcfd_study()
    for key in validate.JAXCFD_KEYS:
        assert out[key].startswith("skipped:") and "physinv[fluid-reference]" in out[key]
    assert out["jaxcfd"].startswith("not run")


def test_scheme_and_dealias_options_are_checked():
    w0 = sp.taylor_green(8, 0.0, 0.1)
    with pytest.raises(InvalidParameterError, match="scheme"):
        sp.simulate(w0, 0.1, scheme="rk3")
    with pytest.raises(InvalidParameterError, match="dealias"):
        sp.simulate(w0, 0.1, dealias="circular")


@pytest.mark.parametrize("n", [8, 16, 32, 64, 128])
def test_jaxcfd_filter_option_reproduces_its_kept_modes(n):
    pytest.importorskip("jax_cfd")
    np.testing.assert_array_equal(sp.dealias_mask(n, dealias="jaxcfd").numpy(), ref.jaxcfd_dealias_mask(n))


def test_jaxcfd_filter_at_128_is_asymmetric():
    mask = sp.dealias_mask(128, dealias="jaxcfd")
    kx = torch.fft.fftfreq(128, 1 / 128)[mask.any(1)]
    assert (int(kx.min()), int(kx.max())) == (-43, 41)
    assert int(torch.arange(65)[mask.any(0)].max()) == 42


@pytest.mark.parametrize("n, steps, batch", [(32, 80, ()), (64, 64, (2,))])
def test_matched_scheme_and_filter_agree_with_jaxcfd(n, steps, batch):
    pytest.importorskip("jax_cfd")
    w0 = 2.0 * sp.smooth_random_vorticity(n, torch.Generator().manual_seed(3), modes=4, batch=batch)
    kw = {"nu": 0.01, "forcing_amplitude": 1.0, "drag": 0.1}
    T = 0.25
    theirs, info = ref.jaxcfd_simulate(w0, T, dt=T / steps, return_info=True, **kw)
    assert theirs.shape == tuple(w0.shape) and theirs.dtype == np.float64 and info["n_steps"] == steps
    mine = sp.simulate(w0, T, dt=T / steps, scheme="cnrk4", dealias="jaxcfd", **kw).numpy()
    rel = np.linalg.norm(mine - theirs) / np.linalg.norm(theirs)
    assert rel <= 1e-12
    # the defaults (IF-RK4, symmetric filter) are a different discretization: visibly different here
    default = sp.simulate(w0, T, dt=T / steps, **kw).numpy()
    assert np.linalg.norm(default - theirs) / np.linalg.norm(theirs) > 1e3 * max(rel, 1e-16)


def test_cnrk4_is_fourth_order_in_the_explicit_part_without_viscosity_effects():
    # IF-RK4 and CN-RK4 agree to O(dt^4) here (tiny nu): the difference falls ~16x per halving
    n, T = 16, 0.5
    w0 = sp.smooth_random_vorticity(n, torch.Generator().manual_seed(0), modes=3)
    diffs = [float((sp.simulate(w0, T, 1e-4, 1.0, dt=T / m, scheme="cnrk4")
                    - sp.simulate(w0, T, 1e-4, 1.0, dt=T / m)).norm()) for m in (20, 40)]
    assert 10 < diffs[0] / diffs[1] < 24
