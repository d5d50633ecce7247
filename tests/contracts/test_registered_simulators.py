"""The verification ladder on EVERY registered simulator.

Parametrized over ``registered_simulators()``, so a simulator added to the
registry is checked here without touching this file.
"""

import pytest
import torch

import physinv.core.registry as registry_module
from physinv.core.errors import MissingExtraError
from physinv.core.simulator import (
    LinearOperatorPair,
    Simulator,
    SimulatorExample,
    get_simulator_spec,
    register_simulator,
    registered_simulators,
)
from physinv.core.verify import dot_product_test, gradcheck_model, jacobian_dot_test, taylor_test
from physinv.core.verification import DOT_TOL, SLOPE_BOUNDS, format_results, verify_all, verify_simulator

NAMES = sorted(registered_simulators())


def _example(name):
    """The simulator's tiny example, or a skip when it needs a missing optional extra (e.g. DOLFINx)."""
    try:
        return get_simulator_spec(name).make_example(torch.float64, torch.device("cpu"))
    except MissingExtraError as exc:
        pytest.skip(f"{name} needs a missing extra: {exc}")


def test_registry_is_not_empty():
    assert {"poisson-fd-2d", "poisson-fd-3d", "poisson-p1"} <= set(NAMES)
    assert SLOPE_BOUNDS == (1.9, 2.1) and DOT_TOL == 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_verification_ladder(name):
    _example(name)
    result = verify_simulator(name)
    assert SLOPE_BOUNDS[0] <= result["taylor_slope"] <= SLOPE_BOUNDS[1], result["taylor_remainders"]
    assert "jacobian" in result["dot_tests"]
    for op_name, err in result["dot_tests"].items():
        assert err <= DOT_TOL, (op_name, err)
    assert result["gradcheck"] is True
    assert result["passed"] is True


@pytest.mark.parametrize("name", NAMES)
def test_example_contract(name):
    """Independent of verify_simulator: the example is well formed and its operators are adjoint pairs."""
    example = _example(name)
    assert isinstance(example.simulator, Simulator)
    example.simulator.check_parameters(example.m0)  # the linearization point is admissible
    out = example.simulator(example.m0)
    assert out.dtype == torch.float64 and bool(torch.isfinite(out).all())
    gen = torch.Generator().manual_seed(11)
    for pair in example.linear_operators:
        x = torch.randn(pair.domain_shape, generator=gen, dtype=torch.float64)
        y = torch.randn(pair.range_shape, generator=gen, dtype=torch.float64)
        assert tuple(pair.apply(x).shape) == tuple(pair.range_shape)
        assert tuple(pair.adjoint(y).shape) == tuple(pair.domain_shape)
        assert dot_product_test(pair.apply, pair.adjoint, x, y) <= DOT_TOL


# ---------------------------------------------------------------------------
# the ladder can fail: a simulator with a wrong gradient or a wrong adjoint is flagged


class _WrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, m):
        return m.clone()

    @staticmethod
    def jvp(ctx, m_t):
        return m_t

    @staticmethod
    def backward(ctx, g):
        return 1.5 * g


class _Toy(Simulator):
    """F(m) = tanh(W m) + m_0 m (the second term through a wrong backward if ``broken``)."""

    def __init__(self, broken=False):
        super().__init__()
        self.broken = broken
        self.register_buffer("w", torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4))

    def forward(self, m):
        mm = _WrongBackward.apply(m) if self.broken else m
        return torch.tanh(self.w @ m) + mm[0] * mm[:3]


@pytest.fixture
def toy_registry(monkeypatch):
    monkeypatch.setattr(registry_module.SIMULATORS, "_entries", {})
    monkeypatch.setattr(registry_module, "_loaded", True)
    w = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    m0 = torch.tensor([0.9, -0.4, 0.3, 0.7], dtype=torch.float64)

    def example(broken, adjoint):
        return lambda dtype, device: SimulatorExample(
            _Toy(broken), m0.clone(), [LinearOperatorPair("w", lambda x: w @ x, adjoint(w), (4,), (3,))]
        )

    register_simulator("toy-ok", "correct")(example(False, lambda w: (lambda y: w.T @ y)))
    register_simulator("toy-grad", "wrong gradient")(example(True, lambda w: (lambda y: w.T @ y)))
    register_simulator("toy-adj", "wrong adjoint")(example(False, lambda w: (lambda y: 1.01 * (w.T @ y))))


