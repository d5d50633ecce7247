"""EIT forward models: protocols, physics identities, adjoint Jacobian, analytic continuum solution, bad input."""

import math

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError, UnknownNameError
from physinv.problems.eit.operators import CompleteElectrodeOperator
from physinv.problems.eit.electrodes import ElectrodeMesh, MissingElectrodesError
from physinv.fem import gmsh_meshes
from physinv.problems.eit.mesh import eit_disk_arrays
from physinv.problems.eit.simulator import (
    ContinuumEITSimulator,
    EITSimulator,
    check_currents,
    injection_pattern,
    measurement_pattern,
    square_electrode_mesh,
)

pytest.importorskip("meshio")


@pytest.fixture(scope="module")
def disk():
    return ElectrodeMesh.shipped("eit_disk_h0.1.msh")


def random_sigma(sim, seed=0):
    rng = np.random.default_rng(seed)
    return torch.as_tensor(0.5 + rng.random(sim.parameter_shape), dtype=torch.float64)


def test_protocols():
    adj = injection_pattern("adjacent", 16)
    assert adj.shape == (16, 16) and adj[0, 0] == 1 and adj[0, 1] == -1 and adj[15, 15] == 1 and adj[15, 0] == -1
    opp = injection_pattern("opposite", 16)
    assert opp.shape == (8, 16) and opp[3, 3] == 1 and opp[3, 11] == -1
    np.testing.assert_array_equal(measurement_pattern("electrodes", 8), np.eye(8))
    np.testing.assert_array_equal(measurement_pattern("adjacent", 8), injection_pattern("adjacent", 8))
    with pytest.raises(InvalidParameterError, match="even"):
        injection_pattern("opposite", 15)
    with pytest.raises(UnknownNameError, match="adjacent"):
        injection_pattern("skip-2", 16)
    with pytest.raises(UnknownNameError):
        measurement_pattern("diagonal", 16)


def test_shipped_meshes_are_the_geo_meshes_and_electrodes_sit_where_documented():
    pytest.importorskip("gmsh")
    for h in (0.2, 0.1, 0.05):
        shipped = ElectrodeMesh.shipped(f"eit_disk_h{h}.msh")
        points, cells, edges = eit_disk_arrays(h)
        np.testing.assert_allclose(shipped.mesh.points, points, atol=1e-12)
        key = lambda c: np.sort(np.sort(c, axis=1), axis=0)  # noqa: E731
        np.testing.assert_array_equal(key(shipped.mesh.cells), key(cells))
        for a, b in zip(shipped.electrode_edges, edges):
            np.testing.assert_array_equal(np.sort(np.sort(a, axis=1), axis=0), np.sort(np.sort(b, axis=1), axis=0))
        assert shipped.num_electrodes == 16
        angles = np.degrees(np.arctan2(*shipped.electrode_centres()[:, ::-1].T)) % 360
        np.testing.assert_allclose(angles, 22.5 * np.arange(16), atol=1e-6)
        # each electrode is a chord polygon of the arc pi/16 (coverage 0.5): length within O(h^2) of it
        np.testing.assert_allclose(shipped.electrode_lengths(), math.pi / 16, rtol=h**2)


def test_mesh_without_electrode_markers_is_refused():
    with pytest.raises(MissingElectrodesError, match="electrode_1"):
        ElectrodeMesh.from_file(gmsh_meshes.shipped_mesh_path("unit_square_h0.1.msh"))
    mesh = square_electrode_mesh(4).mesh
    with pytest.raises(MissingElectrodesError, match="no electrodes"):
        ElectrodeMesh(mesh, ())
    interior = np.array([[5, 6]])  # an interior edge of the 4 x 4 square
    with pytest.raises(MissingElectrodesError, match="not a boundary edge"):
        ElectrodeMesh(mesh, (interior,))
    edge = square_electrode_mesh(4).electrode_edges[0]
    with pytest.raises(MissingElectrodesError, match="two electrodes"):
        ElectrodeMesh(mesh, (edge, edge[:, ::-1]))
    with pytest.raises(InvalidParameterError, match="ElectrodeMesh"):
        EITSimulator(mesh)


