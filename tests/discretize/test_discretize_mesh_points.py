"""Barycentric point observation on triangle meshes (MeshPointInterpolator, point_observation)."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.verify import dot_product_test
from physinv.discretize import TriMesh, UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator, MeshPointInterpolator, point_observation


def _square_mesh(n=6):
    s = np.linspace(0.0, 1.0, n + 1)
    x, y = np.meshgrid(s, s, indexing="ij")
    points = np.stack([x.ravel(), y.ravel()], -1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    cells = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)])
    return TriMesh(points, cells)


def test_linear_fields_are_reproduced_exactly():
    mesh = _square_mesh()
    pts = np.random.default_rng(0).uniform(0.0, 1.0, size=(40, 2))
    obs = MeshPointInterpolator(mesh, pts)
    u = torch.from_numpy(2.0 + 3.0 * mesh.points[:, 0] - 1.5 * mesh.points[:, 1])
    exact = 2.0 + 3.0 * pts[:, 0] - 1.5 * pts[:, 1]
    assert torch.allclose(obs(u), torch.from_numpy(exact), atol=1e-13)


def test_at_nodes_it_returns_the_nodal_values_and_adjoint_passes_dot_test():
    mesh = _square_mesh()
    obs = MeshPointInterpolator(mesh, mesh.points[[0, 5, 17]])
    u = torch.randn(2, mesh.num_nodes, dtype=torch.float64)
    assert torch.allclose(obs(u), u[:, [0, 5, 17]], atol=1e-14)
    err = dot_product_test(obs, obs.adjoint, torch.randn(mesh.num_nodes, dtype=torch.float64),
                           torch.randn(3, dtype=torch.float64))
    assert err <= 1e-12


def test_gradient_flows_to_the_field():
    mesh = _square_mesh()
    obs = MeshPointInterpolator(mesh, [[0.3, 0.4]])
    u = torch.zeros(mesh.num_nodes, dtype=torch.float64, requires_grad=True)
    obs(u).sum().backward()
    assert abs(float(u.grad.sum()) - 1.0) < 1e-14  # barycentric weights sum to one
    assert int((u.grad != 0).sum()) <= 3


def test_bad_input_is_a_clear_error():
    mesh = _square_mesh()
    with pytest.raises(InvalidParameterError, match="outside the mesh"):
        MeshPointInterpolator(mesh, [[0.5, 0.5], [1.2, 0.5]])
    with pytest.raises(ShapeMismatchError, match=r"shape \(k, 2\)"):
        MeshPointInterpolator(mesh, [0.5, 0.5])
    with pytest.raises(InvalidParameterError, match="NaN"):
        MeshPointInterpolator(mesh, [[np.nan, 0.5]])
    with pytest.raises(ShapeMismatchError, match="one per node"):
        MeshPointInterpolator(mesh, [[0.5, 0.5]])(torch.zeros(3, dtype=torch.float64))


def test_point_observation_dispatches_on_the_discretization():
    assert isinstance(point_observation(UniformGrid((4, 4)), [[0.5, 0.5]]), GridPointInterpolator)
    assert isinstance(point_observation(_square_mesh(), [[0.5, 0.5]]), MeshPointInterpolator)
    with pytest.raises(InvalidParameterError, match="UniformGrid or a TriMesh"):
        point_observation("mesh", [[0.5, 0.5]])
