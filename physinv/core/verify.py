"""Generic verification of differentiable models (hIPPYlib's modelVerify idea).

* :func:`taylor_test` -- for a smooth J and its autograd gradient g,
  ``r(h) = |J(m + h dm) - J(m) - h <g, dm>| = O(h^2)``: the fitted log-log slope
  of r against h is 2.  A wrong gradient gives slope 1.
* :func:`dot_product_test` -- for a linear A and its adjoint A^T,
  ``<A x, y> = <x, A^T y>`` to round-off.
* :func:`jacobian_dot_test` -- the same for the linearization of a model:
  J dm by forward-mode AD, J^T w by reverse mode.
* :func:`gradcheck_model` -- ``torch.autograd.gradcheck`` on tiny sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from physinv.core.autodiff import jvp, vjp


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


@dataclass
class TaylorResult:
    slope: float
    steps: np.ndarray
    remainders: np.ndarray
    slope_first_order: float

    def __str__(self) -> str:
        rows = "\n".join(f"  h={h:9.3e}  |r1|={r:9.3e}" for h, r in zip(self.steps, self.remainders))
        return f"Taylor slope {self.slope:.3f} (first-order remainder)\n{rows}"


def fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log(y) against log(x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def taylor_test(
    objective: Callable[[torch.Tensor], torch.Tensor],
    m: torch.Tensor,
    dm: torch.Tensor,
    h0: float = 1e-1,
    n_steps: int = 6,
    factor: float = 0.5,
) -> TaylorResult:
    """Taylor test of the autograd gradient of a scalar ``objective`` at ``m``.

    Fits the slope of ``|J(m + h dm) - J(m) - h <grad J(m), dm>|`` over
    ``h = h0 factor^k``; steps whose remainder is within 1e3 machine epsilons
    of ``|J(m)|`` (round-off) are left out of the fit.
    """
    m = m.detach().clone().requires_grad_(True)
    j0 = objective(m)
    (g,) = torch.autograd.grad(j0, m)
    slope_dir = float(_inner(g, dm))
    j0 = float(j0.detach())
    steps = h0 * factor ** np.arange(n_steps)
    r0, r1 = [], []
    with torch.no_grad():
        for h in steps:
            jh = float(objective(m.detach() + h * dm))
            r0.append(abs(jh - j0))
            r1.append(abs(jh - j0 - h * slope_dir))
    r0, r1 = np.array(r0), np.array(r1)
    eps = torch.finfo(m.dtype).eps
    keep = r1 > 1e3 * eps * max(abs(j0), 1e-300)
    if keep.sum() < 2:
        raise RuntimeError(
            "Taylor test: remainders are at round-off for every step; increase h0 "
            f"(remainders {r1})"
        )
    return TaylorResult(
        slope=fit_slope(steps[keep], r1[keep]),
        steps=steps,
        remainders=r1,
        slope_first_order=fit_slope(steps, np.maximum(r0, 1e-300)),
    )


def relative_dot_error(lhs: float, rhs: float) -> float:
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)


def dot_product_test(
    apply: Callable[[torch.Tensor], torch.Tensor],
    adjoint: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    """Relative mismatch of ``<A x, y>`` and ``<x, A^T y>``."""
    with torch.no_grad():
        lhs = float(_inner(apply(x), y))
        rhs = float(_inner(x, adjoint(y)))
    return relative_dot_error(lhs, rhs)


def jacobian_dot_test(
    model: Callable[[torch.Tensor], torch.Tensor],
    m: torch.Tensor,
    dm: torch.Tensor,
    w: torch.Tensor,
) -> float:
    """Relative mismatch of ``<J dm, w>`` (forward mode) and ``<dm, J^T w>`` (reverse)."""
    lhs = float(_inner(jvp(model, m, dm), w))
    rhs = float(_inner(dm, vjp(model, m, w)))
    return relative_dot_error(lhs, rhs)


def gradcheck_model(model: Callable[[torch.Tensor], torch.Tensor], m: torch.Tensor, **kwargs) -> bool:
    """``torch.autograd.gradcheck`` of ``model`` at ``m`` (float64, tiny sizes)."""
    m = m.detach().to(torch.float64).clone().requires_grad_(True)
    kwargs.setdefault("eps", 1e-6)
    kwargs.setdefault("atol", 1e-6)
    kwargs.setdefault("rtol", 1e-4)
    return torch.autograd.gradcheck(model, (m,), **kwargs)