def test_bad_inputs_get_clear_errors(disk):
    with pytest.raises(ShapeMismatchError, match="mesh has 16"):
        EITSimulator(disk, n_electrodes=8)
    with pytest.raises(ShapeMismatchError, match="16 electrodes"):
        EITSimulator(disk, currents=injection_pattern("adjacent", 8))
    bad = injection_pattern("adjacent", 16)
    bad[2, 5] = 0.3
    with pytest.raises(InvalidParameterError, match="sum to zero"):
        EITSimulator(disk, currents=bad)
    with pytest.raises(InvalidParameterError, match="> 0"):
        CompleteElectrodeOperator(disk, contact_impedance=0.0)
    with pytest.raises(InvalidParameterError, match="> 0"):
        EITSimulator(disk, contact_impedance=np.r_[np.full(15, 0.01), -0.01])
    with pytest.raises(InvalidParameterError, match="NaN"):
        EITSimulator(disk, contact_impedance=np.r_[np.full(15, 0.01), np.nan])
    with pytest.raises(ShapeMismatchError, match="one value per electrode"):
        EITSimulator(disk, contact_impedance=np.full(15, 0.01))
    sim = EITSimulator(disk)
    sigma = torch.ones(sim.parameter_shape, dtype=torch.float64)
    for value in (0.0, -1.0, math.nan):
        s = sigma.clone()
        s[7] = value
        with pytest.raises(InvalidParameterError):
            sim(s)
    with pytest.raises(ShapeMismatchError, match="one value per cell"):
        sim(torch.ones(disk.mesh.num_nodes, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="sum"):
        check_currents(np.ones((1, 16)), 16)


def test_ground_reciprocity_and_energy(disk):
    """sum U = 0; transfer impedances are symmetric (reciprocity, to rounding);
    I . U = int sigma |grad u|^2 + sum (1/z) int (u - U)^2 > 0 (the power the currents deliver)."""
    sim = EITSimulator(disk, currents="adjacent", measurements="electrodes")
    sigma = random_sigma(sim)
    U = sim.electrode_voltages(sigma)
    assert U.sum(dim=1).abs().max() < 1e-12 * U.abs().max()
    currents = torch.as_tensor(sim.currents)
    transfer = currents @ U.T  # [a, b] = I_a . U(I_b)
    assert (transfer - transfer.T).abs().max() < 1e-12 * transfer.abs().max()
    x = sim.fields(sigma)
    op = sim.operator
    energy = (x * op.apply(sigma, x)).sum(-1)  # the ground term vanishes since sum U = 0
    power = (currents * U).sum(-1)
    assert torch.allclose(energy, power, rtol=1e-12) and bool((power > 0).all())


def test_scaling_sigma_and_impedance_together_scales_voltages(disk):
    """(alpha sigma, z / alpha) -> U / alpha exactly (the CEM is homogeneous of degree -1 in (sigma, 1/z))."""
    sigma = random_sigma(EITSimulator(disk))
    U1 = EITSimulator(disk, contact_impedance=0.02)(sigma)
    U3 = EITSimulator(disk, contact_impedance=0.02 / 3.0)(3.0 * sigma)
    assert torch.allclose(U3, U1 / 3.0, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("conductivity_on", ["cell", "node"])
def test_adjoint_jacobian_matches_autograd_and_finite_differences(disk, conductivity_on):
    sim = EITSimulator(disk, currents="opposite", conductivity_on=conductivity_on)
    sigma = random_sigma(sim, 1)
    J = sim.jacobian(sigma)
    assert J.shape == (8 * 16, sim.parameter_shape[0])
    w = torch.randn(8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s = sigma.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((sim(s) * w).sum(), s)
    assert torch.allclose(J.T @ w.reshape(-1), g, rtol=1e-10, atol=1e-13 * g.abs().max())
    # central difference along a random direction: O(eps^2) truncation, here far below 1e-6
    dm = torch.randn_like(sigma, generator=torch.Generator().manual_seed(1)) * 0.1
    eps = 1e-4
    fd = (sim(sigma + eps * dm) - sim(sigma - eps * dm)).reshape(-1) / (2 * eps)
    assert torch.allclose(J @ dm, fd, rtol=1e-6, atol=1e-9 * fd.abs().max())


def test_continuum_model_matches_the_analytic_solution_on_the_disk():
    """sigma = 1, g = cos(k theta): u = r^k cos(k theta) / k; at boundary nodes the P1 error on h = 0.05
    is a few 1e-4 (O(h^2) with the polygonal boundary), far below the solution's size 1/k."""
    mesh = ElectrodeMesh.shipped("eit_disk_h0.05.msh").mesh
    nodes = mesh.boundary_nodes()
    theta = np.arctan2(mesh.points[nodes, 1], mesh.points[nodes, 0])
    g = np.stack([np.cos(k * theta) for k in (1, 2, 3)])
    sim = ContinuumEITSimulator(mesh, g)
    u = sim(torch.ones(mesh.num_cells, dtype=torch.float64)).numpy()
    r = np.hypot(*mesh.points[nodes].T)
    exact = np.stack([r**k * np.cos(k * theta) / k for k in (1, 2, 3)])
    err = np.abs(u - (exact - exact.mean(axis=1, keepdims=True)))
    assert err.max() < 2e-3
    with pytest.raises(InvalidParameterError, match="integrate"):
        ContinuumEITSimulator(mesh, np.ones((1, nodes.size)))
    with pytest.raises(ShapeMismatchError, match="boundary node"):
        ContinuumEITSimulator(mesh, np.ones((1, nodes.size + 1)))


def test_module_conversions_convert_the_operator_too(disk):
    """``sim.to(...)`` / ``.float()`` / ``.cuda()`` must convert the P1/electrode tensors with the buffers (else
    autograd fails with a device or dtype mismatch): a float32 round trip, then float64 gradients as before."""
    sim = EITSimulator(disk).float()
    tensors = [v for v in vars(sim.operator).values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert len(tensors) >= 3 and all(t.dtype == torch.float32 for t in tensors)
    s32 = random_sigma(sim).float().requires_grad_(True)
    (g32,) = torch.autograd.grad((sim(s32) * torch.ones(16, 16)).sum() + sim(s32)[0, 2], s32)
    assert g32.dtype == torch.float32 and torch.isfinite(g32).all()
    sim = sim.double()
    sigma = random_sigma(sim).requires_grad_(True)
    w = torch.randn(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    (g,) = torch.autograd.grad((sim(sigma) * w).sum(), sigma)  # (adjacent differences sum to 0 per pattern)
    assert torch.allclose(g, sim.jacobian(sigma.detach()).T @ w.reshape(-1), rtol=1e-10, atol=1e-14)
