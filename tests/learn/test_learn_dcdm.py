import math

import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.discretize import FDPoissonOperator, UniformGrid
from physinv.learn.dcdm_net import DCDMNet, dcdm_loss
from physinv.learn.ritz import lanczos_ritz, make_training_set, ritz_rhs
from physinv.linalg.solvers import DirectSolver


def _laplacian(n=8):
    grid = UniformGrid((n, n))
    op = FDPoissonOperator(grid)
    kappa = torch.ones(grid.node_shape, dtype=torch.float64)
    return op, kappa, op.bind(kappa), op.assemble(kappa).toarray()


def test_network_shapes_and_errors():
    net = DCDMNet(ndim=3, channels=4, blocks=1)
    assert net(torch.randn(2, 8, 6, 4)).shape == (2, 8, 6, 4)
    with pytest.raises(ShapeMismatchError, match="even"):
        net(torch.randn(1, 7, 8, 8))
    with pytest.raises(ShapeMismatchError, match="grid axes"):
        net(torch.randn(8, 8, 8))
    with pytest.raises(InvalidParameterError):
        DCDMNet(ndim=1)


def test_loss_vanishes_for_the_exact_inverse_up_to_scale():
    op, kappa, matvec, _ = _laplacian()
    b = torch.randn((3,) + op.state_shape, dtype=torch.float64)
    exact = DirectSolver().prepare(op, kappa)(b)
    assert float(dcdm_loss(matvec, b, 7.5 * exact)) <= 1e-20
    assert float(dcdm_loss(matvec, b, b)) > 1e-3  # the identity is not the inverse


def test_full_lanczos_recovers_the_spectrum():
    op, _, matvec, dense = _laplacian(6)
    n = dense.shape[0]
    values, vectors = lanczos_ritz(matvec, op.state_shape, n, torch.Generator().manual_seed(0))
    # started from A x, Lanczos lives in range(A): all distinct eigenvalues reachable
    true = torch.linalg.eigvalsh(torch.from_numpy(dense))
    assert abs(float(values.min() - true.min())) <= 1e-8 * float(true.max())
    assert abs(float(values.max() - true.max())) <= 1e-8 * float(true.max())
    v = vectors[0].reshape(-1)
    residual = torch.from_numpy(dense) @ v - values[0] * v
    assert float(residual.norm()) <= 1e-8 * float(true.max())


def test_ritz_rhs_are_normalized_and_weighted_to_the_low_end():
    op, _, matvec, dense = _laplacian(8)
    gen = torch.Generator().manual_seed(1)
    values, vectors = lanczos_ritz(matvec, op.state_shape, 40, gen)
    b = ritz_rhs(values, vectors, 200, gen)
    assert torch.allclose(b.reshape(200, -1).norm(dim=1), torch.ones(200, dtype=b.dtype), atol=1e-12)
    coeff = b.reshape(200, -1) @ vectors.reshape(len(values), -1).T
    half = len(values) // 2
    low, high = (coeff[:, :half] ** 2).sum(), (coeff[:, half:] ** 2).sum()
    assert float(low / high) > 20  # weights 9:1 in amplitude -> 81:1 in energy, minus sampling noise


def test_training_set_is_saved_with_its_parameters(tmp_path):
    op, _, matvec, _ = _laplacian(8)
    data = make_training_set(matvec, op.state_shape, 10, 20, seed=3, path=tmp_path / "d.pt",
                             params={"grid": 8})
    saved = torch.load(tmp_path / "d.pt", weights_only=False)
    assert saved["seed"] == 3 and saved["params"] == {"grid": 8} and saved["rhs"].shape == (10, 9, 9)
    assert torch.equal(saved["rhs"], data["rhs"])


