"""The DOLFINx bridge: importing DOLFINx, validated mesh arrays, PETSc solver options.

DOLFINx is an optional dependency (``pip install 'physinv[fem]'``).  This
module imports only NumPy and :mod:`physinv.core` at import time; DOLFINx,
PETSc and mpi4py are imported by :func:`import_dolfinx`.  With the PyPI wheel
``dolfinx-solver-real`` the helper module ``dolfinx_solver`` is imported first
(it locates the bundled PETSc); a conda/spack DOLFINx has no such module and
is used as is.  Each problem package's ``reference`` module
builds on it.
"""

from __future__ import annotations

import itertools
from types import ModuleType

import numpy as np

from physinv.core.errors import (
    InvalidParameterError,
    MissingExtraError,
    PhysinvError,
    ShapeMismatchError,
)
from physinv.core.extras import require

__all__ = ["DolfinxSolveError", "KSP_CHOICES", "as_float_array", "cell_dofs", "check_mesh_arrays",
           "create_triangle_mesh", "import_dolfinx", "mesh_boundary_nodes", "node_dofs", "petsc_options",
           "petsc_prefix"]

#: Linear solvers of the references: MUMPS LU, or CG preconditioned by PETSc GAMG.
KSP_CHOICES = ("lu", "cg-gamg")

_PREFIX_COUNTER = itertools.count()


def petsc_prefix(name: str) -> str:
    """A PETSc options prefix unique in this process, so that solves never share options."""
    return f"physinv_{name}_{next(_PREFIX_COUNTER)}_"


class DolfinxSolveError(PhysinvError, RuntimeError):
    """The PETSc linear solve of a DOLFINx reference did not converge."""


def import_dolfinx(purpose: str = "FEM reference solutions") -> ModuleType:
    """Import DOLFINx (with ``dolfinx.fem.petsc``) or raise :class:`MissingExtraError`.

    ``dolfinx_solver`` (from the ``dolfinx-solver-real`` wheel) must be imported
    before the first ``import dolfinx``/``petsc4py``; it is imported here when
    installed and skipped otherwise (conda DOLFINx).
    """
    try:
        import dolfinx_solver  # noqa: F401  (locates the wheel's PETSc; must come first)
    except ImportError:
        pass
    dolfinx = require("dolfinx", "fem", purpose)
    try:
        import dolfinx.fem.petsc  # noqa: F401
    except ImportError as exc:  # DOLFINx built without PETSc
        raise MissingExtraError(
            f"DOLFINx is installed but dolfinx.fem.petsc (petsc4py) is not importable ({exc}); "
            "install a PETSc-enabled DOLFINx with: pip install 'physinv[fem]'"
        ) from exc
    return dolfinx


