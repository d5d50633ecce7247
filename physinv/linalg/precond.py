"""Preconditioners with one signature: ``M(r) -> z ~ A^{-1} r`` on torch tensors."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class JacobiPreconditioner:
    """``z = r / diag(A)``."""

    def __init__(self, diagonal: torch.Tensor):
        self.inv_diag = 1.0 / diagonal

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return r * self.inv_diag


class AMGPreconditioner:
    """One V-cycle of pyamg smoothed aggregation (Vanek et al.), the classic baseline.

    Built from the assembled CSR matrix; applies on the CPU in float64 and
    returns to the tensor's device and dtype.  ``state_shape`` is the shape of
    one state (the trailing dimensions of ``r``).
    """

    def __init__(self, matrix: sp.csr_matrix, state_shape: tuple[int, ...]):
        import pyamg

        self.hierarchy = pyamg.smoothed_aggregation_solver(matrix.tocsr())
        self.cycle = self.hierarchy.aspreconditioner(cycle="V")
        self.state_shape = tuple(state_shape)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        flat = r.detach().to(torch.float64).cpu().reshape(-1, int(np.prod(self.state_shape)))
        z = np.stack([self.cycle @ row for row in flat.numpy()])
        return torch.from_numpy(z).to(dtype=r.dtype, device=r.device).reshape(r.shape)
