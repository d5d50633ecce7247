"""physinv.linalg.linear_pde: the base of Poisson, Calderon and both EIT models.

On every subclass: one cached factorization (reused by the forward and the
adjoint solve and by repeated calls with equal values, invalidated by a new
``m``, an in-place change, a dtype conversion), and ``.float()``/``.double()``/
``.to()`` converting every operator tensor.
"""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.linalg.linear_pde import LinearPDESimulator, convert_tensors
from physinv.linalg.solvers import CountingSolver, DirectSolver
from physinv.problems.calderon.simulator import CalderonSimulator
from physinv.problems.eit.simulator import ContinuumEITSimulator, EITSimulator, square_electrode_mesh
from physinv.problems.poisson import PoissonSimulator

DT = torch.float64


def _poisson_fd(solver):
    grid = UniformGrid((5, 4))
    x, y = grid.coordinates()
    return PoissonSimulator(FDPoissonOperator(grid, ("y1",)), torch.stack([torch.ones_like(x), x * y]),
                            dirichlet=x, solver=solver)


def _poisson_p1(solver):
    mesh = TriMesh.unit_square(4)
    return PoissonSimulator(P1PoissonOperator(mesh), torch.ones(2, mesh.num_nodes, dtype=DT), solver=solver)


def _calderon(solver):
    return CalderonSimulator(n=5, L=3, solver=solver)


def _eit_cem(solver):
    return EITSimulator(square_electrode_mesh(4), contact_impedance=0.1, conductivity_on="node", solver=solver)


def _eit_continuum(solver):
    mesh = TriMesh.unit_square(4)
    angle = np.arctan2(*(mesh.points[mesh.boundary_nodes()] - 0.5).T[::-1])
    return ContinuumEITSimulator(mesh, np.stack([np.cos(angle), np.sin(2 * angle)]), solver=solver)


MODELS = {"poisson-fd": _poisson_fd, "poisson-p1": _poisson_p1, "calderon": _calderon, "eit-cem": _eit_cem,
          "eit-continuum": _eit_continuum}


def _parameter(sim, seed=0, dtype=DT):
    shape = sim.parameter_shape if sim.parameter_shape else sim.operator.state_shape
    draw = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)
    return (0.5 + draw).to(dtype)


def _operator_tensors(op):
    found = []
    for value in vars(op).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        found += [t for t in items if isinstance(t, torch.Tensor)]
    return found


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_every_model_is_a_linear_pde_simulator(make):
    assert isinstance(make(None), LinearPDESimulator)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_factorization_reused_by_adjoint_and_equal_values_and_renewed_for_a_new_m(make):
    counting = CountingSolver(DirectSolver())
    sim = make(counting)
    m1, m2 = _parameter(sim, 0), _parameter(sim, 1)
    m = m1.clone().requires_grad_(True)
    y = sim(m)
    y.sum().backward()  # forward + adjoint solve
    y = y.detach()
    assert counting.prepares == 1 and counting.solves == 2
    sim(m1.clone())  # equal values in a new tensor: no new factorization
    assert counting.prepares == 1 and counting.solves == 3
    y2 = sim(m2)
    assert counting.prepares == 2
    m_in_place = m2.clone()
    sim(m_in_place)
    m_in_place.copy_(m1)  # an optimizer step in place
    y1_again = sim(m_in_place)
    assert counting.prepares == 3
    torch.testing.assert_close(y1_again, y, rtol=1e-12, atol=1e-14)  # not a stale m2 solve
    assert float((y2 - y).abs().max()) > 1e-3 * float(y.abs().max())  # the two m really differ


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_float_and_double_convert_every_operator_tensor_and_drop_the_cache(make):
    counting = CountingSolver(DirectSolver())
    sim = make(counting)
    m = _parameter(sim)
    want = sim(m)
    assert counting.prepares == 1
    sim = sim.to(torch.float32)
    assert counting.prepares == 1
    floating = [t for t in _operator_tensors(sim.operator) if t.is_floating_point()]
    assert all(t.dtype == torch.float32 for t in floating)
    assert all(b.dtype == torch.float32 for b in sim.buffers() if b.is_floating_point())
    m32 = m.float().requires_grad_(True)
    y32 = sim(m32)
    assert counting.prepares == 2  # the cache was dropped by the conversion
    (g32,) = torch.autograd.grad(y32.sum(), m32)
    assert y32.dtype == torch.float32 and g32.dtype == torch.float32 and bool(torch.isfinite(g32).all())
    # float32 round-off on O(1) data: agreement to 1e-5 of the data's size
    assert float((y32.detach().double() - want).abs().max()) <= 1e-5 * float(want.abs().max())
    sim = sim.double().cpu()
    assert all(t.dtype == DT for t in _operator_tensors(sim.operator) if t.is_floating_point())
    assert all(t.device.type == "cpu" for t in _operator_tensors(sim.operator))
    back = sim(m)
    assert back.dtype == DT and counting.prepares == 3
    # the round trip rounded the precomputed tensors to float32 (2^-24 relative) as it does every buffer
    assert float((back - want).abs().max()) <= 1e-5 * float(want.abs().max())


def test_float32_conversion_reaches_the_p1_element_data():
    """The P1 tensors the matvec uses (element stiffness and mass) are float32 after ``.float()``."""
    sim = _poisson_p1(None).float()
    assert sim.operator.ref_stiffness.dtype == torch.float32 and sim.operator.ref_mass.dtype == torch.float32
    assert sim.operator.cells.dtype == torch.int64 and sim.operator.dirichlet_mask.dtype == torch.bool


def test_cache_key_includes_the_dtype():
    counting = CountingSolver(DirectSolver())
    sim = _poisson_fd(counting)
    m = _parameter(sim)
    sim(m)
    sim(m.float().double())  # the same values after a lossy round trip differ: new factorization
    sim(m.float())  # float32 m with equal values: another dtype, another key
    assert counting.prepares == 3


def test_convert_tensors_replaces_tensors_and_lists_of_tensors_in_place():
    class Holder:
        pass

    h = Holder()
    h.a, h.b, h.c, h.n = torch.ones(2, dtype=DT), [torch.zeros(1, dtype=DT), torch.ones(3, dtype=DT)], "x", 3
    convert_tensors(h, lambda t: t.float())
    assert h.a.dtype == torch.float32 and [t.dtype for t in h.b] == [torch.float32] * 2
    assert h.c == "x" and h.n == 3


def test_bad_parameters_are_refused_before_the_factorization():
    counting = CountingSolver(DirectSolver())
    sim = _poisson_fd(counting)
    bad = _parameter(sim)
    bad[1, 1] = -1.0
    with pytest.raises(InvalidParameterError, match="kappa"):
        sim(bad)
    with pytest.raises(InvalidParameterError, match="kappa"):
        sim.solve(bad, sim.right_hand_side(_parameter(sim)))
    assert counting.prepares == 0


def test_a_subclass_must_supply_the_right_hand_side():
    grid = UniformGrid((3, 3))
    sim = LinearPDESimulator(FDPoissonOperator(grid))
    with pytest.raises(NotImplementedError, match="right_hand_side"):
        sim(torch.ones(grid.node_shape, dtype=DT))
