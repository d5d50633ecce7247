"""The 1D freely propagating premixed flame (FlamePINN-1D case 1), its speed ``s_L`` an eigenvalue.

Modules: :mod:`.simulator` (:class:`FlameSimulator`, registered as
``flame-1d``; the Newton solver), :mod:`.fit` (the classic Gauss-Newton fit
of kinetic parameters), :mod:`.pinn` (deepxde PINN, lazy), :mod:`.validate`
(``physinv validate flame``).
"""

from physinv.core.registry import register_validation
from physinv.problems.flame.simulator import FlameSimulator, flame_speed

register_validation("flame", "physinv.problems.flame.validate",
                    "flame speed: grid-convergence order, table against the reference values")

__all__ = ["FlameSimulator", "flame_speed"]
