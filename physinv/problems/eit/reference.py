"""DOLFINx reference solves of the complete electrode model (CEM) of EIT.

:func:`solve_cem` computes the electrode voltages of

.. math::

    \\nabla\\cdot(\\sigma\\nabla u) = 0 \\ \\text{in } \\Omega, \\qquad
    u + z_l \\sigma \\partial_n u = U_l \\ \\text{on } e_l, \\qquad
    \\int_{e_l} \\sigma \\partial_n u \\, ds = I_l, \\qquad
    \\sigma \\partial_n u = 0 \\ \\text{between electrodes},

with continuous P1 Lagrange elements on *exactly* the points and triangles it
is given.  The electrodes are the boundary edges listed in ``electrode_edges``;
they are mapped to DOLFINx facets (through the geometry's
``input_global_indices``) and tagged ``1..L`` with :func:`dolfinx.mesh.meshtags`.
UFL/DOLFINx assemble

* ``A = sigma inner(grad u, grad v) dx + sum_l (1/z_l) u v ds(l)``,
* ``C[:, l] = (1/z_l) v ds(l)`` (one vector per electrode),
* ``|e_l| = 1 ds(l)``,

and the bordered system

.. math::

    \\begin{bmatrix} A & -C & 0 \\\\ -C^T & D & \\mathbf 1 \\\\ 0 & \\mathbf 1^T & 0 \\end{bmatrix}
    \\begin{bmatrix} u \\\\ U \\\\ \\lambda \\end{bmatrix}
    = \\begin{bmatrix} 0 \\\\ I \\\\ 0 \\end{bmatrix},
    \\qquad D = \\operatorname{diag}(|e_l| / z_l),

is solved with SciPy's sparse LU.  The ground ``sum_l U_l = 0`` is imposed by
the Lagrange multiplier ``lambda`` (which is zero when ``sum_l I_l = 0``).
This is the discrete problem of
:class:`physinv.problems.eit.operators.CompleteElectrodeOperator`, which
grounds with a rank-one term instead; the electrode voltages of the two agree
to round-off, which :func:`physinv.problems.eit.validate.validate_eit` checks.

``sigma`` is piecewise constant (DG0, one value per cell) or nodal (P1), as in
:func:`physinv.fem.dolfinx.solve_p1_poisson`.

Serial only: the mesh is built on ``MPI.COMM_SELF``, so under ``mpiexec``
every rank solves the whole problem on its own (reference meshes are small).
DOLFINx is an optional dependency (``pip install 'physinv[fem]'``), imported on
the first solve.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError
from physinv.fem.dolfinx import check_mesh_arrays, import_dolfinx

__all__ = ["solve_cem"]

#: ``|sum_l I_l|`` allowed per pattern, relative to ``max_l |I_l|``.
CURRENT_SUM_RTOL = 1e-10


def _check_conductivity(conductivity, n_nodes: int, n_cells: int, kappa_on: str) -> tuple[np.ndarray, str]:
    sigma = np.asarray(conductivity, dtype=np.float64)
    if sigma.ndim != 1:
        raise ShapeMismatchError(f"conductivity must be a 1D array; got shape {sigma.shape}")
    if kappa_on == "auto":  # per cell first, as in CompleteElectrodeOperator / P1Elements
        kappa_on = "cell" if sigma.shape[0] == n_cells else "node" if sigma.shape[0] == n_nodes else "auto"
        if kappa_on == "auto":
            raise ShapeMismatchError(
                f"conductivity has {sigma.shape[0]} values; expected n_cells={n_cells} (piecewise constant) "
                f"or n_nodes={n_nodes} (nodal P1)"
            )
    if kappa_on not in ("cell", "node"):
        raise InvalidParameterError(f"kappa_on must be 'auto', 'cell' or 'node'; got {kappa_on!r}")
    expected = n_cells if kappa_on == "cell" else n_nodes
    if sigma.shape[0] != expected:
        raise ShapeMismatchError(f"kappa_on={kappa_on!r} needs {expected} conductivity values; got {sigma.shape[0]}")
    if not np.all(np.isfinite(sigma)):
        raise InvalidParameterError(f"conductivity contains {int(np.sum(~np.isfinite(sigma)))} NaN/Inf value(s)")
    if sigma.min() <= 0:
        raise InvalidParameterError(
            f"conductivity must be strictly positive everywhere (S/m); got minimum {sigma.min():.3g}"
        )
    return sigma, kappa_on


def _check_electrodes(electrode_edges, cells: np.ndarray, n_nodes: int) -> list[np.ndarray]:
    if isinstance(electrode_edges, np.ndarray) and electrode_edges.ndim == 2:
        raise ShapeMismatchError("electrode_edges must be a sequence with one (n_k, 2) array per electrode")
    edges = []
    for k, e in enumerate(electrode_edges):
        e = np.asarray(e)
        if e.ndim != 2 or e.shape[1] != 2 or e.shape[0] == 0 or not np.issubdtype(e.dtype, np.integer):
            raise ShapeMismatchError(
                f"electrode {k + 1}: expected a non-empty (n_k, 2) integer array of node pairs; "
                f"got shape {e.shape}, dtype {e.dtype}"
            )
        if e.min() < 0 or e.max() >= n_nodes:
            raise ShapeMismatchError(f"electrode {k + 1} names nodes outside 0..{n_nodes - 1}")
        edges.append(np.sort(e.astype(np.int64), axis=1))
    if len(edges) < 2:
        raise ShapeMismatchError(f"the CEM needs at least 2 electrodes; got {len(edges)}")
    all_edges = np.sort(cells[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(all_edges, axis=0, return_counts=True)
    boundary = {tuple(e) for e in uniq[counts == 1]}
    seen: set[tuple[int, int]] = set()
    for k, e in enumerate(edges):
        for edge in map(tuple, e.tolist()):
            if edge not in boundary:
                raise InvalidParameterError(f"electrode {k + 1} has edge {edge}, which is not a boundary edge")
            if edge in seen:
                raise InvalidParameterError(f"edge {edge} belongs to two electrodes (or is listed twice)")
            seen.add(edge)
    return edges


def _check_impedance(contact_impedance, L: int) -> np.ndarray:
    z = np.asarray(contact_impedance, dtype=np.float64)
    if z.ndim == 0:
        z = np.full(L, float(z))
    if z.shape != (L,):
        raise ShapeMismatchError(
            f"contact_impedance has shape {z.shape}; give a scalar or one value per electrode ({L},)"
        )
    if not np.all(np.isfinite(z)) or np.any(z <= 0):
        raise InvalidParameterError(
            f"contact impedances must be finite and > 0 (Ohm m^2); got minimum {np.nanmin(z):.3g}"
            + ("" if np.all(np.isfinite(z)) else " and NaN/Inf")
        )
    return z


def _check_currents(currents, L: int) -> np.ndarray:
    I = np.asarray(currents, dtype=np.float64)
    if I.ndim not in (1, 2) or I.shape[-1] != L:
        raise ShapeMismatchError(f"currents must have shape (n_patterns, {L}) or ({L},); got {I.shape}")
    if not np.all(np.isfinite(I)):
        raise InvalidParameterError("currents contain NaN/Inf values")
    I2 = I.reshape(-1, L)
    total = np.abs(I2.sum(axis=1))
    scale = np.abs(I2).max(axis=1)
    bad = np.flatnonzero(total > CURRENT_SUM_RTOL * np.maximum(scale, np.finfo(float).tiny))
    if bad.size:
        raise InvalidParameterError(
            f"the electrode currents of every pattern must sum to zero (charge conservation); "
            f"pattern(s) {bad[:5].tolist()} sum to {I2[bad[0]].sum():.3g} A"
        )
    return I


def solve_cem(
    points,
    cells,
    electrode_edges,
    conductivity,
    contact_impedance,
    currents,
    *,
    kappa_on: str = "auto",
) -> np.ndarray:
    """Electrode voltages of the complete electrode model, computed with DOLFINx P1 (serial).

    Parameters
    ----------
    points
        ``(n_nodes, 2)`` node coordinates (m); every point must belong to a triangle.
    cells
        ``(n_cells, 3)`` vertex indices of the triangles (any orientation).
    electrode_edges
        One ``(n_k, 2)`` integer array of node pairs per electrode (boundary
        edges, none shared), e.g. ``ElectrodeMesh.electrode_edges``.
    conductivity
        ``sigma > 0`` (S/m): ``(n_cells,)`` piecewise constant (DG0) or
        ``(n_nodes,)`` nodal (P1).  When ``n_cells == n_nodes`` the per-cell
        reading wins; pass ``kappa_on`` to choose.
    contact_impedance
        ``z_l > 0`` (Ohm m^2): a scalar or ``(L,)``.
    currents
        ``(n_patterns, L)`` injected currents (A), each pattern summing to zero
        (relative tolerance :data:`CURRENT_SUM_RTOL`); ``(L,)`` for one pattern.
    kappa_on
        ``"auto"``, ``"cell"`` or ``"node"``.

    Returns
    -------
    numpy.ndarray
        Electrode voltages ``U`` (V), same shape as ``currents``, with
        ``sum_l U_l = 0`` per pattern.

    Raises
    ------
    MissingExtraError
        DOLFINx is not installed (``pip install 'physinv[fem]'``).
    ShapeMismatchError, InvalidParameterError
        Bad shapes, non-positive conductivity or impedance, edges that are not
        boundary edges, currents that do not sum to zero.
    """
    points, cells = check_mesh_arrays(points, cells)
    n_nodes, n_cells = len(points), len(cells)
    sigma, kappa_on = _check_conductivity(conductivity, n_nodes, n_cells, kappa_on)
    edges = _check_electrodes(electrode_edges, cells, n_nodes)
    L = len(edges)
    z = _check_impedance(contact_impedance, L)
    I = _check_currents(currents, L)

    dolfinx = import_dolfinx("the DOLFINx complete electrode model reference")
    import basix.ufl
    import ufl
    from dolfinx import fem
    from mpi4py import MPI

    coord_element = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
    msh = dolfinx.mesh.create_mesh(MPI.COMM_SELF, cells, coord_element, points)
    V = fem.functionspace(msh, ("Lagrange", 1))

    # P1 dof -> input node, through the geometry dofmap (same degree-1 layout per cell)
    original_node = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
    dof_to_node = np.full(V.dofmap.index_map.size_local, -1, dtype=np.int64)
    dof_to_node[V.dofmap.list.ravel()] = original_node[msh.geometry.dofmaps[0].ravel()]
    if np.any(dof_to_node < 0) or np.unique(dof_to_node).size != n_nodes:
        raise PhysinvError("internal error: P1 dofs do not map one-to-one to the mesh nodes")
    if not np.allclose(V.tabulate_dof_coordinates()[:, :2], points[dof_to_node], rtol=0.0,
                       atol=1e-12 * (1.0 + np.abs(points).max())):
        raise PhysinvError("internal error: DOLFINx dof coordinates do not match the input points")

    # electrode facets: exterior facet -> its two input nodes -> electrode number (1..L)
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    exterior = dolfinx.mesh.exterior_facet_indices(msh.topology)
    facet_nodes = np.sort(original_node[dolfinx.mesh.entities_to_geometry(msh, tdim - 1, exterior)], axis=1)
    facet_of = {pair: int(f) for pair, f in zip(map(tuple, facet_nodes.tolist()), exterior)}
    tagged_facets, tag_values = [], []
    for l, e in enumerate(edges):
        for pair in map(tuple, e.tolist()):
            if pair not in facet_of:  # _check_electrodes found it on the boundary: should not happen
                raise PhysinvError(f"internal error: boundary edge {pair} of electrode {l + 1} is no exterior facet")
            tagged_facets.append(facet_of[pair])
            tag_values.append(l + 1)
    order = np.argsort(tagged_facets)
    tags = dolfinx.mesh.meshtags(
        msh, tdim - 1, np.asarray(tagged_facets, dtype=np.int32)[order], np.asarray(tag_values, dtype=np.int32)[order]
    )
    ds = ufl.Measure("ds", domain=msh, subdomain_data=tags)

    if kappa_on == "cell":
        W = fem.functionspace(msh, ("DG", 0))
        original_cell = np.asarray(msh.topology.original_cell_index, dtype=np.int64)
        sigma_fn = fem.Function(W)
        sigma_fn.x.array[W.dofmap.list[: len(original_cell), 0]] = sigma[original_cell]
    else:
        sigma_fn = fem.Function(V)
        sigma_fn.x.array[:] = sigma[dof_to_node]

    # one compiled form each; the per-electrode weights are a Constant of shape (L,)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    inv_z = fem.Constant(msh, 1.0 / z)
    weight = fem.Constant(msh, np.zeros(L))
    a = fem.form(
        sigma_fn * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
        + sum(inv_z[l] * u * v * ds(l + 1) for l in range(L))
    )
    c_form = fem.form(sum(weight[l] * v * ds(l + 1) for l in range(L)))
    length_form = fem.form(sum(weight[l] * ds(l + 1) for l in range(L)))

    A_csr = fem.assemble_matrix(a)
    A_csr.scatter_reverse()
    A = A_csr.to_scipy()[:n_nodes, :n_nodes]
    C = np.zeros((n_nodes, L))
    lengths = np.zeros(L)
    for l in range(L):
        unit = np.zeros(L)
        unit[l] = 1.0
        weight.value = unit / z[l]
        b = fem.assemble_vector(c_form)
        b.scatter_reverse(dolfinx.la.InsertMode.add)
        C[:, l] = b.array[:n_nodes]
        weight.value = unit
        lengths[l] = fem.assemble_scalar(length_form)
    if np.any(lengths <= 0):
        raise PhysinvError(f"internal error: electrode lengths {lengths.tolist()} (a tag was lost)")

    ones = np.ones((L, 1))
    system = sp.bmat(
        [
            [A, sp.csr_matrix(-C), None],
            [sp.csr_matrix(-C.T), sp.diags(lengths / z), sp.csr_matrix(ones)],
            [None, sp.csr_matrix(ones.T), None],
        ],
        format="csc",
    )
    I2 = I.reshape(-1, L)
    rhs = np.zeros((n_nodes + L + 1, I2.shape[0]))
    rhs[n_nodes : n_nodes + L] = I2.T
    solution = spla.splu(system).solve(rhs)
    if not np.all(np.isfinite(solution)):
        raise PhysinvError("the bordered CEM system could not be solved (non-finite solution)")
    voltages = solution[n_nodes : n_nodes + L].T
    return voltages.reshape(I.shape)
