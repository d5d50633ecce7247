"""Continuous P1 finite elements on triangle meshes, assembled in torch.

For ``-div(kappa grad u) = f`` the element stiffness of triangle ``e`` with
barycentric gradients ``G_e`` (3 x 2) and area ``|e|`` is

    K_e = kappa_e |e| G_e G_e^T,

exact both for kappa piecewise constant (``kappa_e`` the cell value) and for
kappa nodal P1 (``kappa_e`` the mean of its three vertex values, since the
gradients are constant).  Loads use the P1 interpolant of ``f``: ``b = M f``
with the exact P1 mass matrix ``M_e = |e| / 12 (1 + delta_ij)``.  These are
the matrices DOLFINx assembles for P1 ``u``, ``v`` with ``kappa`` in DG0 or P1
and ``f`` in P1, so both solve the same discrete problem.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from physinv.core.checks import check_finite, check_positive, check_tensor
from physinv.core.errors import ShapeMismatchError
from physinv.core.operator import OperatorExample, random_coefficient, register_operator
from physinv.discretize.dirichlet import dirichlet_mask, masked_apply, masked_csr
from physinv.discretize.mesh import TriMesh


def torch_csr(matrix: sp.spmatrix, dtype=torch.float64, device=None) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor."""
    matrix = matrix.tocsr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr), torch.from_numpy(matrix.indices),
            torch.from_numpy(matrix.data), size=matrix.shape, check_invariants=False,
        ).to(device=device, dtype=dtype)


