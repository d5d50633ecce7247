r"""A regularizer written as a symmetric UFL bilinear form on a control space: ``R(m) = 1/2 a(m, m)``."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.fem.dolfinx import import_dolfinx

__all__ = ["FormRegularizer"]


class FormRegularizer:
    r"""``R(m) = 1/2 a(m, m)`` for a symmetric UFL bilinear form ``a`` on the control space.

    E.g. ``a(p, q) = inner(grad(p), grad(q)) * dx`` gives the H1 seminorm
    ``1/2 \int |\nabla m|^2 dx`` of a P1 control.  The matrix ``K`` of ``a`` is
    assembled once; ``R(m) = 1/2 m^T K m``, ``gradient(m) = K m`` and
    ``hessian(m) = K`` (dense) serve :mod:`physinv.invert`'s solvers.

    Parameters
    ----------
    M
        The control's DOLFINx function space (``simulator.M``).
    form
        ``form(p, q) -> ufl.Form`` with ``p``, ``q`` the trial and test functions of ``M``.
    """

    def __init__(self, M, form: Callable[[Any, Any], Any]):
        import_dolfinx("FormRegularizer")
        import ufl
        from dolfinx import fem

        if M is None:
            raise InvalidParameterError("FormRegularizer needs a control function space (not a vector of constants)")
        a = form(ufl.TrialFunction(M), ufl.TestFunction(M))
        n = M.dofmap.index_map.size_local * M.dofmap.index_map_bs
        K = fem.assemble_matrix(fem.form(a)).to_scipy().tocsr()[:n, :n]
        if abs(K - K.T).max() > 1e-12 * max(abs(K).max(), 1e-300):
            raise InvalidParameterError("FormRegularizer needs a symmetric bilinear form a(p, q) = a(q, p)")
        K = K.tocoo()
        self.matrix = torch.sparse_coo_tensor(np.vstack([K.row, K.col]), K.data, K.shape, dtype=torch.float64,
                                              check_invariants=True).coalesce()

    def _apply(self, m: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(self.matrix.to(m.device), m.reshape(-1, 1)).reshape(m.shape)

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        return 0.5 * (m * self._apply(m)).sum()

    def gradient(self, m: torch.Tensor) -> torch.Tensor:
        return self._apply(m)

    def hessian(self, m: torch.Tensor) -> torch.Tensor:
        return self.matrix.to_dense().to(device=m.device, dtype=m.dtype)
