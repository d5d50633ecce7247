"""Linear solves: CG/PCG, AMG and direct baselines, DCDM, SOR, implicit differentiation."""

from physinv.linalg.cg import CGResult, cg
from physinv.linalg.dcdm import DCDMSolver, StallFallback, dcdm
from physinv.linalg.implicit import implicit_solve
from physinv.linalg.solvers import CGSolver, DirectSolver, make_solver

__all__ = ["CGResult", "CGSolver", "DCDMSolver", "StallFallback", "dcdm", "DirectSolver", "cg", "implicit_solve", "make_solver"]
