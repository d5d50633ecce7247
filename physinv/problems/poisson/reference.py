"""DOLFINx reference solves of the P1 Poisson problem on a given triangle mesh.

The reference solves

.. math::

    -\\nabla\\cdot(\\kappa \\nabla u) = f \\ \\text{in } \\Omega, \\qquad
    u = g \\ \\text{on the Dirichlet nodes},

with continuous P1 Lagrange elements on *exactly* the points and triangles it
is given, ``kappa`` piecewise constant (DG0) or nodal (P1), ``f`` nodal (P1)
and ``g`` nodal.  This is the discrete problem that
:class:`physinv.discretize.p1.P1PoissonOperator` assembles in torch (same
stiffness, same consistent P1 mass times nodal ``f``, same Dirichlet nodes),
so the two solutions agree to linear-solver tolerance, not to discretization
error.  That agreement is what :func:`physinv.problems.poisson.validate.validate_poisson`
checks.

DOLFINx is imported on the first solve (:func:`physinv.fem.dolfinx.import_dolfinx`).

Parallel runs
-------------
Under ``mpiexec -n K`` every rank calls :func:`solve_p1_poisson` with the same
full arrays (reference meshes are small enough to replicate).  Rank 0 hands
the mesh to DOLFINx, which partitions it over the communicator; the solution
is gathered and **returned on every rank** in the original point ordering.
"""

from __future__ import annotations

import numpy as np

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError
from physinv.fem.dolfinx import (
    DolfinxSolveError,
    as_float_array,
    check_mesh_arrays,
    import_dolfinx,
    mesh_boundary_nodes,
    petsc_options,
    petsc_prefix,
)

__all__ = ["solve_p1_poisson"]


def _check_inputs(points, cells, kappa, kappa_on):
    points, cells = check_mesh_arrays(points, cells)
    n_nodes, n_cells = len(points), len(cells)
    kappa = as_float_array("kappa", kappa)
    if kappa_on == "auto":
        # same precedence as P1PoissonOperator.cell_kappa: per cell first
        if kappa.shape[0] == n_cells:
            kappa_on = "cell"
        elif kappa.shape[0] == n_nodes:
            kappa_on = "node"
    if kappa_on not in ("cell", "node"):
        raise ShapeMismatchError(
            f"kappa has {kappa.shape[0]} values; expected n_cells={n_cells} (piecewise constant) "
            f"or n_nodes={n_nodes} (nodal P1)"
            if kappa_on == "auto"
            else f"kappa_on must be 'auto', 'cell' or 'node'; got {kappa_on!r}"
        )
    expected = n_cells if kappa_on == "cell" else n_nodes
    if kappa.shape[0] != expected:
        raise ShapeMismatchError(f"kappa_on={kappa_on!r} needs {expected} values; got {kappa.shape[0]}")
    if kappa.min() <= 0:
        raise InvalidParameterError(
            f"kappa must be strictly positive everywhere (got minimum {kappa.min():.3g}); "
            "a conductivity/diffusivity has to be > 0"
        )
    return points, cells, kappa, kappa_on