def test_short_training_lowers_the_loss():
    """A few hundred Adam steps on a 16^2 Laplacian must cut the unsupervised loss substantially."""
    torch.manual_seed(0)
    grid = UniformGrid((15, 15))  # 16 x 16 nodes, even for the pooling level
    op = FDPoissonOperator(grid)
    kappa = torch.ones(grid.node_shape, dtype=torch.float32)
    matvec = op.bind(kappa)
    data = make_training_set(op.bind(kappa.double()), grid.node_shape, 64, 60, seed=0)["rhs"]
    net = DCDMNet(ndim=2, channels=8, blocks=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for step in range(150):
        batch = data[(step * 16) % 64:(step * 16) % 64 + 16]
        loss = dcdm_loss(matvec, batch, net(batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert math.isfinite(last) and last < 0.5 * first


def test_network_is_invariant_to_the_scale_of_its_input():
    net = DCDMNet(ndim=3, channels=4, blocks=1)
    r = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(net(1e-4 * r), net(r), rtol=1e-4, atol=1e-5)


def _trained_checkpoint(tmp_path, ndim=3):
    from physinv.learn.dcdm_net import network_signature
    from physinv.learn.trainer import Trainer

    torch.manual_seed(0)
    net = DCDMNet(ndim=ndim, channels=4, blocks=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    b = torch.randn((2,) + (8,) * ndim)
    trainer = Trainer(net, lambda m, x: (m(x) ** 2).mean(), optimizer=opt, signature=network_signature(net),
                      checkpoint_path=tmp_path / "net.pt", device="cpu")
    trainer.fit_steps(lambda step: b, 2)
    return net, tmp_path / "net.pt"


def test_network_checkpoint_round_trip_and_dimension_mismatch(tmp_path):
    from physinv.learn.dcdm_net import load_dcdm_network
    from physinv.learn.checkpoint import CheckpointMismatchError

    net, path = _trained_checkpoint(tmp_path)
    loaded = load_dcdm_network(path, ndim=3)
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))
    with pytest.raises(CheckpointMismatchError, match="3D grids; this grid is 2D"):
        load_dcdm_network(path, ndim=2)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(InvalidParameterError, match="not a DCDM network checkpoint"):
        load_dcdm_network(tmp_path / "other.pt", ndim=3)


def test_networks_have_no_bias_by_default_so_q_is_homogeneous():
    """q(c r) = c q(r) for c > 0: no part of the direction is independent of the residual."""
    torch.manual_seed(1)
    net = DCDMNet(ndim=2, channels=4, blocks=1)
    r = torch.randn(1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(3.0 * r), net(r), rtol=1e-5, atol=1e-6)  # unit-RMS input
        assert float(net(torch.zeros(1, 8, 8)).abs().max()) == 0.0


def test_learned_solver_inside_the_poisson_simulator_keeps_its_taylor_test():
    """A network direction (odd grid, padded) with the stall fallback: exact solves, slope-2 Taylor test."""
    from physinv.core.verify import taylor_test
    from physinv.learn.dcdm_net import NetworkDirection
    from physinv.linalg.dcdm import DCDMSolver, StallFallback
    from physinv.problems.poisson.simulator import PoissonSimulator

    torch.manual_seed(2)
    grid = UniformGrid((12, 10))  # 13 x 11 nodes: both axes odd
    op = FDPoissonOperator(grid, neumann_sides=("y1",))
    x, y = grid.coordinates()
    sources = torch.stack([torch.ones_like(x), 10 * x * y])
    solver = DCDMSolver(NetworkDirection(DCDMNet(ndim=2, channels=4, blocks=1)), rtol=1e-12, maxiter=2000,
                        fallback=StallFallback())
    learned = PoissonSimulator(op, sources, dirichlet=x, solver=solver)
    direct = PoissonSimulator(op, sources, dirichlet=x)
    kappa = 1.5 + 0.5 * torch.sin(2 * math.pi * x) * torch.cos(math.pi * y)
    torch.testing.assert_close(learned(kappa), direct(kappa), rtol=1e-9, atol=1e-12)
    dm = torch.cos(3 * x) * y
    result = taylor_test(lambda m: (learned(m) ** 2).sum(), kappa, dm, h0=1e-2)
    assert 1.9 <= result.slope <= 2.1
    assert solver.iterations and len(solver.switched_at) == len(solver.iterations)


def test_network_direction_refuses_another_grid_dimension():
    from physinv.learn.dcdm_net import NetworkDirection

    op = FDPoissonOperator(UniformGrid((7, 7)))
    with pytest.raises(ShapeMismatchError, match="3D grids"):
        NetworkDirection(DCDMNet(ndim=3, channels=2, blocks=1)).prepare(op)