def mesh_boundary_nodes(cells: np.ndarray) -> np.ndarray:
    """Sorted indices of nodes on edges that belong to exactly one triangle."""
    cells = np.asarray(cells, dtype=np.int64)
    edges = np.sort(cells[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    return np.unique(uniq[counts == 1])


def as_float_array(name: str, value, n: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ShapeMismatchError(f"{name} must be a 1D array; got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ShapeMismatchError(f"{name} has {arr.shape[0]} values; expected one per node ({n})")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(
            f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN/Inf value(s); all entries must be finite"
        )
    return arr


def check_mesh_arrays(points, cells) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(n_nodes, 2)`` float points and ``(n_cells, 3)`` int64 triangles in which every point is a vertex."""
    points = np.asarray(points, dtype=np.float64)
    cells = np.asarray(cells)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ShapeMismatchError(f"points must have shape (n_nodes, 2); got {points.shape}")
    points = np.ascontiguousarray(points[:, :2])
    if cells.ndim != 2 or cells.shape[1] != 3 or cells.shape[0] == 0:
        raise ShapeMismatchError(f"cells must have shape (n_cells, 3) (triangles), n_cells > 0; got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise ShapeMismatchError(f"cells must hold integer node indices; got dtype {cells.dtype}")
    cells = cells.astype(np.int64)
    n_nodes = len(points)
    if cells.min() < 0 or cells.max() >= n_nodes:
        raise ShapeMismatchError(
            f"cells must index the {n_nodes} points (0..{n_nodes - 1}); got indices {cells.min()}..{cells.max()}"
        )
    if not np.all(np.isfinite(points)):
        raise InvalidParameterError("points contain NaN/Inf coordinates")
    if np.unique(cells).size != n_nodes:
        raise ShapeMismatchError(
            f"{n_nodes - np.unique(cells).size} point(s) belong to no triangle; remove unused "
            "points (e.g. TriMesh.from_file does) so that every node is a P1 degree of freedom"
        )
    return points, cells


def petsc_options(ksp: str, rtol: float, max_it: int) -> dict:
    if ksp == "lu":
        return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
    if ksp == "cg-gamg":
        return {
            "ksp_type": "cg",
            "pc_type": "gamg",
            "ksp_rtol": rtol,
            "ksp_atol": 0.0,
            "ksp_max_it": max_it,
            "ksp_norm_type": "unpreconditioned",
        }
    raise InvalidParameterError(f"unknown ksp {ksp!r}; allowed: {', '.join(KSP_CHOICES)}")


def create_triangle_mesh(points, cells, comm=None):
    """A DOLFINx mesh of exactly these triangles (affine P1 geometry), e.g. of a :class:`~physinv.discretize.mesh.TriMesh`.

    Parameters
    ----------
    points
        ``(n_nodes, 2)`` node coordinates (m); every point must belong to a triangle.
    cells
        ``(n_cells, 3)`` vertex indices.
    comm
        MPI communicator (default ``MPI.COMM_SELF``: a serial mesh, what
        :class:`~physinv.fem.form_simulator.FormSimulator` needs).

    Notes
    -----
    DOLFINx renumbers nodes and cells; :func:`node_dofs` and :func:`cell_dofs`
    give the dof of each input node (P1 space) and input cell (DG0 space).
    """
    points, cells = check_mesh_arrays(points, cells)
    dolfinx = import_dolfinx("building a DOLFINx mesh")
    import basix.ufl
    from mpi4py import MPI

    comm = MPI.COMM_SELF if comm is None else comm
    element = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
    if comm.rank == 0:
        return dolfinx.mesh.create_mesh(comm, cells, element, points)
    return dolfinx.mesh.create_mesh(comm, np.empty((0, 3), dtype=np.int64), element, np.empty((0, 2)))


def node_dofs(V) -> np.ndarray:
    """``(n_nodes,)``: the dof of a scalar P1 space ``V`` at each input node of its mesh (serial meshes).

    ``u_nodes = u.x.array[node_dofs(V)]`` puts a DOLFINx P1 vector in the order of the
    points the mesh was made from; ``u.x.array[node_dofs(V)] = u_nodes`` goes back.
    """
    msh = V.mesh
    original = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
    n = V.dofmap.index_map.size_local
    if msh.comm.size != 1 or V.dofmap.bs != 1 or V.dofmap.list.shape[1] != msh.geometry.dofmaps[0].shape[1]:
        raise PhysinvError("node_dofs needs a scalar P1 space on a serial mesh with P1 geometry")
    out = np.full(n, -1, dtype=np.int64)
    out[original[msh.geometry.dofmaps[0].ravel()]] = V.dofmap.list.ravel()
    return out


def cell_dofs(M) -> np.ndarray:
    """``(n_cells,)``: the dof of a DG0 space ``M`` in each input cell of its mesh (serial meshes)."""
    msh = M.mesh
    original = np.asarray(msh.topology.original_cell_index, dtype=np.int64)
    if msh.comm.size != 1 or M.dofmap.list.shape[1] != 1 or M.dofmap.bs != 1:
        raise PhysinvError("cell_dofs needs a scalar DG0 space on a serial mesh")
    out = np.full(len(original), -1, dtype=np.int64)
    out[original] = M.dofmap.list[: len(original), 0]
    return out
