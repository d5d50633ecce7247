"""The `eit` data set: reproducible, exact geometry stored, inputs as the networks see them."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.learn.data import generate, load
from physinv.problems.eit.data import network_inputs, phantom_from_row
from physinv.problems.eit.simulator import injection_pattern
from physinv.problems.eit.phantoms import pixel_grid

pytest.importorskip("meshio")
pytest.importorskip("h5py")


def test_generated_samples_are_reproducible_and_consistent(tmp_path):
    params = {"n": 12, "mesh": "eit_disk_h0.2.msh"}
    a = load(generate("eit", 6, tmp_path / "a.h5", seed=4, chunk=4, params=params, progress=False))
    b = load(generate("eit", 6, tmp_path / "b.h5", seed=4, chunk=3, params=params, progress=False))
    for field in ("voltages", "sigma", "inclusions"):
        assert torch.equal(a[field], b[field])
    assert a["voltages"].shape == (6, 16, 16) and a["sigma"].shape == (6, 12, 12)
    centres, _ = pixel_grid(12)
    for row, image in zip(a["inclusions"].numpy(), a["sigma"].numpy()):
        phantom = phantom_from_row(row)
        assert 1 <= len(phantom.inclusions) <= 4
        np.testing.assert_allclose(phantom.on_points(centres), image, rtol=1e-6)
    # adjacent differences around the ring sum to zero (they telescope)
    assert float(a["voltages"].double().sum(-1).abs().max()) < 1e-5 * float(a["voltages"].abs().max())


def test_network_inputs():
    v = torch.randn(3, 16, 16)
    x = network_inputs(v)
    assert x.shape == (3, 16, 16, 2)
    assert torch.equal(x[..., 1], v)
    assert torch.equal(x[1, :, :, 0], torch.as_tensor(injection_pattern("adjacent", 16), dtype=v.dtype))
    with pytest.raises(InvalidParameterError):
        network_inputs(v[0])
    with pytest.raises(InvalidParameterError, match="patterns"):
        network_inputs(v[:, :8])
