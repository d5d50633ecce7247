"""Fluid: 2D incompressible Navier-Stokes (vorticity, periodic, Kolmogorov forcing), pseudo-spectral IF-RK4.

Modules: :mod:`.spectral` (:class:`VorticitySimulator`, registered as ``fluid-vorticity``; ``simulate``,
``simulate_trajectory``, ``taylor_green``), :mod:`.smoke` (:class:`SmokeSimulator`: smoke with obstacles on a
MAC grid, registered as ``fluid-smoke``), :mod:`.data` (data set ``ns-kolmogorov``),
:mod:`.validate` (``physinv validate fluid``).
"""

from physinv.core.registry import register_docs_figures, register_validation
from physinv.problems.fluid import data  # noqa: F401  (registers the ns-kolmogorov data set)
from physinv.problems.fluid.smoke import SmokeSimulator
from physinv.problems.fluid.spectral import VorticitySimulator, simulate, simulate_trajectory, taylor_green

register_validation("fluid", "physinv.problems.fluid.validate",
                    "Taylor-Green vortex vs analytic decay, IF-RK4 temporal order, Kolmogorov enstrophy/energy budgets")

register_docs_figures("fluid", "physinv.problems.fluid.validate:draw_docs_figures", ["fluid_jaxcfd.png"],
                      "physinv vs jax-cfd at 128^2")

__all__ = ["SmokeSimulator", "VorticitySimulator", "simulate", "simulate_trajectory", "taylor_green"]
