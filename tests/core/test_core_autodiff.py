"""physinv.core.autodiff against analytic derivatives."""

import pytest
import torch

from physinv.core.autodiff import hvp, jvp, value_and_grad, vjp

DT = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


W = _rand(5, 4, seed=10)


def model(m):
    """F(m) = W tanh(m) + m_0 * (W m)."""
    return W @ torch.tanh(m) + m[0] * (W @ m)


def jacobian(m):
    j = W * (1 - torch.tanh(m) ** 2) + m[0] * W
    j[:, 0] += W @ m
    return j


def fun(m):
    """f(m) = sum(m^4)/4 + sum(m_i m_{i+1}) + exp(m_0)."""
    return 0.25 * (m**4).sum() + (m[:-1] * m[1:]).sum() + torch.exp(m[0])


def grad(m):
    g = m**3
    g[:-1] += m[1:]
    g[1:] += m[:-1]
    g[0] += torch.exp(m[0])
    return g


def hessian(m):
    n = m.numel()
    h = torch.diag(3 * m**2) + torch.diag(torch.ones(n - 1, dtype=DT), 1) + torch.diag(torch.ones(n - 1, dtype=DT), -1)
    h[0, 0] += torch.exp(m[0])
    return h


def test_jvp_matches_analytic():
    m, dm = _rand(4), _rand(4, seed=1)
    torch.testing.assert_close(jvp(model, m, dm), jacobian(m) @ dm, rtol=1e-13, atol=1e-13)


def test_vjp_matches_analytic():
    m, w = _rand(4), _rand(5, seed=2)
    torch.testing.assert_close(vjp(model, m, w), jacobian(m).T @ w, rtol=1e-13, atol=1e-13)


def test_vjp_does_not_touch_input():
    m = _rand(4)
    vjp(model, m, _rand(5, seed=2))
    assert m.grad is None and not m.requires_grad


def test_value_and_grad_matches_analytic():
    m = _rand(6)
    value, g = value_and_grad(fun, m)
    assert float(value) == pytest.approx(float(fun(m)), rel=1e-15)
    assert not value.requires_grad and not g.requires_grad
    torch.testing.assert_close(g, grad(m), rtol=1e-13, atol=1e-13)


def test_hvp_matches_analytic():
    m, v = _rand(6), _rand(6, seed=3)
    torch.testing.assert_close(hvp(fun, m, v), hessian(m) @ v, rtol=1e-13, atol=1e-13)


def test_jvp_of_tensor_field_batch():
    m, dm = _rand(3, 4), _rand(3, 4, seed=1)
    out = jvp(lambda x: torch.sin(x) * x, m, dm)
    torch.testing.assert_close(out, (torch.cos(m) * m + torch.sin(m)) * dm, rtol=1e-13, atol=1e-13)