def solve_p1_poisson(
    points,
    cells,
    kappa,
    source=None,
    dirichlet=None,
    dirichlet_nodes=None,
    *,
    comm=None,
    ksp: str = "lu",
    rtol: float = 1e-12,
    max_it: int = 10_000,
    kappa_on: str = "auto",
    return_info: bool = False,
):
    """Solve ``-div(kappa grad u) = f`` with P1 elements in DOLFINx on the given mesh.

    Parameters
    ----------
    points
        ``(n_nodes, 2)`` node coordinates (m).  Every point must belong to a triangle.
    cells
        ``(n_cells, 3)`` vertex indices of the triangles (any orientation).
    kappa
        Conductivity (> 0): ``(n_cells,)`` piecewise constant (DG0) or
        ``(n_nodes,)`` nodal (P1).  When ``n_cells == n_nodes`` the per-cell
        reading wins, as in ``P1PoissonOperator``; pass ``kappa_on`` to choose.
    source
        Nodal ``f`` ``(n_nodes,)``; the load is ``int f_h v dx`` with ``f_h`` its
        P1 interpolant (the consistent mass matrix times ``f``).  Default 0.
    dirichlet
        Nodal values ``(n_nodes,)``, read on the Dirichlet nodes only.  Default 0.
    dirichlet_nodes
        Indices of the nodes where ``u`` is prescribed; default: every node
        on an edge that belongs to one triangle only (the boundary).
    comm
        MPI communicator (default ``MPI.COMM_WORLD``).  All ranks pass the same
        arrays; the mesh is partitioned from rank 0.
    ksp
        ``"lu"`` (MUMPS direct solve) or ``"cg-gamg"`` (CG with PETSc's
        algebraic multigrid, relative residual ``rtol``).
    rtol, max_it
        Tolerance and iteration cap of ``"cg-gamg"``.
    kappa_on
        ``"auto"``, ``"cell"`` or ``"node"``.
    return_info
        Also return a dict with the KSP iteration count, its converged reason,
        the number of ranks and of degrees of freedom.

    Returns
    -------
    numpy.ndarray
        ``(n_nodes,)`` nodal solution in the order of ``points``, identical on
        every rank of ``comm``; with ``return_info`` a tuple ``(u, info)``.

    Raises
    ------
    MissingExtraError
        DOLFINx is not installed (``pip install 'physinv[fem]'``).
    DolfinxSolveError
        The PETSc solve did not converge.
    """
    points, cells, kappa, kappa_on = _check_inputs(points, cells, kappa, kappa_on)
    n_nodes = len(points)
    source = None if source is None else as_float_array("source", source, n_nodes)
    dirichlet = np.zeros(n_nodes) if dirichlet is None else as_float_array("dirichlet", dirichlet, n_nodes)
    if dirichlet_nodes is None:
        dirichlet_nodes = mesh_boundary_nodes(cells)
    dirichlet_nodes = np.asarray(dirichlet_nodes, dtype=np.int64).ravel()
    if dirichlet_nodes.size == 0:
        raise ShapeMismatchError("at least one Dirichlet node is needed (pure Neumann is singular)")
    if dirichlet_nodes.min() < 0 or dirichlet_nodes.max() >= n_nodes:
        raise ShapeMismatchError(f"dirichlet_nodes must lie in 0..{n_nodes - 1}")
    options = petsc_options(ksp, rtol, max_it)

    dolfinx = import_dolfinx("the DOLFINx P1 Poisson reference")
    import basix.ufl
    import ufl
    from dolfinx import fem
    from dolfinx.fem.petsc import LinearProblem
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    coord_element = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
    if comm.rank == 0:
        msh = dolfinx.mesh.create_mesh(comm, cells, coord_element, points)
    else:
        msh = dolfinx.mesh.create_mesh(
            comm, np.empty((0, 3), dtype=np.int64), coord_element, np.empty((0, 2), dtype=np.float64)
        )

    V = fem.functionspace(msh, ("Lagrange", 1))
    # local P1 dof -> original point index, through the geometry dofmap (both
    # are degree-1 Lagrange on the same cells, so cell-local orderings agree)
    dof_cells = V.dofmap.list
    geom_cells = msh.geometry.dofmaps[0]
    original_node = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
    n_local = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
    dof_to_node = np.full(n_local, -1, dtype=np.int64)
    dof_to_node[dof_cells.ravel()] = original_node[geom_cells.ravel()]
    if np.any(dof_to_node < 0):
        raise PhysinvError("internal error: a P1 dof is not attached to a mesh node")
    dof_xy = V.tabulate_dof_coordinates()[:, :2]
    if not np.allclose(dof_xy, points[dof_to_node], rtol=0.0, atol=1e-12 * (1.0 + np.abs(points).max())):
        raise PhysinvError("internal error: DOLFINx dof coordinates do not match the input points")

    if kappa_on == "cell":
        W = fem.functionspace(msh, ("DG", 0))
        original_cell = np.asarray(msh.topology.original_cell_index, dtype=np.int64)
        k_fn = fem.Function(W)
        k_fn.x.array[W.dofmap.list[: len(original_cell), 0]] = kappa[original_cell]
        k_fn.x.scatter_forward()
    else:
        k_fn = fem.Function(V)
        k_fn.x.array[:] = kappa[dof_to_node]

    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(k_fn * ufl.grad(u), ufl.grad(v)) * ufl.dx
    if source is None:
        L = ufl.inner(fem.Constant(msh, 0.0), v) * ufl.dx
    else:
        f_fn = fem.Function(V)
        f_fn.x.array[:] = source[dof_to_node]
        L = ufl.inner(f_fn, v) * ufl.dx

    is_dirichlet = np.zeros(n_nodes, dtype=bool)
    is_dirichlet[dirichlet_nodes] = True
    bc_dofs = np.flatnonzero(is_dirichlet[dof_to_node]).astype(np.int32)
    g_fn = fem.Function(V)
    g_fn.x.array[:] = dirichlet[dof_to_node]
    bc = fem.dirichletbc(g_fn, bc_dofs)

    problem = LinearProblem(
        a,
        L,
        bcs=[bc],
        petsc_options=options,
        petsc_options_prefix=petsc_prefix("p1_poisson"),
    )
    uh = problem.solve()
    reason = problem.solver.getConvergedReason()
    iterations = problem.solver.getIterationNumber()
    if reason <= 0:
        raise DolfinxSolveError(
            f"DOLFINx/PETSc solve with ksp={ksp!r} did not converge (KSP reason {reason} after "
            f"{iterations} iterations); use ksp='lu' or raise max_it"
        )

    n_owned = V.dofmap.index_map.size_local
    owned_nodes = dof_to_node[:n_owned]
    owned_values = np.array(uh.x.array[:n_owned], dtype=np.float64)
    all_nodes = np.concatenate(comm.allgather(owned_nodes))
    all_values = np.concatenate(comm.allgather(owned_values))
    if all_nodes.size != n_nodes or np.unique(all_nodes).size != n_nodes:
        raise PhysinvError(
            f"internal error: gathered {all_nodes.size} owned dofs for {n_nodes} nodes"
        )
    result = np.empty(n_nodes, dtype=np.float64)
    result[all_nodes] = all_values
    del problem  # destroys the PETSc objects
    if not return_info:
        return result
    info = {
        "ksp": ksp,
        "iterations": int(iterations),
        "converged_reason": int(reason),
        "comm_size": int(comm.size),
        "num_dofs": int(n_nodes),
        "kappa_on": kappa_on,
    }
    return result, info
