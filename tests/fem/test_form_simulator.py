"""FormSimulator: a DOLFINx variational problem written in UFL as a differentiable simulator.

* the P1 Poisson problem agrees with physinv's own P1 simulator on the same mesh
  (states and gradients to round-off);
* the nonlinear example passes the Taylor test, the dot-product test of its
  linearization (forward mode vs reverse mode) and gradcheck;
* batches of controls, experiments, functionals, constant controls, PETSc options;
* clear errors for user mistakes;
* the example of docs/your_own_pde.md runs as it stands.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, MissingExtraError, ShapeMismatchError
from physinv.core.verify import gradcheck_model, jacobian_dot_test, taylor_test
from physinv.fem import FormSimulator, NewtonError

DOC = Path(__file__).resolve().parents[2] / "docs" / "your_own_pde.md"


def _rng(seed):
    return torch.Generator().manual_seed(seed)


def _randn(shape, seed):
    return torch.randn(shape, generator=_rng(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def ufl(dolfinx):
    import ufl

    return ufl


@pytest.fixture(scope="module")
def square(dolfinx):
    from dolfinx import fem, mesh
    from mpi4py import MPI

    msh = mesh.create_unit_square(MPI.COMM_SELF, 4, 4)
    return msh, fem.functionspace(msh, ("Lagrange", 1)), fem.functionspace(msh, ("DG", 0))


@pytest.fixture(scope="module")
def example(dolfinx):
    from physinv.problems.forms.examples import nonlinear_diffusion, smooth_log_kappa

    sim = nonlinear_diffusion()
    return sim, smooth_log_kappa(sim)


# --------------------------------------------------------------------------
# agreement with the built-in P1 Poisson simulator


def test_p1_poisson_matches_physinv_p1_simulator(dolfinx, ufl):
    from dolfinx import fem

    from physinv.discretize import P1PoissonOperator, TriMesh
    from physinv.fem import cell_dofs, create_triangle_mesh, node_dofs
    from physinv.problems.poisson import PoissonSimulator

    mesh = TriMesh.unit_square(8, diagonal="left")
    op = P1PoissonOperator(mesh)
    xy = torch.from_numpy(mesh.points)
    sources = torch.stack([torch.ones(mesh.num_nodes, dtype=torch.float64), 10 * xy[:, 0] * xy[:, 1]])
    g = xy[:, 1] + 0.5 * xy[:, 0] ** 2
    reference = PoissonSimulator(op, sources, dirichlet=g.clone())
    centers = xy[op.cells].mean(dim=1)
    kappa = 1.5 + 0.5 * torch.sin(2 * np.pi * centers[:, 0]) * torch.cos(np.pi * centers[:, 1])

    # the same mesh, P1 state, DG0 control = kappa, the sources as P1 functions (load M f)
    msh = create_triangle_mesh(mesh.points, mesh.cells)
    V, M = fem.functionspace(msh, ("Lagrange", 1)), fem.functionspace(msh, ("DG", 0))
    nodes, cells = torch.from_numpy(node_dofs(V)), torch.from_numpy(cell_dofs(M))
    f_list = []
    for s in sources:
        f = fem.Function(V)
        f.x.array[nodes.numpy()] = s.numpy()
        f_list.append(f)
    g_fn = fem.Function(V)
    g_fn.x.array[nodes.numpy()] = g.numpy()

    def residual(u, k, v, f):
        return k * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - f * v * ufl.dx

    sim = FormSimulator(V, M, residual, bcs=[(nodes[mesh.boundary_nodes()].numpy(), g_fn)], experiments=f_list)
    assert sim.linear and sim.num_operators == 1
    m = torch.empty(mesh.num_cells, dtype=torch.float64)
    m[cells] = kappa

    u_ref = reference(kappa)
    u_fs = sim(m)[:, nodes]
    sol_diff = float((u_fs - u_ref).norm() / u_ref.norm())
    assert sol_diff <= 1e-12, sol_diff

    w = _randn(u_ref.shape, 1)
    k1 = kappa.clone().requires_grad_(True)
    (w * reference(k1)).sum().backward()
    m1 = m.clone().requires_grad_(True)
    (w * sim(m1)[:, nodes]).sum().backward()
    grad_diff = float((m1.grad[cells] - k1.grad).norm() / k1.grad.norm())
    assert grad_diff <= 1e-10, grad_diff
    # linear, one operator for both sources: one factorization for forward and adjoint solves
    assert sim.calls["factorizations"] == 1 and sim.calls["newton_iterations"] == 2
    print(f"P1 Poisson vs physinv: solution {sol_diff:.2e}, gradient {grad_diff:.2e}")


# --------------------------------------------------------------------------
# the verification ladder on the nonlinear example


def test_nonlinear_example_taylor_dot_gradcheck(example):
    sim, m0 = example
    assert not sim.linear and sim.obs_shape == (5,)
    w = _randn(5, 0)
    dm = 0.2 * m0 * _randn(m0.shape, 1)
    taylor = taylor_test(lambda m: (w * sim(m)).sum() + 0.5 * (sim(m) ** 2).sum(), m0, dm)
    assert 1.9 <= taylor.slope <= 2.1, str(taylor)
    direction = _randn(m0.shape, 2)
    dot = jacobian_dot_test(sim, m0, direction, w)
    assert dot <= 1e-10, dot
    # forward mode against central differences (the dot test alone would pass two consistent wrong products)
    from physinv.core.autodiff import jvp

    h = 1e-6
    with torch.no_grad():
        fd = (sim(m0 + h * direction) - sim(m0 - h * direction)) / (2 * h)
    torch.testing.assert_close(jvp(sim, m0, direction), fd, rtol=1e-6, atol=1e-9)
    assert gradcheck_model(sim, m0) is True
    print(f"nonlinear example: Taylor slope {taylor.slope:.4f}, dot mismatch {dot:.2e}")


def test_p1_control_under_exp_has_exact_discrete_derivatives(dolfinx, ufl, square):
    """F and its derivatives share one quadrature rule (pin_quadrature_degree): without it UFL integrates
    exp(m) grad u.grad v with degree 3 but d/dm of it with degree 4, and J dm missed central differences
    of the forward map by ~1e-4 (relative) for a P1 control."""
    from dolfinx import fem

    from physinv.core.autodiff import jvp

    msh, V, _ = square
    P1 = fem.functionspace(msh, ("Lagrange", 1))
    sim = FormSimulator(V, P1, _poisson(ufl), bcs=[("boundary", 0.0)])
    m0 = sim.interpolate_control(lambda x: 0.3 + 0.5 * np.sin(2 * np.pi * x[0]))
    d = _randn(m0.shape, 5)
    h = 1e-6
    with torch.no_grad():
        fd = (sim(m0 + h * d) - sim(m0 - h * d)) / (2 * h)
    J = jvp(sim, m0, d)
    assert float((J - fd).norm() / J.norm()) < 1e-7


def test_registered_example_is_in_the_registry(dolfinx):
    from physinv.core.simulator import registered_simulators
    from physinv.core.verification import verify_simulator

    assert "form-nonlinear-diffusion" in registered_simulators()
    result = verify_simulator("form-nonlinear-diffusion")
    assert result["passed"], result


def test_warm_start_continues_from_the_previous_state(dolfinx, ufl, square):
    """Newton from the last solved state: the same solution to the Newton tolerance, fewer iterations."""
    _, V, M = square

    def residual(u, m, v):
        return ufl.exp(m) * (1 + u**2) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - 10 * v * ufl.dx

    sims = {warm: FormSimulator(V, M, residual, bcs=[("boundary", 0.0)], observe="state", rtol=1e-12, atol=1e-12,
                                warm_start=warm) for warm in (False, True)}
    m0 = 0.1 * _randn(sims[False].num_controls, 7)
    step = 0.02 * _randn(sims[False].num_controls, 8)
    for sim in sims.values():
        sim(m0)
        sim.calls["newton_iterations"] = 0
    cold, warm = (sims[w](m0 + step) for w in (False, True))
    assert float((warm - cold).abs().max() / cold.abs().max()) < 1e-10
    assert sims[True].calls["newton_iterations"] < sims[False].calls["newton_iterations"]
    sims[True].clear_cache()  # forgets the state to continue from: a cold start again
    sims[True].calls["newton_iterations"] = 0
    sims[True](m0 + step)
    assert sims[True].calls["newton_iterations"] == sims[False].calls["newton_iterations"]


def test_batch_of_controls_matches_single_solves(example):
    sim, m0 = example
    batch = torch.stack([m0, 0.5 * m0, m0 + 0.1])
    out = sim(batch)
    assert out.shape == (3, 5)
    for b in range(3):
        torch.testing.assert_close(out[b], sim(batch[b]), rtol=0, atol=1e-14)
    w = _randn((3, 5), 3)
    mb = batch.clone().requires_grad_(True)
    (w * sim(mb)).sum().backward()
    for b in range(3):
        mi = batch[b].clone().requires_grad_(True)
        (w[b] * sim(mi)).sum().backward()
        torch.testing.assert_close(mb.grad[b], mi.grad, rtol=1e-12, atol=1e-14)
    assert jacobian_dot_test(sim, batch, _randn(batch.shape, 4), w) <= 1e-10


def test_linear_detection_solver_options_and_experiments(dolfinx, ufl, square):
    """Three experiments (source, Dirichlet value on x = 0) share one factorization; CG gives what LU gives."""
    msh, V, M = square
    x = ufl.SpatialCoordinate(msh)

    def residual(u, m, v, s):
        return ufl.exp(m) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx + u * v * ufl.dx - s[0] * v * ufl.dx

    def bcs(s):
        return [(lambda x: np.isclose(x[0], 0.0), s[1])]

    experiments = [(1.0, 0.0), (10 * x[0], 1.0), (5 * x[1] ** 2, -2.0)]
    lu = FormSimulator(V, M, residual, bcs=bcs, experiments=experiments)
    cg = FormSimulator(V, M, residual, bcs=bcs, experiments=experiments,
                       petsc_options={"ksp_type": "cg", "pc_type": "jacobi", "ksp_rtol": 1e-14, "ksp_atol": 0.0,
                                      "ksp_max_it": 2000})
    assert lu.linear and lu.num_operators == 1
    m = 0.3 * _randn(lu.num_controls, 5)
    out = lu(m)
    assert out.shape == (3, lu.num_states)
    on_left = np.isclose(lu.state_coordinates[:, 0], 0.0)
    np.testing.assert_allclose(out[:, on_left].numpy(), np.array([0.0, 1.0, -2.0])[:, None] * np.ones(on_left.sum()))
    torch.testing.assert_close(cg(m), out, rtol=1e-10, atol=1e-12)
    assert lu.calls["factorizations"] == 1
    assert jacobian_dot_test(lu, m, _randn(m.shape, 6), _randn(out.shape, 7)) <= 1e-10
    assert lu.calls["factorizations"] == 1  # the tangent and adjoint solves at m reused it
    assert gradcheck_model(lu, m) is True
    with pytest.warns(UserWarning, match="not affine in u"):
        FormSimulator(V, M, lambda u, m, v: ufl.exp(m) * (1 + u ** 2) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
                      - v * ufl.dx, bcs=[("boundary", 0.0)], linear=True)


def test_functional_observation_and_constant_controls_on_a_gmsh_mesh(dolfinx, ufl):
    """k = 2 constants, a scalar functional that depends on m too (explicit dJ/dm term), a shipped gmsh disk."""
    pytest.importorskip("meshio")
    from dolfinx import fem

    from physinv.discretize import TriMesh
    from physinv.fem import create_triangle_mesh

    mesh = TriMesh.shipped("eit_disk_h0.2.msh")
    msh = create_triangle_mesh(mesh.points, mesh.cells)
    V = fem.functionspace(msh, ("Lagrange", 1))
    x = ufl.SpatialCoordinate(msh)

    def residual(u, m, v):
        return (ufl.exp(m[0]) * ufl.inner(ufl.grad(u), ufl.grad(v)) + u ** 3 * v - m[1] * (1 + x[0]) * v) * ufl.dx

    def functional(u, m):
        return (u ** 2 + m[1] ** 2 * u) * ufl.dx

    sim = FormSimulator(V, 2, residual, bcs=[("boundary", 0.0)], observe=functional)
    assert not sim.linear and sim.obs_shape == ()
    m0 = torch.tensor([0.2, 3.0], dtype=torch.float64)
    assert sim(m0).shape == ()
    dm = torch.tensor([0.3, -0.5], dtype=torch.float64)
    assert 1.9 <= taylor_test(sim, m0, dm).slope <= 2.1
    assert jacobian_dot_test(sim, m0, dm, torch.tensor(1.3, dtype=torch.float64)) <= 1e-10
    assert gradcheck_model(sim, m0) is True
    # a list of functionals gives a vector observation
    both = FormSimulator(V, 2, residual, bcs=[("boundary", 0.0)],
                         observe=lambda u, m: [functional(u, m), u * ufl.dx])
    assert both(m0).shape == (2,)
    torch.testing.assert_close(both(m0)[0], sim(m0), rtol=1e-13, atol=0)


def test_point_evaluation_is_exact_for_vector_p2(dolfinx, square):
    from dolfinx import fem

    from physinv.fem import point_evaluation_matrix

    msh, _, _ = square
    W = fem.functionspace(msh, ("Lagrange", 2, (2,)))
    w = fem.Function(W)
    w.interpolate(lambda x: np.stack([x[0] ** 2 + x[1], 3 * x[0] * x[1]]))
    pts = np.array([[0.1, 0.2], [0.55, 0.9], [1.0, 0.3], [0.0, 0.0]])
    P = point_evaluation_matrix(W, pts)
    values = (P @ w.x.array).reshape(-1, 2)
    expected = np.stack([pts[:, 0] ** 2 + pts[:, 1], 3 * pts[:, 0] * pts[:, 1]], axis=1)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-13)


# --------------------------------------------------------------------------
# clear errors


def _poisson(ufl):
    def residual(u, m, v):
        return ufl.exp(m) * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - v * ufl.dx

    return residual


def test_control_not_in_the_residual_is_refused(dolfinx, ufl, square):
    from dolfinx import fem

    msh, V, M = square
    kappa = fem.Function(M)  # a Function of the user's own, not the m the residual gets
    with pytest.raises(InvalidParameterError, match="the residual does not depend on the control m"):
        FormSimulator(V, M, lambda u, m, v: kappa * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - v * ufl.dx,
                      bcs=[("boundary", 0.0)])
    with pytest.raises(InvalidParameterError, match="the residual does not depend on the control m"):
        FormSimulator(V, 3, lambda u, m, v: ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - v * ufl.dx,
                      bcs=[("boundary", 0.0)])
    with pytest.raises(InvalidParameterError, match="must return a ufl.Form"):
        FormSimulator(V, M, lambda u, m, v: ufl.exp(m) * v, bcs=[("boundary", 0.0)])


def test_shape_dtype_and_value_errors(dolfinx, ufl, square):
    msh, V, M = square
    sim = FormSimulator(V, M, _poisson(ufl), bcs=[("boundary", 0.0)])
    n = sim.num_controls
    with pytest.raises(ShapeMismatchError, match=rf"expected \({n},\) or \(batch, {n}\)"):
        sim(torch.zeros(n + 1, dtype=torch.float64))
    with pytest.raises(ShapeMismatchError, match="expected"):
        sim(torch.zeros(2, 2, n, dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="float64"):
        sim(torch.zeros(n, dtype=torch.float32))
    bad = torch.zeros(n, dtype=torch.float64)
    bad[3] = float("nan")
    with pytest.raises(InvalidParameterError, match="NaN"):
        sim(bad)
    with pytest.raises(ShapeMismatchError, match=r"\(n_points, 2\)"):
        FormSimulator(V, M, _poisson(ufl), bcs=[("boundary", 0.0)], observe=np.zeros((3, 3)))


def test_sensors_outside_the_mesh_are_refused(dolfinx, ufl, square):
    msh, V, M = square
    points = np.array([[0.5, 0.5], [1.5, 0.2], [0.3, -0.1]])
    with pytest.raises(InvalidParameterError, match=r"2 sensor point\(s\) lie outside the mesh: 1 at \(1.5, 0.2\)"):
        FormSimulator(V, M, _poisson(ufl), bcs=[("boundary", 0.0)], observe=points)


def test_newton_failures_report_the_history(dolfinx, ufl, square):
    msh, V, _ = square

    def bratu(u, m, v):  # -lap u = lambda e^u has no solution for lambda > 6.8 on the unit square
        return ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx - m[0] * ufl.exp(u) * v * ufl.dx

    sim = FormSimulator(V, 1, bratu, bcs=[("boundary", 0.0)])
    with pytest.raises(NewtonError, match=r"Newton diverged.*history") as info:
        sim(torch.tensor([100.0], dtype=torch.float64))
    assert len(info.value.history) >= 2 and info.value.history[-1] > 1e8 * info.value.history[0]
    capped = FormSimulator(V, 1, bratu, bcs=[("boundary", 0.0)], max_it=2)
    with pytest.raises(NewtonError, match=r"did not converge in max_it=2 iterations") as info:
        capped(torch.tensor([3.0], dtype=torch.float64))
    assert len(info.value.history) == 3
    assert float(sim(torch.tensor([3.0], dtype=torch.float64)).abs().max()) > 0  # solvable below the fold


def test_missing_dolfinx_names_the_fem_extra(monkeypatch):
    from physinv.core.simulator import get_simulator_spec

    spec = get_simulator_spec("form-nonlinear-diffusion")  # registry look-up needs no DOLFINx
    monkeypatch.setitem(sys.modules, "dolfinx", None)
    monkeypatch.setitem(sys.modules, "dolfinx_solver", None)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        FormSimulator(None, 1, lambda u, m, v: None)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        spec.make_example(torch.float64, torch.device("cpu"))


def test_importing_the_package_and_the_registry_does_not_import_dolfinx():
    code = ("import sys, physinv.fem, physinv.problems.forms\n"
            "from physinv.core.simulator import registered_simulators\n"
            "assert {'form-nonlinear-diffusion', 'form-elasticity', 'form-advection-diffusion'} <= "
            "set(registered_simulators())\n"
            "print(sorted(m for m in ('dolfinx', 'ufl', 'petsc4py', 'basix') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# the documentation's example


def _doc_blocks() -> list[str]:
    """Every ```python block of the page: the inversion example first, then the usage snippets."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _doc_code() -> str:
    blocks = _doc_blocks()
    assert len(blocks) >= 1 and "minimize_gauss_newton" in blocks[0], "the page opens with the inversion example"
    assert len([ln for ln in blocks[0].splitlines() if ln.strip()]) < 40
    return blocks[0]


def test_docs_example_runs(dolfinx, capsys):
    scope: dict = {}
    exec(compile(_doc_code(), str(DOC), "exec"), scope)
    result, m_true, problem = scope["result"], scope["m_true"], scope["problem"]
    rel = float((result.m - m_true).norm() / m_true.norm())
    assert rel < 0.6  # measured 0.423; the start m = 0 has 1
    assert 1.9 <= scope["check"].slope <= 2.1  # measured 1.994
    assert 0.7 < problem.misfit_over_noise(result.m) < 1.3
    assert result.calls.linearized > 0  # Gauss-Newton-CG used forward-mode products
    assert "relative error of m" in capsys.readouterr().out


@pytest.mark.parametrize("index", range(1, len(_doc_blocks())))
def test_docs_usage_snippets_run(dolfinx, index, capsys):
    """Each further ```python block (the form library's usage snippets) runs as it stands, in a fresh scope."""
    code = _doc_blocks()[index]
    assert len([ln for ln in code.splitlines() if ln.strip()]) < 25, "a usage snippet stays short"
    exec(compile(code, f"{DOC}[block {index}]", "exec"), {})
    assert capsys.readouterr().out.strip(), "each snippet prints what it computed"
