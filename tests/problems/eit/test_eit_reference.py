"""DOLFINx complete electrode model reference vs the torch CompleteElectrodeOperator, bad input."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.problems.eit.operators import CompleteElectrodeOperator
from physinv.problems.eit.electrodes import ElectrodeMesh
from physinv.problems.eit.reference import solve_cem
from physinv.linalg.solvers import DirectSolver

TOL = 1e-9  # same discrete problem: agreement to round-off, not discretization error


@pytest.fixture(scope="module")
def emesh():
    pytest.importorskip("meshio")
    return ElectrodeMesh.shipped("eit_disk_h0.2.msh")


def currents(L):
    eye = np.eye(L)
    adjacent = eye - np.roll(eye, 1, axis=1)
    opposite = (eye - np.roll(eye, L // 2, axis=1))[: L // 2]
    return np.concatenate([adjacent, 0.3 * opposite])


def conductivity(mesh, on):
    if on == "cell":
        c = mesh.points[mesh.cells].mean(axis=1)
        return 1.0 + 4.0 * (np.hypot(c[:, 0] - 0.3, c[:, 1] + 0.2) < 0.35)
    x, y = mesh.points.T
    return 1.0 + 0.5 * np.sin(3 * x) + y**2


def torch_voltages(em, sigma, z, current):
    op = CompleteElectrodeOperator(em, z)
    x = DirectSolver().prepare(op, torch.from_numpy(sigma))(op.rhs(torch.from_numpy(current)))
    return x[..., em.mesh.num_nodes :].numpy()


def rel_diff(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("sigma_on", ["cell", "node"])
@pytest.mark.parametrize("graded", [False, True])
def test_agrees_with_torch_cem(dolfinx, emesh, sigma_on, graded):
    mesh, L = emesh.mesh, emesh.num_electrodes
    z = 0.01 * 10.0 ** np.linspace(-1, 1, L) if graded else 0.01
    sigma, current = conductivity(mesh, sigma_on), currents(L)
    U = solve_cem(mesh.points, mesh.cells, emesh.electrode_edges, sigma, z, current)
    assert U.shape == current.shape
    np.testing.assert_allclose(U.sum(axis=1), 0.0, atol=1e-12)
    assert rel_diff(torch_voltages(emesh, sigma, z, current), U) <= TOL


def test_single_pattern_and_node_order(dolfinx, emesh):
    """A 1D current vector gives a 1D result; shuffled points/cells and flipped edges give the same voltages."""
    mesh, L = emesh.mesh, emesh.num_electrodes
    sigma, current = conductivity(mesh, "cell"), currents(L)[3]
    U = solve_cem(mesh.points, mesh.cells, emesh.electrode_edges, sigma, 0.02, current)
    assert U.shape == (L,)
    rng = np.random.default_rng(0)
    perm = rng.permutation(mesh.num_nodes)  # new point j is old point perm[j]
    inverse = np.argsort(perm)
    cell_order = rng.permutation(mesh.num_cells)
    edges = [inverse[e][:, ::-1] for e in emesh.electrode_edges]
    U2 = solve_cem(mesh.points[perm], inverse[mesh.cells][cell_order], edges, sigma[cell_order], 0.02, current)
    assert rel_diff(U2, U) <= TOL
    assert rel_diff(torch_voltages(emesh, sigma, 0.02, current), U) <= TOL


def test_bad_input(dolfinx, emesh):
    mesh, L = emesh.mesh, emesh.num_electrodes
    p, c, e = mesh.points, mesh.cells, emesh.electrode_edges
    sigma, current = np.ones(mesh.num_cells), currents(L)
    with pytest.raises(InvalidParameterError, match="strictly positive"):
        solve_cem(p, c, e, np.where(np.arange(mesh.num_cells) == 5, 0.0, 1.0), 0.01, current)
    with pytest.raises(InvalidParameterError, match="NaN"):
        solve_cem(p, c, e, np.full(mesh.num_cells, np.nan), 0.01, current)
    with pytest.raises(InvalidParameterError, match="contact impedances"):
        solve_cem(p, c, e, sigma, -0.01, current)
    with pytest.raises(InvalidParameterError, match="contact impedances"):
        solve_cem(p, c, e, sigma, np.r_[0.0, np.full(L - 1, 0.01)], current)
    with pytest.raises(ShapeMismatchError, match="one value per electrode"):
        solve_cem(p, c, e, sigma, np.full(L - 1, 0.01), current)
    with pytest.raises(InvalidParameterError, match="sum to zero"):
        solve_cem(p, c, e, sigma, 0.01, np.eye(L)[:2])
    with pytest.raises(ShapeMismatchError, match="currents must have shape"):
        solve_cem(p, c, e, sigma, 0.01, current[:, :-1])
    with pytest.raises(ShapeMismatchError, match="conductivity has"):
        solve_cem(p, c, e, np.ones(mesh.num_cells + 1), 0.01, current)
    with pytest.raises(ShapeMismatchError, match="kappa_on='node' needs"):
        solve_cem(p, c, e, sigma, 0.01, current, kappa_on="node")
    with pytest.raises(InvalidParameterError, match="kappa_on must be"):
        solve_cem(p, c, e, sigma, 0.01, current, kappa_on="edge")
    with pytest.raises(ShapeMismatchError, match="points must have shape"):
        solve_cem(p[:, :1], c, e, sigma, 0.01, current)
    with pytest.raises(ShapeMismatchError, match="cells must index"):
        solve_cem(p, np.where(c == 0, mesh.num_nodes, c), e, sigma, 0.01, current)
    interior = np.setdiff1d(np.arange(mesh.num_nodes), mesh.boundary_nodes())
    inner_edge = next(
        (a, b) for a, b in np.sort(c[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1) if a in interior or b in interior
    )
    with pytest.raises(InvalidParameterError, match="not a boundary edge"):
        solve_cem(p, c, (np.array([inner_edge]),) + tuple(e[1:]), sigma, 0.01, current)
    with pytest.raises(InvalidParameterError, match="two electrodes"):
        solve_cem(p, c, (e[0], e[0]) + tuple(e[2:]), sigma, 0.01, current)
    with pytest.raises(ShapeMismatchError, match="electrode 2"):
        solve_cem(p, c, (e[0], np.empty((0, 2), dtype=np.int64)) + tuple(e[2:]), sigma, 0.01, current)
    with pytest.raises(ShapeMismatchError, match="outside"):
        solve_cem(p, c, (e[0] + mesh.num_nodes,) + tuple(e[1:]), sigma, 0.01, current)
