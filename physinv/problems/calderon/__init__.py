"""The Calderón problem: conductivity from Dirichlet-to-Neumann data on the unit square.

Modules: :mod:`.simulator` (:class:`CalderonSimulator`, registered as
``calderon-fd``; the sine-series prior :func:`draw_conductivity`; trig boundary
inputs) and :mod:`.data` (data set ``calderon``, network inputs).
"""

from physinv.core.registry import register_docs_figures
from physinv.problems.calderon import data  # noqa: F401  (registers the data set)
from physinv.problems.calderon.simulator import CalderonSimulator, draw_conductivity, trig_patterns

register_docs_figures("calderon", "physinv.problems.calderon.plots:draw_docs_figures", ["calderon_prior.png"],
                      "prior draws and their Dirichlet-to-Neumann data")

__all__ = ["CalderonSimulator", "draw_conductivity", "trig_patterns"]
