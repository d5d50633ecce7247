"""physinv.core.verify: the checks pass for correct derivatives and fail for wrong ones."""

import numpy as np
import pytest
import torch

from physinv.core.verify import (
    dot_product_test,
    fit_slope,
    gradcheck_model,
    jacobian_dot_test,
    relative_dot_error,
    taylor_test,
)

DT = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


class _WrongGrad(torch.autograd.Function):
    """Identity forward (and a correct forward-mode jvp); backward scaled by ``1 + eps``."""

    @staticmethod
    def forward(ctx, x, eps):
        ctx.eps = eps
        return x.clone()

    @staticmethod
    def jvp(ctx, x_t, _eps_t):
        return x_t

    @staticmethod
    def backward(ctx, g):
        return (1.0 + ctx.eps) * g, None


def _objective(m, corrupt=0.0):
    if corrupt:
        m = _WrongGrad.apply(m, corrupt)
    return torch.sin(m).sum() + 0.25 * (m**4).sum() + (m[:-1] * m[1:]).sum()


def test_fit_slope_exact_powers():
    x = np.array([1e-1, 5e-2, 2.5e-2, 1e-3])
    assert fit_slope(x, 7.0 * x**2) == pytest.approx(2.0, abs=1e-12)
    assert fit_slope(x, 0.3 * x**-1.5) == pytest.approx(-1.5, abs=1e-12)


def test_taylor_quadratic_is_exactly_second_order():
    a = _rand(6, 6)
    a = a @ a.T + torch.eye(6, dtype=DT)
    c = _rand(6, seed=1)
    result = taylor_test(lambda m: 0.5 * m @ a @ m + c @ m, _rand(6, seed=2), _rand(6, seed=3))
    assert result.slope == pytest.approx(2.0, abs=1e-6)
    assert result.slope_first_order == pytest.approx(1.0, abs=0.1)
    assert len(result.steps) == len(result.remainders) == 6
    assert "Taylor slope 2.000" in str(result)


def test_taylor_slope_two_for_correct_gradient():
    result = taylor_test(_objective, _rand(10), _rand(10, seed=1))
    assert 1.9 <= result.slope <= 2.1


@pytest.mark.parametrize("corrupt", [0.1, -0.3])
def test_taylor_slope_one_for_wrong_gradient(corrupt):
    # small steps, so that the O(h) error of the wrong gradient dominates the O(h^2) term
    m, dm = _rand(10), _rand(10, seed=1)
    result = taylor_test(lambda x: _objective(x, corrupt), m, dm, h0=1e-3)
    assert 0.9 <= result.slope <= 1.1
    # the same objective with the right gradient passes: the failure is the gradient's
    assert 1.9 <= taylor_test(_objective, m, dm, h0=1e-3).slope <= 2.1


def test_taylor_roundoff_only_raises():
    c = _rand(5)
    with pytest.raises(RuntimeError, match="round-off"):
        taylor_test(lambda m: c @ m, _rand(5, seed=1), _rand(5, seed=2))  # linear: remainder is 0


def test_relative_dot_error():
    assert relative_dot_error(1.0, 1.0) == 0.0
    assert relative_dot_error(2.0, -2.0) == pytest.approx(2.0)
    assert relative_dot_error(1.0, 1.0 + 1e-9) == pytest.approx(1e-9, rel=1e-6)
    assert relative_dot_error(0.0, 0.0) == 0.0


def test_dot_product_test_correct_and_wrong_adjoint():
    a = _rand(7, 4)
    x, y = _rand(4, seed=1), _rand(7, seed=2)
    assert dot_product_test(lambda v: a @ v, lambda w: a.T @ w, x, y) <= 1e-14
    b = _rand(4, 7, seed=3)  # not the adjoint
    assert dot_product_test(lambda v: a @ v, lambda w: b @ w, x, y) > 1e-2
    # an adjoint off by a scalar factor is caught at that factor's size
    err = dot_product_test(lambda v: a @ v, lambda w: (1 + 1e-6) * (a.T @ w), x, y)
    assert err == pytest.approx(1e-6, rel=1e-3)


def _model(m):
    w = torch.arange(12, dtype=m.dtype).reshape(3, 4) / 7.0 - 0.5
    return torch.tanh(w @ m) * m[:3] + m[3] ** 2


def test_jacobian_dot_test_nonlinear_model():
    err = jacobian_dot_test(_model, _rand(4), _rand(4, seed=1), _rand(3, seed=2))
    assert err <= 1e-13


def test_jacobian_dot_test_detects_wrong_backward():
    # forward mode (jvp) is right, reverse mode is 10 % off: the mismatch is ~0.1
    err = jacobian_dot_test(lambda m: _model(_WrongGrad.apply(m, 0.1)), _rand(4), _rand(4, seed=1), _rand(3, seed=2))
    assert err == pytest.approx(0.1 / 1.1, rel=1e-10)


def test_gradcheck_model_true_and_false():
    m = _rand(4)
    assert gradcheck_model(_model, m) is True
    assert gradcheck_model(lambda x: _model(_WrongGrad.apply(x, 1e-2)), m, raise_exception=False) is False
