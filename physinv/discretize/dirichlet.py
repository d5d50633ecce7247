"""Symmetric elimination of Dirichlet nodes.

With ``P`` the diagonal projector onto free (non-Dirichlet) nodes, the system
``A u = b`` with prescribed ``u = g`` on Dirichlet nodes is written as the
symmetric positive-definite system

    (P A P + (I - P)) u = P (b - A g_ext) + (I - P) g,

where ``g_ext`` is ``g`` on Dirichlet nodes and zero elsewhere.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def masked_apply(raw_apply, u: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """``(P A P + (I - P)) u`` for a raw operator ``raw_apply`` and 0/1 mask ``free``."""
    return free * raw_apply(free * u) + (1 - free) * u


def masked_csr(raw: sp.spmatrix, free: np.ndarray) -> sp.csr_matrix:
    """Assembled counterpart of :func:`masked_apply` (``free`` is a flat bool array)."""
    p = sp.diags(free.astype(raw.dtype))
    q = sp.diags((~free).astype(raw.dtype))
    return (p @ raw @ p + q).tocsr()
