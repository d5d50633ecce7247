"""Regularizers for cell-wise (piecewise-constant) parameters on a triangle mesh.

On the cell adjacency graph (:func:`cell_graph`; ``e = (i, j)``
runs over the interior edges, ``|e|`` is the edge length (m), ``h_e`` the
distance between the centroids of cells ``i`` and ``j`` (m), ``|T_i|`` the cell
area (m^2)):

* ``"tikhonov"`` (:class:`CellSmoothness`):
  ``R(m) = sum_e (|e| / h_e) (m_i - m_j)^2 + gamma sum_i |T_i| (m_i - m_ref,i)^2``.
  The weight ``|e| / h_e`` is the two-point-flux (finite-volume) one, so the
  first sum approximates ``int |grad m|^2 dx`` (dimensionless in 2D) on any
  mesh; the second, with ``gamma`` in 1/m^2, is an optional small pull to
  ``m_ref``.
* ``"tv"`` (:class:`CellTotalVariation`):
  ``R(m) = sum_e |e| sqrt((m_i - m_j)^2 + beta^2) (+ the same gamma term)``,
  approximating ``int |grad m| dx`` (m) for sharp jumps; ``beta`` is a jump
  of ``log sigma``.  Gauss-Newton uses the lagged-diffusivity (IRLS) Hessian
  ``D^T diag(|e| / sqrt((Dm)_e^2 + beta^2)) D``, re-weighted at every
  iterate: a quadratic majorizer of ``R`` that touches it at the iterate, so
  the gradient is exact and the model Hessian is positive semidefinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, UnknownNameError
from physinv.discretize.mesh import TriMesh

__all__ = ["EIT_REGULARIZERS", "CellGraph", "CellSmoothness", "CellTotalVariation", "cell_graph", "cell_regularizer"]

EIT_REGULARIZERS = ("tikhonov", "tv")


@dataclass(frozen=True)
class CellGraph:
    """Interior edges of a triangle mesh as a cell adjacency graph.

    ``pairs`` ``(n_edges, 2)`` are the two cells sharing each interior edge,
    ``lengths`` the edge lengths (m), ``distances`` the centroid distances (m),
    ``areas`` the cell areas ``(n_cells,)`` (m^2).
    """

    pairs: torch.Tensor
    lengths: torch.Tensor
    distances: torch.Tensor
    areas: torch.Tensor

    @property
    def num_cells(self) -> int:
        return self.areas.shape[0]

    def differences(self, m: torch.Tensor) -> torch.Tensor:
        """``(D m)_e = m_i - m_j`` per interior edge."""
        return m[self.pairs[:, 0]] - m[self.pairs[:, 1]]

    def transpose_differences(self, v: torch.Tensor) -> torch.Tensor:
        """``D^T v`` (the adjoint of :meth:`differences`)."""
        out = v.new_zeros(self.num_cells)
        out.index_add_(0, self.pairs[:, 0], v)
        out.index_add_(0, self.pairs[:, 1], -v)
        return out

    def laplacian(self, weights: torch.Tensor) -> torch.Tensor:
        """Dense weighted graph Laplacian ``D^T diag(weights) D`` ``(n_cells, n_cells)``."""
        n, i, j = self.num_cells, self.pairs[:, 0], self.pairs[:, 1]
        lap = weights.new_zeros(n * n)
        lap.index_add_(0, i * n + i, weights)
        lap.index_add_(0, j * n + j, weights)
        lap.index_add_(0, i * n + j, -weights)
        lap.index_add_(0, j * n + i, -weights)
        return lap.reshape(n, n)


def cell_graph(mesh: TriMesh, dtype=torch.float64) -> CellGraph:
    """The cell adjacency graph of ``mesh`` (interior edges only)."""
    cells = mesh.cells
    local = cells[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 3, 2)
    edges = np.sort(local, axis=2).reshape(-1, 2)
    owner = np.repeat(np.arange(len(cells)), 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, owner = edges[order], owner[order]
    same = np.all(edges[1:] == edges[:-1], axis=1)
    first = np.flatnonzero(same)
    pairs = np.stack([owner[first], owner[first + 1]], axis=1)
    p = mesh.points
    lengths = np.linalg.norm(p[edges[first, 1]] - p[edges[first, 0]], axis=1)
    centroids = p[cells].mean(axis=1)
    distances = np.linalg.norm(centroids[pairs[:, 0]] - centroids[pairs[:, 1]], axis=1)
    return CellGraph(torch.from_numpy(pairs), torch.as_tensor(lengths, dtype=dtype),
                     torch.as_tensor(distances, dtype=dtype), torch.as_tensor(mesh.areas(), dtype=dtype))


class _CellRegularizer:
    """``value(m) = R(m)``, ``gradient(m) = dR/dm``, ``hessian(m)``: ``H`` of the local quadratic model
    ``R(m + p) ~ R(m) + g^T p + 1/2 p^T H p`` (exact for Tikhonov, lagged diffusivity for TV)."""

    name = ""

    def __init__(self, graph: CellGraph, gamma: float = 0.0, m_ref: torch.Tensor | float = 0.0):
        if not (math.isfinite(gamma) and gamma >= 0):
            raise InvalidParameterError(f"the identity weight gamma must be finite and >= 0; got {gamma}")
        self.graph = graph
        self.gamma = float(gamma)
        self.m_ref = torch.as_tensor(m_ref, dtype=graph.areas.dtype)

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        """``R(m)``, differentiable: the regularizer protocol of :class:`physinv.invert.InverseProblem`."""
        return self.value(m)

    def _identity_value(self, m):
        return self.gamma * (self.graph.areas * (m - self.m_ref) ** 2).sum() if self.gamma else m.new_zeros(())

    def _identity_gradient(self, m):
        return 2 * self.gamma * self.graph.areas * (m - self.m_ref)

    def _identity_hessian(self):
        return torch.diag(2 * self.gamma * self.graph.areas)


class CellSmoothness(_CellRegularizer):
    """Tikhonov smoothness ``R(m) = sum_e (|e|/h_e) (m_i - m_j)^2 + gamma sum_i |T_i| (m_i - m_ref,i)^2``
    (module doc; dimensionless for ``gamma = 0``, ``gamma`` in 1/m^2)."""

    name = "tikhonov"

    def __init__(self, graph: CellGraph, gamma: float = 0.0, m_ref: torch.Tensor | float = 0.0):
        super().__init__(graph, gamma, m_ref)
        self.weights = graph.lengths / graph.distances
        self._lap = 2 * graph.laplacian(self.weights) + self._identity_hessian()

    def value(self, m: torch.Tensor) -> torch.Tensor:
        return (self.weights * self.graph.differences(m) ** 2).sum() + self._identity_value(m)

    def gradient(self, m: torch.Tensor) -> torch.Tensor:
        return 2 * self.graph.transpose_differences(self.weights * self.graph.differences(m)) + \
            self._identity_gradient(m)

    def hessian(self, m: torch.Tensor | None = None) -> torch.Tensor:
        return self._lap


class CellTotalVariation(_CellRegularizer):
    """Smoothed total variation ``R(m) = sum_e |e| sqrt((m_i - m_j)^2 + beta^2)`` (+ the gamma term);
    ``beta`` > 0 is a jump of ``m`` (for ``m = log sigma``: a log-conductivity jump)."""

    name = "tv"

    def __init__(self, graph: CellGraph, beta: float = 0.05, gamma: float = 0.0,
                 m_ref: torch.Tensor | float = 0.0):
        if not (math.isfinite(beta) and beta > 0):
            raise InvalidParameterError(f"the TV smoothing beta must be finite and > 0; got {beta}")
        super().__init__(graph, gamma, m_ref)
        self.beta = float(beta)

    def value(self, m: torch.Tensor) -> torch.Tensor:
        d = self.graph.differences(m)
        return (self.graph.lengths * torch.sqrt(d**2 + self.beta**2)).sum() + self._identity_value(m)

    def irls_weights(self, m: torch.Tensor) -> torch.Tensor:
        """Lagged-diffusivity weights ``|e| / sqrt((m_i - m_j)^2 + beta^2)`` per interior edge."""
        return self.graph.lengths / torch.sqrt(self.graph.differences(m) ** 2 + self.beta**2)

    def gradient(self, m: torch.Tensor) -> torch.Tensor:
        d = self.graph.differences(m)
        return self.graph.transpose_differences(self.irls_weights(m) * d) + self._identity_gradient(m)

    def hessian(self, m: torch.Tensor) -> torch.Tensor:
        """``D^T diag(irls_weights(m)) D`` (+ gamma term): the curvature of the quadratic majorizer
        ``R(m) + 1/2 sum_e w_e ((D p)_e^2 + 2 (D m)_e (D p)_e)`` of ``R(m + p)``."""
        return self.graph.laplacian(self.irls_weights(m)) + self._identity_hessian()


def cell_regularizer(name: str, mesh_or_graph, tv_beta: float = 0.05, gamma: float = 0.0,
                     m_ref: torch.Tensor | float = 0.0) -> CellSmoothness | CellTotalVariation:
    """Build ``"tikhonov"`` (:class:`CellSmoothness`) or ``"tv"`` (:class:`CellTotalVariation`)."""
    if name not in EIT_REGULARIZERS:
        raise UnknownNameError(f"unknown EIT regularizer {name!r}; allowed: {', '.join(EIT_REGULARIZERS)}")
    graph = mesh_or_graph if isinstance(mesh_or_graph, CellGraph) else cell_graph(mesh_or_graph)
    if name == "tikhonov":
        return CellSmoothness(graph, gamma, m_ref)
    return CellTotalVariation(graph, tv_beta, gamma, m_ref)
