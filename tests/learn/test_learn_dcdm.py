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
