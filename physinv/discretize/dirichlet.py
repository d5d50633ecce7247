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

from physinv.core.errors import InvalidParameterError, ShapeMismatchError


def dirichlet_mask(nodes, num_nodes: int) -> torch.Tensor:
    """Boolean mask ``(num_nodes,)`` of the Dirichlet nodes given by index or by mask.

    ``nodes`` is a 1D sequence (list, array, tensor) of integer node indices in
    ``0..num_nodes-1`` -- repeats are ignored, negative indices are refused
    (they would silently count from the end) -- or a boolean mask of shape
    ``(num_nodes,)``.  At least one node is needed: without a Dirichlet node the
    Poisson matrix is singular.
    """
    arr = nodes.detach().cpu().numpy() if torch.is_tensor(nodes) else np.asarray(nodes)
    if arr.ndim != 1:
        raise ShapeMismatchError(
            f"dirichlet_nodes must be a 1D sequence of node indices (or a boolean mask of shape "
            f"({num_nodes},)); got shape {arr.shape}")
    if arr.dtype == bool:
        if arr.shape != (num_nodes,):
            raise ShapeMismatchError(
                f"dirichlet_nodes as a boolean mask must have one entry per node, shape ({num_nodes},) "
                f"for the {num_nodes} nodes of this mesh; got shape {arr.shape}")
        mask = torch.from_numpy(arr.copy())
    elif arr.size == 0:
        mask = torch.zeros(num_nodes, dtype=torch.bool)
    else:
        if not np.issubdtype(arr.dtype, np.integer):
            raise InvalidParameterError(
                f"dirichlet_nodes must be integer node indices in 0..{num_nodes - 1} (or a boolean mask); "
                f"got dtype {arr.dtype}")
        negative = np.unique(arr[arr < 0])
        if negative.size:
            raise InvalidParameterError(
                f"dirichlet_nodes has negative indices {negative[:10].tolist()}; node indices must lie in "
                f"0..{num_nodes - 1}")
        too_big = np.unique(arr[arr >= num_nodes])
        if too_big.size:
            raise InvalidParameterError(
                f"dirichlet_nodes has indices {too_big[:10].tolist()}{' ...' if too_big.size > 10 else ''} "
                f"beyond the mesh's {num_nodes} nodes; node indices must lie in 0..{num_nodes - 1}")
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[torch.from_numpy(arr.astype(np.int64))] = True
    if not bool(mask.any()):
        raise ShapeMismatchError("at least one Dirichlet node is needed (pure Neumann is singular)")
    return mask


def masked_apply(raw_apply, u: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """``(P A P + (I - P)) u`` for a raw operator ``raw_apply`` and 0/1 mask ``free``."""
    return free * raw_apply(free * u) + (1 - free) * u


def masked_csr(raw: sp.spmatrix, free: np.ndarray) -> sp.csr_matrix:
    """Assembled counterpart of :func:`masked_apply` (``free`` is a flat bool array)."""
    p = sp.diags(free.astype(raw.dtype))
    q = sp.diags((~free).astype(raw.dtype))
    return (p @ raw @ p + q).tocsr()
