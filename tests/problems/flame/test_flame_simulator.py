"""The differentiable flame (implicit adjoint): Taylor slopes, gradients, forward/reverse mode, registration, errors."""

import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.core.verify import jacobian_dot_test, taylor_test
from physinv.problems.flame import model
from physinv.problems.flame.model import DEFAULT_PARAMS
from physinv.problems.flame.simulator import FlameSimulator, flame_fields
from physinv.problems.flame.solver import flame_speed, solve_flame

COARSE = 201  # nodes for derivative tests


def _objective(m):
    out = flame_fields(0.46, [0.2e-3, 0.35e-3, 0.6e-3], grid=COARSE, lam=0.026 * m[0], Ea=1.214172e5 * m[1],
                       A=1.4e8 * m[2])
    return 10.0 * out["s_L"] + (out["T"] / 1000.0).sum() + out["u"].sum()


def test_taylor_slope_two_for_lambda_Ea_A():
    m = torch.ones(3, dtype=torch.float64)
    res = taylor_test(_objective, m, torch.tensor([0.3, -0.1, 0.5], dtype=torch.float64), h0=0.05, n_steps=5)
    assert 1.9 <= res.slope <= 2.1, str(res)
    assert 0.9 <= res.slope_first_order <= 1.1


def test_gradient_of_sL_matches_central_differences():
    params = {"lam": 0.026, "Ea": 1.214172e5, "A": 1.4e8}
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    out = flame_fields(0.46, grid=COARSE, **leaves)
    grads = torch.autograd.grad(out["s_L"], list(leaves.values()))
    sol = out["solution"]
    for (name, value), g in zip(params.items(), grads):
        d = 1e-5 * value
        sp = solve_flame(0.46, grid=COARSE, initial=sol, **{name: value + d}).s_L
        sm = solve_flame(0.46, grid=COARSE, initial=sol, **{name: value - d}).s_L
        fd = (sp - sm) / (2 * d)
        assert float(g) == pytest.approx(fd, rel=1e-6), name
    # physics: faster with more conduction / faster chemistry, slower with a higher barrier
    assert grads[0] > 0 and grads[1] < 0 and grads[2] > 0


def test_forward_and_reverse_mode_agree():
    sim = FlameSimulator(0.46, grid=COARSE)
    m = torch.ones(3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    err = jacobian_dot_test(sim, m, torch.randn(3, generator=gen, dtype=torch.float64),
                            torch.randn(21, generator=gen, dtype=torch.float64))
    assert err <= 1e-10


def test_jacobian_of_observations_for_the_inverse_problem():
    """dT/dtheta at 10 points: (21, 3) by autograd, finite, T(0) insensitive."""
    sim = FlameSimulator(0.46, grid=COARSE)
    J = torch.autograd.functional.jacobian(sim, torch.ones(3, dtype=torch.float64))
    assert J.shape == (21, 3) and bool(torch.isfinite(J).all())
    assert torch.linalg.matrix_rank(J).item() == 3
    sim0 = FlameSimulator(0.46, x_obs=[0.0, 1e-3], grid=COARSE)
    J0 = torch.autograd.functional.jacobian(sim0, torch.ones(3, dtype=torch.float64))
    assert torch.all(J0[1] == 0)  # T(0) = T_in whatever the parameters


def test_registered_simulator_passes_the_generic_ladder():
    from physinv.core.simulator import registered_simulators
    from physinv.core.verification import verify_simulator

    assert "flame-1d" in registered_simulators()
    result = verify_simulator("flame-1d")
    assert result["passed"], result


def test_float32_and_output_types():
    out = flame_fields(0.46, [0.5e-3], grid=COARSE, lam=torch.tensor(0.026, dtype=torch.float32, requires_grad=True))
    assert out["s_L"].dtype == torch.float32 and out["T"].shape == (1,)
    out["s_L"].backward()


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_parameter_name():
    with pytest.raises(UnknownNameError, match="unknown flame parameter.*'lambda'.*allowed: lam"):
        flame_speed(0.46, **{"lambda": 0.026})
    with pytest.raises(UnknownNameError, match="cannot invert for"):
        FlameSimulator(0.46, names=("lam", "viscosity"))


def test_tensor_inputs_are_checked():
    with pytest.raises(InvalidParameterError, match="must be finite"):
        flame_fields(0.46, grid=COARSE, Ea=torch.tensor(float("nan"), dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="must be a scalar"):
        flame_fields(0.46, grid=COARSE, A=torch.ones(2, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="cannot be a tensor"):
        flame_fields(0.46, grid=COARSE, length=torch.tensor(1.5e-3, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match=r"observation points must lie in"):
        flame_fields(0.46, [2e-3], grid=COARSE)
    sim = FlameSimulator(0.46, grid=COARSE)
    with pytest.raises(ShapeMismatchError):
        sim(torch.ones(2, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="finite and > 0"):
        sim(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    assert set(DEFAULT_PARAMS) >= {"lam", "cp", "qF", "A", "Ea", "order"}
    assert math.isclose(model.ATM, 101325.0)
