"""The Calderón problem: conductivity from Dirichlet-to-Neumann data on the unit square.

Modules: :mod:`.simulator` (:class:`CalderonSimulator`, registered as
``calderon-fd``; the sine-series prior :func:`draw_conductivity`; trig boundary
inputs) and :mod:`.data` (data set ``calderon``, network inputs).
"""

from physinv.problems.calderon import data  # noqa: F401  (registers the data set)
from physinv.problems.calderon.simulator import CalderonSimulator, draw_conductivity, trig_patterns

__all__ = ["CalderonSimulator", "draw_conductivity", "trig_patterns"]