def test_ladder_flags_broken_simulators(toy_registry):
    results = verify_all()
    assert list(results) == ["toy-adj", "toy-grad", "toy-ok"]
    ok, grad, adj = results["toy-ok"], results["toy-grad"], results["toy-adj"]
    assert ok["passed"] and 1.9 <= ok["taylor_slope"] <= 2.1
    assert not grad["passed"]
    assert grad["gradcheck"] is False
    assert grad["dot_tests"]["jacobian"] > 1e-3  # forward mode right, reverse mode wrong
    assert not adj["passed"]
    assert adj["dot_tests"]["w"] == pytest.approx(0.01 / 1.01, rel=1e-8)
    table = format_results(results)
    assert table.count("FAIL") == 2 and "toy-ok" in table


def test_wrong_gradient_gives_first_order_taylor_remainder():
    sim = _Toy(broken=True)
    m0 = torch.tensor([0.9, -0.4, 0.3, 0.7], dtype=torch.float64)
    dm = torch.tensor([0.3, 0.2, -0.5, 0.1], dtype=torch.float64)
    result = taylor_test(lambda m: sim(m).sum(), m0, dm, h0=1e-3)
    assert 0.9 <= result.slope <= 1.1
    assert 1.9 <= taylor_test(lambda m: _Toy()(m).sum(), m0, dm, h0=1e-3).slope <= 2.1
    assert jacobian_dot_test(_Toy(), m0, dm, torch.ones(3, dtype=torch.float64)) <= 1e-14
    assert gradcheck_model(_Toy(), m0) is True


def test_examples_needing_a_missing_extra_are_skipped_not_failed(monkeypatch):
    monkeypatch.setattr(registry_module.SIMULATORS, "_entries", {})
    monkeypatch.setattr(registry_module, "_loaded", True)

    def needs_extra(dtype, device):
        raise MissingExtraError("optional dependency 'dolfinx' is not installed; install it with: pip install 'physinv[fem]'")

    register_simulator("toy-fem", "needs the fem extra")(needs_extra)
    results = verify_all()
    assert results["toy-fem"]["passed"] is None and "physinv[fem]" in results["toy-fem"]["skipped"]
    assert "toy-fem" in format_results(results) and "skipped" in format_results(results)


def test_device_argument_changes_nothing_on_the_cpu():
    default = verify_simulator("poisson-fd-2d", seed=3)
    for device in ("cpu", torch.device("cpu")):
        assert verify_simulator("poisson-fd-2d", seed=3, device=device) == default
    assert verify_all(["poisson-fd-2d"], device="cpu") == {"poisson-fd-2d": verify_simulator("poisson-fd-2d")}


def test_device_argument_reaches_the_example(toy_registry):
    seen = []
    make_ok = get_simulator_spec("toy-ok").make_example

    def make(dtype, device):
        seen.append(device)
        return make_ok(dtype, device)

    register_simulator("toy-device", "records the device it is built on")(make)
    assert verify_all(["toy-device"], device="cpu")["toy-device"]["passed"] is True
    assert seen == [torch.device("cpu")]


@pytest.mark.gpu
def test_ladder_on_cuda_sees_the_cpu_directions():
    """The directions are drawn on the CPU and moved: the CUDA ladder measures what the CPU ladder measures."""
    cpu, gpu = verify_simulator("poisson-fd-2d"), verify_simulator("poisson-fd-2d", device="cuda")
    assert gpu["passed"] is True
    assert gpu["taylor_slope"] == pytest.approx(cpu["taylor_slope"], rel=1e-6)
