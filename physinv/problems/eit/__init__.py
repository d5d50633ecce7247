"""Electrical impedance tomography: conductivity from electrode voltages (complete electrode model).

Modules: :mod:`.electrodes` (:class:`ElectrodeMesh`), :mod:`.mesh` (the gmsh
disk), :mod:`.operators` (CEM and continuum P1 operators), :mod:`.simulator`
(:class:`EITSimulator`, registered as ``eit-cem``; current and measurement
patterns), :mod:`.phantoms`, :mod:`.data` (data set ``eit``),
:mod:`.reconstruction` (absolute and difference imaging),
:mod:`.reference` (DOLFINx CEM, lazy), :mod:`.validate`
(``physinv validate eit``), :mod:`.plots`.
"""

from physinv.core.registry import register_docs_figures, register_validation
from physinv.problems.eit import data  # noqa: F401  (registers the data set)
from physinv.problems.eit.electrodes import ElectrodeMesh, MissingElectrodesError
from physinv.problems.eit.simulator import ContinuumEITSimulator, EITSimulator, injection_pattern, measurement_pattern

register_validation("eit", "physinv.problems.eit.validate",
                    "complete electrode model vs DOLFINx on the same meshes; continuum-model rates on the disk")

register_docs_figures("eit", "physinv.problems.eit.plots:draw_docs_figures", ["eit_protocol.png"],
                      "electrode numbering and the adjacent protocol")

__all__ = ["ContinuumEITSimulator", "EITSimulator", "ElectrodeMesh", "MissingElectrodesError", "injection_pattern",
           "measurement_pattern"]
