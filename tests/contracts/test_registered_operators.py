"""The operator contract on EVERY registered operator (:mod:`physinv.core.operator`).

Parametrized over ``registered_operators()``, so an operator added to the
registry is checked here without touching this file.  In float64 on CPU:

* the three views of one matrix agree: ``apply(theta, v) = bind(theta)(v) =
  assemble(theta) @ v`` (batched ``v``);
* ``diagonal(theta) = diag(assemble(theta))``;
* ``apply_tangent(theta, dtheta, u)`` equals forward-mode AD of ``apply`` in
  ``theta`` (dual numbers, :func:`physinv.core.autodiff.jvp`) and is the adjoint of reverse-mode AD
  (``<(dA[dtheta]) u, w> = <dtheta, d<A u, w>/dtheta>``: what the implicit
  backward uses);
* the adjoint: ``<A u, v> = <u, A^T v>`` with ``A^T = A`` for a symmetric operator,
  and the assembled matrix is symmetric.

Tolerances: every quantity is a short sum of O(1) terms in float64, so
agreement is to a few hundred ulps of the largest term (1e-12 relative).
"""

import numpy as np
import pytest
import torch

import physinv.core.registry as registry_module
from physinv.core.autodiff import jvp
from physinv.core.operator import Operator, OperatorExample, register_operator, registered_operators
from physinv.core.verify import dot_product_test
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid

DT = torch.float64
RTOL = 1e-12
NAMES = sorted(registered_operators())


def _example(name: str) -> OperatorExample:
    return registered_operators()[name].make_example(DT, torch.device("cpu"))


def _randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _direction(ex: OperatorExample) -> torch.Tensor:
    return ex.dtheta if ex.dtheta is not None else ex.theta * _randn(ex.theta.shape, 7)


def _csr_apply(op, theta, v):
    a = op.assemble(theta)
    flat = v.reshape(-1, a.shape[0]).numpy()
    return torch.from_numpy(np.ascontiguousarray((a @ flat.T).T)).reshape(v.shape)


def _forward_ad(op, theta, dtheta, u):
    """``d/ds apply(theta + s dtheta, u)`` at 0 by forward-mode AD (zero where apply ignores theta)."""
    tangent = jvp(lambda th: op.apply(th, u), theta, dtheta)
    return tangent if tangent is not None else torch.zeros_like(u)


def _reverse_ad(op, theta, u, w):
    """``d<apply(theta, u), w>/dtheta`` by reverse-mode AD (zero where apply ignores theta)."""
    th = theta.clone().requires_grad_(True)
    out = op.apply(th, u)
    if not out.requires_grad:
        return torch.zeros_like(theta)
    (g,) = torch.autograd.grad(out, th, grad_outputs=w)
    return g


def _max_rel(got, want):
    return float((got - want).abs().max()) / float(want.abs().max())


def test_registry_has_every_operator_family():
    assert {"fd-poisson-2d", "fd-poisson-3d", "p1-poisson-cell", "p1-poisson-node", "fluid-pressure-2d",
            "fluid-pressure-3d", "eit-cem-cell", "eit-cem-node", "eit-neumann"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_operator_contract(name):
    ex = _example(name)
    op, theta = ex.operator, ex.theta
    assert isinstance(op, Operator)  # every method of the protocol is there
    shape = tuple(op.state_shape)
    v = _randn((3,) + shape, 0)  # a batch of 3 states

    # apply = bind = assemble matvec
    want = _csr_apply(op, theta, v)
    applied = op.apply(theta, v)
    assert applied.shape == v.shape and applied.dtype == DT
    assert _max_rel(applied, want) <= RTOL
    assert _max_rel(op.bind(theta)(v), want) <= RTOL

    # diagonal = diag(assemble)
    diag = torch.from_numpy(op.assemble(theta).diagonal()).reshape(shape)
    assert op.diagonal(theta).shape == shape
    assert _max_rel(op.diagonal(theta), diag) <= RTOL

    # apply_tangent = forward-mode AD of apply in theta, and the adjoint of reverse mode
    u, w, dtheta = v[0], _randn(shape, 1), _direction(ex)
    tangent = op.apply_tangent(theta, dtheta, u)
    forward = _forward_ad(op, theta, dtheta, u)
    assert tangent.shape == shape
    scale = max(float(forward.abs().max()), float(op.apply(theta, u).abs().max()))
    assert float((tangent - forward).abs().max()) <= RTOL * scale
    reverse = _reverse_ad(op, theta, u, w)
    lhs, rhs = float((tangent * w).sum()), float((dtheta * reverse).sum())
    assert abs(lhs - rhs) <= RTOL * float((tangent.abs() * w.abs()).sum() + (dtheta.abs() * reverse.abs()).sum())

    # the adjoint: A^T = A
    assert op.symmetric is True
    a = op.assemble(theta)
    assert abs(a - a.T).max() <= RTOL * abs(a).max()
    assert dot_product_test(lambda x: op.apply(theta, x), lambda y: op.apply(theta, y), v[1], v[2]) <= RTOL


# ---------------------------------------------------------------------------
# the contract can fail: an operator whose views disagree is flagged


class _OffDiagonal(FDPoissonOperator):
    """``diagonal`` off by 1 % on one node."""

    def diagonal(self, kappa):
        d = super().diagonal(kappa).clone()
        d.view(-1)[7] *= 1.01
        return d


class _WrongTangent(FDPoissonOperator):
    """``apply_tangent`` twice too large."""

    def apply_tangent(self, kappa, dkappa, u):
        return 2.0 * super().apply_tangent(kappa, dkappa, u)


@pytest.fixture
def broken_registry(monkeypatch):
    monkeypatch.setattr(registry_module.OPERATORS, "_entries", {})
    monkeypatch.setattr(registry_module, "_loaded", True)
    grid = UniformGrid((4, 3))
    kappa = 1.0 + _randn(grid.node_shape, 3).abs()
    for cls in (_OffDiagonal, _WrongTangent):
        register_operator(cls.__name__, cls.__doc__)(lambda dtype, device, cls=cls: OperatorExample(cls(grid), kappa))


@pytest.mark.parametrize("name", ["_OffDiagonal", "_WrongTangent"])
def test_contract_flags_a_broken_operator(broken_registry, name):
    with pytest.raises(AssertionError):
        test_operator_contract(name)