def csr_matvec(csr: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``csr @ x`` over the last axis of ``x`` for any leading batch shape."""
    flat = x.reshape(-1, x.shape[-1]).T
    return (csr.to(x.dtype) @ flat).T.reshape(x.shape)


class P1Elements:
    """Element data of P1 on a triangle mesh: reference stiffness and mass, scatter, CSR assembly.

    ``ref_stiffness[e] = |e| G_e G_e^T`` and ``ref_mass[e] = |e| / 12 (1 + delta_ij)``,
    ``(n_cells, 3, 3)``; no boundary conditions (see :class:`P1PoissonOperator`).
    """

    def __init__(self, mesh: TriMesh, dtype=torch.float64, device=None):
        self.mesh = mesh
        p = mesh.points[mesh.cells]  # (m, 3, 2)
        area = mesh.areas()
        # gradients of barycentric coordinates: rows of inv([[1, x, y]])[1:]
        ones = np.ones((mesh.num_cells, 3, 1))
        grads = np.linalg.inv(np.concatenate([ones, p], axis=2))[:, 1:, :].transpose(0, 2, 1)
        ref_stiff = area[:, None, None] * grads @ grads.transpose(0, 2, 1)
        ref_mass = area[:, None, None] / 12.0 * (np.ones((3, 3)) + np.eye(3))
        self.cells = torch.from_numpy(mesh.cells).to(device)
        self.ref_stiffness = torch.from_numpy(ref_stiff).to(dtype=dtype, device=device)
        self.ref_mass = torch.from_numpy(ref_mass).to(dtype=dtype, device=device)

    def cell_kappa(self, kappa: torch.Tensor) -> torch.Tensor:
        """kappa per cell from nodal ``(n_nodes,)`` or cell ``(n_cells,)`` values."""
        check_tensor("kappa", kappa,
                     f"of shape (n_nodes,)={self.mesh.num_nodes} or (n_cells,)={self.mesh.num_cells}",
                     "kappa = f(x, y) at the nodes (x, y = mesh.points.T) or at the cell centres "
                     "(mesh.points[mesh.cells].mean(axis=1))")
        if kappa.shape[-1:] == (self.mesh.num_cells,):
            return kappa
        if kappa.shape[-1:] == (self.mesh.num_nodes,):
            return kappa[..., self.cells].mean(dim=-1)
        raise ShapeMismatchError(
            f"kappa has shape {tuple(kappa.shape)}; expected (n_nodes,)={self.mesh.num_nodes} "
            f"(nodal P1) or (n_cells,)={self.mesh.num_cells} (piecewise constant)"
        )

    def _scatter(self, local: torch.Tensor) -> torch.Tensor:
        """Sum element contributions ``(..., m, 3)`` into nodes ``(..., n)``."""
        out = local.new_zeros(local.shape[:-2] + (self.mesh.num_nodes,))
        return out.index_add(-1, self.cells.reshape(-1), local.reshape(local.shape[:-2] + (-1,)))

    def _local(self, ref: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Element products ``ref_e u[cells_e]`` ``(..., m, 3)``, in the promoted dtype of ``ref`` and
        ``u`` (float32 data with float64 element data give float64, as torch's arithmetic does)."""
        dtype = torch.promote_types(ref.dtype, u.dtype)
        return torch.einsum("eij,...ej->...ei", ref.to(dtype), u[..., self.cells].to(dtype))

    def apply_raw(self, kappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Unconstrained stiffness product ``K(kappa) u``."""
        k = self.cell_kappa(kappa)
        return self._scatter(k[..., None] * self._local(self.ref_stiffness, u))

    def raw_diagonal(self, kappa: torch.Tensor) -> torch.Tensor:
        """Diagonal of the unconstrained stiffness ``K(kappa)``, ``(..., n_nodes)``."""
        k = self.cell_kappa(kappa)
        return self._scatter(k[..., None] * torch.diagonal(self.ref_stiffness, dim1=-2, dim2=-1))

    def bind(self, kappa: torch.Tensor):
        """``x -> A(kappa) x`` for a fixed ``kappa`` as a torch sparse CSR product (``A`` = the subclass's
        :meth:`assemble`)."""
        csr = torch_csr(self.assemble(kappa), self.ref_stiffness.dtype, self.ref_stiffness.device)
        return lambda x: csr_matvec(csr, x)

    def _csr(self, local: np.ndarray) -> sp.csr_matrix:
        cells = self.mesh.cells
        rows = np.repeat(cells, 3, axis=1).ravel()
        cols = np.tile(cells, (1, 3)).ravel()
        n = self.mesh.num_nodes
        return sp.coo_matrix((local.ravel(), (rows, cols)), shape=(n, n)).tocsr()

    def mass_apply(self, u: torch.Tensor) -> torch.Tensor:
        """Consistent P1 mass matrix product ``M u`` (dtype promoted as in :meth:`apply_raw`)."""
        return self._scatter(self._local(self.ref_mass, u))

    def assemble_mass(self) -> sp.csr_matrix:
        """Consistent P1 mass matrix ``M`` as scipy CSR."""
        return self._csr(self.ref_mass.cpu().numpy())

    def assemble_raw(self, kappa: torch.Tensor) -> sp.csr_matrix:
        """Unconstrained stiffness ``K(kappa)`` as scipy CSR (float64)."""
        k = self.cell_kappa(kappa.detach().to(torch.float64).cpu()).numpy()
        return self._csr(k[:, None, None] * self.ref_stiffness.cpu().numpy())


class P1PoissonOperator(P1Elements):
    """Matrix-free P1 stiffness ``u -> K(kappa) u`` with Dirichlet nodes eliminated.

    Parameters
    ----------
    mesh
        The triangle mesh; states have shape ``(..., n_nodes)``.
    dirichlet_nodes
        Indices of nodes with prescribed values (integers in ``0..n_nodes-1``;
        repeats are ignored), or a boolean mask of shape ``(n_nodes,)``;
        defaults to the whole boundary.  See
        :func:`~physinv.discretize.dirichlet.dirichlet_mask`.
    dtype, device
        Where the precomputed element data live.

    Notes
    -----
    ``kappa`` may be nodal ``(n_nodes,)`` or per cell ``(n_cells,)``: one
    coefficient field (:meth:`check_kappa` and :meth:`assemble` refuse batch
    axes).  Sources and Dirichlet data of another floating dtype than the
    element data are promoted (float32 loads in a float64 operator give float64),
    as in :class:`~physinv.discretize.fd.FDPoissonOperator`.
    """

    symmetric = True

    def __init__(self, mesh: TriMesh, dirichlet_nodes=None, dtype=torch.float64, device=None):
        super().__init__(mesh, dtype, device)
        if dirichlet_nodes is None:
            dirichlet_nodes = mesh.boundary_nodes()
        self.dirichlet_mask = dirichlet_mask(dirichlet_nodes, mesh.num_nodes).to(device)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.mesh.num_nodes,)

    def check_kappa(self, kappa: torch.Tensor) -> None:
        """Raise unless ``kappa`` is one finite, positive field ``(n_nodes,)`` or ``(n_cells,)``."""
        self.cell_kappa(kappa)
        if kappa.ndim != 1:
            raise ShapeMismatchError(
                f"kappa has shape {tuple(kappa.shape)}; expected one coefficient field, (n_nodes,)="
                f"{self.mesh.num_nodes} or (n_cells,)={self.mesh.num_cells}: each kappa of a batch needs "
                "its own matrix and solve, so loop over the batch")
        check_positive("kappa", kappa)

    def _check_state(self, name: str, u: torch.Tensor) -> None:
        if u.shape[-1:] != (self.mesh.num_nodes,):
            raise ShapeMismatchError(
                f"{name} has shape {tuple(u.shape)}; expected trailing dimension "
                f"n_nodes={self.mesh.num_nodes} of this mesh"
            )

    def apply(self, kappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """SPD operator with Dirichlet nodes eliminated: ``(P K P + I - P) u``."""
        free = (~self.dirichlet_mask).to(u.dtype)
        return masked_apply(lambda v: self.apply_raw(kappa, v), u, free)

    def apply_tangent(self, kappa: torch.Tensor, dkappa: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Directional derivative ``(dA/dkappa)[dkappa] u`` of :meth:`apply`.

        ``A`` is linear in ``kappa`` (face/cell values are linear in it), so this
        is the eliminated stiffness built from ``dkappa``, without the identity
        rows of the Dirichlet nodes.  Used by forward-mode differentiation of solves.
        """
        free = (~self.dirichlet_mask).to(u.dtype)
        return free * self.apply_raw(dkappa, free * u)

    def diagonal(self, kappa: torch.Tensor) -> torch.Tensor:
        raw = self.raw_diagonal(kappa)
        free = (~self.dirichlet_mask).to(raw.dtype)
        return free * raw + (1 - free)

    def assemble(self, kappa: torch.Tensor) -> sp.csr_matrix:
        """The matrix of :meth:`apply` as scipy CSR (float64)."""
        self.check_kappa(kappa)
        return masked_csr(self.assemble_raw(kappa), ~self.dirichlet_mask.cpu().numpy())

    def rhs(
        self,
        kappa: torch.Tensor,
        source: torch.Tensor | None = None,
        dirichlet: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Load vector ``M f`` with Dirichlet lifting; nodal ``source`` and ``dirichlet``."""
        free = (~self.dirichlet_mask).to(kappa.dtype)
        b = torch.zeros(self.mesh.num_nodes, dtype=kappa.dtype, device=kappa.device)
        if source is not None:
            self._check_state("source", source)
            check_finite("source", source)
            b = b + self.mass_apply(source)
        if dirichlet is not None:
            self._check_state("dirichlet", dirichlet)
            g = dirichlet * (1 - free)
            return free * (b - self.apply_raw(kappa, g)) + g
        return free * b


# --------------------------------------------------------------------------
# registration: tiny examples for the operator contract test


@register_operator("p1-poisson-cell", "P1 stiffness on a triangle mesh, kappa per cell, Dirichlet boundary")
def _example_cell(dtype, device) -> OperatorExample:
    mesh = TriMesh.unit_square(4)
    return OperatorExample(P1PoissonOperator(mesh, dtype=dtype, device=device),
                           random_coefficient((mesh.num_cells,), 2, dtype, device))


@register_operator("p1-poisson-node", "P1 stiffness on a triangle mesh, nodal kappa, Dirichlet on part of the boundary")
def _example_node(dtype, device) -> OperatorExample:
    mesh = TriMesh.unit_square(3, diagonal="left")
    bottom = np.flatnonzero(np.isclose(mesh.points[:, 1], 0.0))
    return OperatorExample(P1PoissonOperator(mesh, dirichlet_nodes=bottom, dtype=dtype, device=device),
                           random_coefficient((mesh.num_nodes,), 3, dtype, device))
