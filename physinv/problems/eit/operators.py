"""P1 operators of the two EIT forward models: complete electrode model and continuum (Neumann).

Both solve ``div(sigma grad u) = 0`` in ``Omega`` (``sigma`` in S/m, ``u`` in V)
with P1 elements; they differ in the boundary condition.

Complete electrode model (CEM).  Electrode ``l`` covers ``e_l``, has contact
impedance ``z_l`` (Ohm m^2) and voltage ``U_l``; it injects the current
``I_l`` (A).  The weak form for ``(u, U)`` and all test pairs ``(v, V)``

    int sigma grad u . grad v dx + sum_l (1/z_l) int_{e_l} (u - U_l)(v - V_l) ds
        = sum_l I_l V_l

gives the symmetric block system

    [ K(sigma) + B     -C      ] [u]   [0]
    [    -C^T       D + c 11^T ] [U] = [I],

``B = sum_l M_{e_l} / z_l`` (edge mass on the electrodes), ``C_il = int_{e_l} phi_i ds / z_l``,
``D = diag(|e_l| / z_l)``.  ``(1, 1)`` spans the kernel of the first three
blocks; adding ``c 11^T`` on the electrode block (``c > 0``) makes the matrix
SPD and, for currents with ``sum_l I_l = 0``, enforces the ground
``sum_l U_l = 0`` (test the system with ``(1, 1)``).

Continuum (Neumann-to-Dirichlet) model.  ``sigma du/dn = g`` on ``dOmega`` with
``int g ds = 0``; the load is ``M_d g`` (boundary edge mass times nodal ``g``)
and ``c m m^T`` with ``m_i = int_dOmega phi_i ds`` grounds ``int_dOmega u ds = 0``
the same way.

Both operators follow the protocol of :func:`physinv.linalg.implicit.implicit_solve`
(``apply``, ``apply_tangent``, ``assemble``, ``diagonal``, ``state_shape``,
``symmetric``); ``sigma`` per cell or nodal, as in :class:`~physinv.discretize.p1.P1Elements`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from physinv.core.checks import check_finite, check_positive
from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.operator import OperatorExample, random_coefficient, register_operator
from physinv.problems.eit.electrodes import ElectrodeMesh, square_electrode_mesh
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1Elements, csr_matvec, torch_csr


def edge_mass(points: np.ndarray, edges: np.ndarray, n_nodes: int) -> sp.csr_matrix:
    """P1 mass matrix of a set of edges: ``int phi_i phi_j ds`` (``|edge| / 6 [[2, 1], [1, 2]]`` each)."""
    length = np.linalg.norm(points[edges[:, 1]] - points[edges[:, 0]], axis=1)
    local = length[:, None, None] / 6.0 * np.array([[2.0, 1.0], [1.0, 2.0]])
    rows = np.repeat(edges, 2, axis=1).ravel()
    cols = np.tile(edges, (1, 2)).ravel()
    return sp.coo_matrix((local.ravel(), (rows, cols)), shape=(n_nodes, n_nodes)).tocsr()


def edge_load(points: np.ndarray, edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """``int phi_i ds`` over a set of edges (``|edge| / 2`` to each end node)."""
    length = np.linalg.norm(points[edges[:, 1]] - points[edges[:, 0]], axis=1)
    return np.bincount(edges.ravel(), weights=np.repeat(length / 2.0, 2), minlength=n_nodes)


class GroundedP1Operator(P1Elements):
    """``A(sigma) = [K(sigma) 0; 0 0] + E``: P1 stiffness padded by ``extra`` unknowns plus a constant part
    ``E`` that makes it SPD."""

    symmetric = True

    def __init__(self, mesh: TriMesh, constant: sp.csr_matrix, extra: int, dtype, device):
        super().__init__(mesh, dtype, device)
        self.extra = int(extra)
        self.constant = constant.tocsr()
        self._constant_torch = torch_csr(self.constant, dtype, device)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.mesh.num_nodes + self.extra,)

    def check_sigma(self, sigma: torch.Tensor) -> None:
        self.cell_kappa(sigma)
        check_finite("conductivity", sigma)
        check_positive("conductivity", sigma)

    def _check_state(self, x: torch.Tensor) -> None:
        if x.shape[-1:] != self.state_shape:
            raise ShapeMismatchError(
                f"state has shape {tuple(x.shape)}; expected trailing dimension {self.state_shape[0]}")

    def _stiffness_part(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = self.mesh.num_nodes
        ku = self.apply_raw(sigma, x[..., :n])
        return torch.cat([ku, ku.new_zeros(ku.shape[:-1] + (self.extra,))], dim=-1)

    def _constant_part(self, x: torch.Tensor) -> torch.Tensor:
        return csr_matvec(self._constant_torch, x)

    def apply(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check_state(x)
        return self._stiffness_part(sigma, x) + self._constant_part(x)

    def apply_tangent(self, sigma: torch.Tensor, dsigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``(dA/dsigma)[dsigma] x``: ``A`` is linear in ``sigma`` and ``E`` does not depend on it."""
        return self._stiffness_part(dsigma, x)

    def assemble(self, sigma: torch.Tensor) -> sp.csr_matrix:
        """The matrix of :meth:`apply` as scipy CSR (float64)."""
        self.check_sigma(sigma)
        stiffness = sp.block_diag([self.assemble_raw(sigma), sp.csr_matrix((self.extra, self.extra))])
        return (stiffness + self.constant).tocsr()

    def diagonal(self, sigma: torch.Tensor) -> torch.Tensor:
        stiff = self.raw_diagonal(sigma)
        stiff = torch.cat([stiff, stiff.new_zeros(stiff.shape[:-1] + (self.extra,))], dim=-1)
        const = torch.from_numpy(self.constant.diagonal()).to(stiff)
        return stiff + const


