"""Linear solves: CG/PCG, AMG and direct baselines, implicit differentiation."""

from physinv.linalg.cg import CGResult, cg
from physinv.linalg.implicit import implicit_solve
from physinv.linalg.solvers import CGSolver, DirectSolver, make_solver

__all__ = ["CGResult", "CGSolver", "DirectSolver", "cg", "implicit_solve", "make_solver"]
