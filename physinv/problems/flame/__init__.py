"""The 1D freely propagating premixed flame (FlamePINN-1D case 1), its speed ``s_L`` an eigenvalue.

Modules: :mod:`.model` (the equations: constants, closures, energy
residual), :mod:`.solver` (the discretized eigenvalue problem and its Newton
solve, :func:`flame_speed`), :mod:`.simulator` (:class:`FlameSimulator`,
registered as ``flame-1d``, and :func:`~.simulator.flame_fields`: implicit
adjoint), :mod:`.fit` (the classic Gauss-Newton fit of kinetic parameters),
:mod:`.pinn` (deepxde PINN, lazy), :mod:`.validate` (``physinv validate flame``).
"""

from physinv.core.registry import register_docs_figures, register_validation
from physinv.problems.flame.simulator import FlameSimulator
from physinv.problems.flame.solver import flame_speed

register_validation("flame", "physinv.problems.flame.validate",
                    "flame speed: grid-convergence order, table against the reference values")

register_docs_figures("flame", "physinv.problems.flame.plots:draw_docs_figures", ["flame_structure.png"],
                      "flame profiles at phi 0.46 and s_L(phi)")

__all__ = ["FlameSimulator", "flame_speed"]
