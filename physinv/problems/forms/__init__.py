"""PDEs written by the user in UFL, run as simulators by :class:`physinv.fem.FormSimulator`.

Modules: :mod:`.examples` (the nonlinear diffusion example, registered as
``form-nonlinear-diffusion`` so that ``physinv verify`` runs the Taylor,
dot-product and gradcheck ladder on a DOLFINx form simulator).  Registration
does not import DOLFINx; the example factory does, when called, and without
DOLFINx it raises :class:`~physinv.core.errors.MissingExtraError` naming
``physinv[fem]``.
"""

from physinv.problems.forms.examples import nonlinear_diffusion

__all__ = ["nonlinear_diffusion"]
