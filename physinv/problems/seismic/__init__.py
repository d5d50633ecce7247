"""Seismic imaging: the 2D acoustic wave equation on Deepwave, OpenFWI-style data, full-waveform inversion.

Modules: :mod:`.survey` (:class:`Survey`, Ricker wavelet, the OpenFWI
acquisition), :mod:`.simulator` (:class:`AcousticSimulator`, registered as
``seismic-acoustic``; its Born operator), :mod:`.velocity_families` (OpenFWI-style
velocity maps), :mod:`.data` (data sets ``openfwi-<family>``, network
preprocessing), :mod:`.fwi` (multiscale full-waveform inversion on the shared
stack), :mod:`.reference` (an independent PyTorch propagator, the engine's
cross-check), :mod:`.validate` (``physinv validate seismic``), :mod:`.metrics`
(OpenFWI's MAE / MSE / SSIM).
"""

from physinv.core.registry import register_docs_figures, register_validation
from physinv.problems.seismic import data  # noqa: F401  (registers the openfwi-* data sets)
from physinv.problems.seismic.simulator import AcousticSimulator
from physinv.problems.seismic.survey import Survey, openfwi_survey, ricker

register_validation("seismic", "physinv.problems.seismic.validate",
                    "analytic Green's function convergence, Deepwave vs an independent torch propagator, "
                    "PML reflection, Born dot-product and gradient tests")

register_docs_figures("seismic", "physinv.problems.seismic.plots:draw_docs_figures",
                      ["seismic_families.png", "seismic_shot.png"], "the velocity families and a shot gather")

__all__ = ["AcousticSimulator", "Survey", "openfwi_survey", "ricker"]
