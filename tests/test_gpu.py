"""CPU-equals-GPU equivalence (run on a CUDA machine: pytest -m gpu)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch


from physinv.core.simulator import registered_simulators
from physinv.linalg.solvers import CGSolver

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", sorted(registered_simulators()))
def test_simulator_on_cuda_matches_cpu(name):
    cpu = registered_simulators()[name].make_example(torch.float64, torch.device("cpu"))
    gpu = registered_simulators()[name].make_example(torch.float64, torch.device("cuda"))
    out_cpu = cpu.simulator(cpu.m0)
    out_gpu = gpu.simulator(gpu.m0.cuda())
    assert out_gpu.device.type == "cuda"
    assert torch.allclose(out_gpu.cpu(), out_cpu, rtol=1e-10, atol=1e-12)


def test_matrix_free_cg_runs_on_cuda():
    from physinv.discretize import FDPoissonOperator, UniformGrid

    op = FDPoissonOperator(UniformGrid((32, 32)))
    kappa = torch.ones(op.state_shape, dtype=torch.float64, device="cuda")
    b = torch.rand(op.state_shape, dtype=torch.float64, device="cuda")
    u = CGSolver("jacobi", rtol=1e-10).prepare(op, kappa)(b)
    assert u.device.type == "cuda"
    residual = (op.apply(kappa, u) - b).norm() / b.norm()
    assert float(residual) <= 1e-9


def test_quick_case_on_cuda(tmp_path):
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "cases" / "poisson_inverse.py"), "--quick", "--device", "cuda",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["kappa_rel_l2"] <= 0.15


def test_eit_gradient_and_jacobian_on_cuda():
    """EIT after .cuda(): autograd (implicit solve on the GPU operator) and the adjoint Jacobian match the CPU."""
    from physinv.problems.eit.simulator import EITSimulator, square_electrode_mesh

    cpu = EITSimulator(square_electrode_mesh(6), contact_impedance=0.1)
    gpu = EITSimulator(square_electrode_mesh(6), contact_impedance=0.1).cuda()
    sigma = torch.linspace(0.5, 2.0, cpu.parameter_shape[0], dtype=torch.float64)
    w = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64).reshape(4, 4)
    grads = []
    for sim, s in ((cpu, sigma.clone()), (gpu, sigma.cuda())):
        s.requires_grad_(True)
        (g,) = torch.autograd.grad((sim(s) * w.to(s.device)).sum(), s)
        grads.append(g.cpu())
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=1e-14)
    assert torch.allclose(gpu.jacobian(sigma.cuda()).cpu(), cpu.jacobian(sigma), rtol=1e-10, atol=1e-14)
