"""Grids, finite differences, P1 finite elements in torch, meshes."""

from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.fluid import FluidPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.interpolate import GridPointInterpolator, MeshPointInterpolator, point_observation
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator

__all__ = [
    "FDPoissonOperator", "FluidPoissonOperator", "GridPointInterpolator", "MeshPointInterpolator", "P1PoissonOperator",
    "TriMesh", "UniformGrid", "point_observation",
]
