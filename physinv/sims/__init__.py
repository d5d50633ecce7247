"""Differentiable simulators.  Importing this package registers them all."""

from physinv.sims.calderon import CalderonSimulator
from physinv.sims.eit import ContinuumEITSimulator, EITSimulator
from physinv.sims.flame import FlameSimulator
from physinv.sims.poisson import PoissonSimulator

__all__ = ["CalderonSimulator", "ContinuumEITSimulator", "EITSimulator", "FlameSimulator", "PoissonSimulator"]