class CompleteElectrodeOperator(GroundedP1Operator):
    """The CEM system of the module doc; states ``x = (u, U)`` of shape ``(..., n_nodes + L)``.

    Parameters
    ----------
    electrode_mesh
        Mesh with marked electrodes.
    contact_impedance
        ``z_l > 0`` in Ohm m^2: a scalar (all electrodes) or ``(L,)``.
    """

    def __init__(self, electrode_mesh: ElectrodeMesh, contact_impedance=0.01, dtype=torch.float64, device=None):
        mesh, L = electrode_mesh.mesh, electrode_mesh.num_electrodes
        z = np.broadcast_to(np.asarray(contact_impedance, dtype=np.float64), (L,)).copy() \
            if np.ndim(contact_impedance) == 0 else np.asarray(contact_impedance, dtype=np.float64)
        if z.shape != (L,):
            raise ShapeMismatchError(
                f"contact_impedance has {z.shape[0] if z.ndim == 1 else z.shape} values; the mesh has {L} electrodes "
                "(give a scalar or one value per electrode)"
            )
        if not np.all(np.isfinite(z)) or np.any(z <= 0):
            raise InvalidParameterError(
                f"contact impedances must be finite and > 0 (Ohm m^2); got minimum {np.nanmin(z):.3g}"
                + (" and NaN/Inf" if not np.all(np.isfinite(z)) else "")
            )
        n, points = mesh.num_nodes, mesh.points
        B = sp.csr_matrix((n, n))
        C = np.zeros((n, L))
        for l, edges in enumerate(electrode_mesh.electrode_edges):
            B = B + edge_mass(points, edges, n) / z[l]
            C[:, l] = edge_load(points, edges, n) / z[l]
        D = np.diag(electrode_mesh.electrode_lengths() / z)
        ground = float(np.mean(np.diag(D)))
        constant = sp.bmat([[B, sp.csr_matrix(-C)], [sp.csr_matrix(-C.T), sp.csr_matrix(D + ground)]])
        super().__init__(mesh, constant, L, dtype, device)
        self.electrode_mesh = electrode_mesh
        self.contact_impedance = z
        self.num_electrodes = L

    def rhs(self, currents: torch.Tensor) -> torch.Tensor:
        """``(0, I)`` for electrode currents ``(..., L)`` (A)."""
        zeros = currents.new_zeros(currents.shape[:-1] + (self.mesh.num_nodes,))
        return torch.cat([zeros, currents], dim=-1)


class NeumannOperator(GroundedP1Operator):
    """Continuum model: ``K(sigma) + c m m^T`` on states ``u`` of shape ``(..., n_nodes)``.

    Boundary data live on :attr:`boundary_nodes` (``mesh.boundary_nodes()``,
    ascending node index).
    """

    def __init__(self, mesh: TriMesh, dtype=torch.float64, device=None):
        n, edges = mesh.num_nodes, mesh.boundary_edges()
        m = edge_load(mesh.points, edges, n)
        self.boundary_nodes = mesh.boundary_nodes()
        self.boundary_mass = edge_mass(mesh.points, edges, n)[self.boundary_nodes][:, self.boundary_nodes]
        elements = P1Elements(mesh, torch.float64)
        mean_diagonal = float(np.mean(elements.assemble_raw(torch.ones(mesh.num_cells)).diagonal()))
        scale = mean_diagonal * self.boundary_nodes.size / float(m @ m)
        m_sparse = sp.csr_matrix(m[None, :])
        super().__init__(mesh, scale * (m_sparse.T @ m_sparse), 0, dtype, device)
        self._boundary_mass_torch = torch_csr(self.boundary_mass, dtype, device)
        self.boundary_weights = torch.from_numpy(m[self.boundary_nodes]).to(dtype=dtype, device=device)

    def rhs(self, current_density: torch.Tensor) -> torch.Tensor:
        """``M_d g`` for nodal boundary current densities ``g`` ``(..., n_boundary)`` (A/m)."""
        loads = csr_matvec(self._boundary_mass_torch, current_density)
        out = loads.new_zeros(loads.shape[:-1] + (self.mesh.num_nodes,))
        out[..., torch.from_numpy(self.boundary_nodes).to(out.device)] = loads
        return out


# --------------------------------------------------------------------------
# registration: tiny examples for the operator contract test


@register_operator("eit-cem-cell", "EIT complete electrode model system, conductivity per cell")
def _example_cem_cell(dtype, device) -> OperatorExample:
    op = CompleteElectrodeOperator(square_electrode_mesh(4), np.array([0.1, 0.05, 0.2, 0.1]), dtype, device)
    return OperatorExample(op, random_coefficient((op.mesh.num_cells,), 4, dtype, device))


@register_operator("eit-cem-node", "EIT complete electrode model system, nodal (P1) conductivity")
def _example_cem_node(dtype, device) -> OperatorExample:
    op = CompleteElectrodeOperator(square_electrode_mesh(4), 0.1, dtype, device)
    return OperatorExample(op, random_coefficient((op.mesh.num_nodes,), 5, dtype, device))


@register_operator("eit-neumann", "EIT continuum model: grounded P1 Neumann stiffness, conductivity per cell")
def _example_neumann(dtype, device) -> OperatorExample:
    op = NeumannOperator(TriMesh.unit_square(4), dtype, device)
    return OperatorExample(op, random_coefficient((op.mesh.num_cells,), 6, dtype, device))
