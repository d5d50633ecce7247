"""PDEs written in UFL, run as simulators by :class:`physinv.fem.FormSimulator` and
:class:`physinv.fem.TimeSteppingFormSimulator`: a small library of convenience forms.

Each module is one PDE, a factory returning a ready simulator (its docstring gives
the strong form, weak form, units and the control):

* :mod:`.diffusion`: :func:`nonlinear_diffusion`, ``-div(e^m q(u) grad u) = f``, log-coefficient ``m``;
* :mod:`.elasticity`: :func:`linear_elasticity`, plane strain, Young's modulus ``E = E_ref e^m``;
* :mod:`.advection_diffusion`: :func:`advection_diffusion_reaction`, time-dependent
  ``du/dt - div(D grad u) + b . grad u + r u = m(x) g(t)``, source ``m`` (theta scheme);
* :mod:`.examples`: their tiny registered examples ``form-nonlinear-diffusion``,
  ``form-elasticity`` and ``form-advection-diffusion``, so that ``physinv verify`` runs
  the Taylor, dot-product and gradcheck ladder on each.

Registration does not import DOLFINx; the factories do, when called, and without
DOLFINx they raise :class:`~physinv.core.errors.MissingExtraError` naming ``physinv[fem]``.
"""

from physinv.problems.forms.advection_diffusion import advection_diffusion_reaction
from physinv.problems.forms.diffusion import nonlinear_diffusion
from physinv.problems.forms.elasticity import linear_elasticity
from physinv.problems.forms.examples import smooth_log_kappa

__all__ = ["advection_diffusion_reaction", "linear_elasticity", "nonlinear_diffusion", "smooth_log_kappa"]
