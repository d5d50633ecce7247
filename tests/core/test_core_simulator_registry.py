"""The simulator registry (physinv.core.simulator on physinv.core.registry)."""

import pytest
import torch

import physinv.core.registry as registry_module
from physinv.core.errors import UnknownNameError
from physinv.core.simulator import (
    Simulator,
    SimulatorExample,
    get_simulator_spec,
    register_simulator,
    registered_simulators,
)


@pytest.fixture
def registry(monkeypatch):
    """An empty registry for the test; the real one is restored afterwards."""
    monkeypatch.setattr(registry_module.SIMULATORS, "_entries", {})
    monkeypatch.setattr(registry_module, "_loaded", True)
    return registry_module.SIMULATORS._entries


class _Scale(Simulator):
    parameter_shape = (3,)

    def forward(self, m):
        return 2.0 * m


def _make(dtype, device):
    return SimulatorExample(_Scale(), torch.ones(3, dtype=dtype, device=device))


def test_register_and_lookup(registry):
    deco = register_simulator("scale", "doubles m")
    assert deco(_make) is _make  # the decorator returns the factory unchanged
    spec = get_simulator_spec("scale")
    assert (spec.name, spec.description, spec.make_example) == ("scale", "doubles m", _make)
    example = spec.make_example(torch.float64, torch.device("cpu"))
    assert torch.equal(example.simulator(example.m0), torch.full((3,), 2.0, dtype=torch.float64))
    assert example.linear_operators == []
    assert list(registered_simulators()) == ["scale"]


def test_registered_simulators_is_a_copy(registry):
    register_simulator("scale", "doubles m")(_make)
    listing = registered_simulators()
    listing.pop("scale")
    assert "scale" in registered_simulators()


def test_duplicate_registration_raises(registry):
    register_simulator("scale", "doubles m")(_make)
    with pytest.raises(ValueError, match="'scale' registered twice"):
        register_simulator("scale", "again")(_make)
    assert get_simulator_spec("scale").description == "doubles m"


def test_unknown_name_lists_registered_names(registry):
    for name in ("zeta", "alpha"):
        register_simulator(name, name)(_make)
    with pytest.raises(UnknownNameError) as info:
        get_simulator_spec("beta")
    assert str(info.value) == "unknown simulator 'beta'; registered: alpha, zeta"
    assert isinstance(info.value, KeyError)


def test_unknown_name_in_empty_registry(registry):
    with pytest.raises(UnknownNameError, match=r"\(none registered\)"):
        get_simulator_spec("poisson-fd-2d")


def test_the_registry_finds_the_poisson_family():
    names = set(registered_simulators())
    assert {"poisson-fd-2d", "poisson-fd-3d", "poisson-p1"} <= names
    for name in names:
        assert get_simulator_spec(name).description  # every entry says what it is
