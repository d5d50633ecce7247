"""Jacobian products of tensor maps: ``J dm`` (forward mode) and ``J^T w`` (reverse mode)."""

from __future__ import annotations

import warnings
from typing import Callable

import torch
import torch.autograd.forward_ad as fwAD

TensorMap = Callable[[torch.Tensor], torch.Tensor]


def jvp(model: TensorMap, m: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
    """Forward-mode directional derivative ``J(m) dm``."""
    with fwAD.dual_level():
        with warnings.catch_warnings():  # torch's first make_dual scripts its jvp decompositions
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            dual = fwAD.make_dual(m.detach(), dm)
        out = model(dual)
        return fwAD.unpack_dual(out).tangent


def vjp(model: TensorMap, m: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Reverse-mode product ``J(m)^T w``."""
    m = m.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(m), m, grad_outputs=w)
    return g


def value_and_grad(fun: Callable[[torch.Tensor], torch.Tensor], m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar ``fun(m)`` and its gradient (detached)."""
    m = m.detach().clone().requires_grad_(True)
    value = fun(m)
    (g,) = torch.autograd.grad(value, m)
    return value.detach(), g


def hvp(fun: Callable[[torch.Tensor], torch.Tensor], m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Hessian-vector product of a scalar ``fun`` by double backward."""
    m = m.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fun(m), m, create_graph=True)
    (hv,) = torch.autograd.grad(g, m, grad_outputs=v)
    return hv
