"""physinv.core.extras, seeding and device."""

import random

import numpy as np
import pytest
import torch

from physinv.core.device import DEVICE_CHOICES, resolve_device
from physinv.core.errors import InvalidParameterError, MissingExtraError
from physinv.core.extras import require
from physinv.core.seeding import seed_everything


def test_require_returns_module():
    mod = require("json", "core")
    import json

    assert mod is json


def test_require_missing_names_extra_and_purpose():
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]") as info:
        require("physinv_no_such_module_xyz", "fem", "DOLFINx references")
    msg = str(info.value)
    assert "physinv_no_such_module_xyz" in msg and "DOLFINx references" in msg
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value.__cause__, ImportError)


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_reproduces_all_generators():
    gen1 = seed_everything(123)
    a = _draw() + (float(gen1.random()),)
    _draw()  # advance
    gen2 = seed_everything(123)
    b = _draw() + (float(gen2.random()),)
    assert a == b
    assert float(np.random.default_rng(123).random()) == a[3]
    seed_everything(124)
    assert _draw() != a[:3]


def test_seed_everything_large_seed():
    seed_everything(2**40 + 5)
    x = _draw()
    seed_everything(2**40 + 5)
    assert _draw() == x


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_resolve_device_cuda_without_cuda_raises(name):
    with pytest.raises(InvalidParameterError, match="CUDA is not available"):
        resolve_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_cuda_with_cuda():
    assert resolve_device("cuda").type == "cuda"


@pytest.mark.parametrize("name", ["gpu", "CPU", "", "tpu"])
def test_resolve_device_unknown(name):
    with pytest.raises(InvalidParameterError, match="allowed: auto, cpu, cuda"):
        resolve_device(name)
