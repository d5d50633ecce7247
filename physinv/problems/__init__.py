"""One package per PDE: everything specific to one problem lives in ``physinv.problems.<name>``.

* :mod:`~physinv.problems.poisson`: ``-div(kappa grad u) = f`` (finite differences, P1), its data set and DOLFINx reference;
* :mod:`~physinv.problems.calderon`: the Calderón problem (Dirichlet-to-Neumann map) on the unit square;
* :mod:`~physinv.problems.eit`: electrical impedance tomography with the complete electrode model;
* :mod:`~physinv.problems.flame`: the 1D premixed flame with its speed as an eigenvalue;
* :mod:`~physinv.problems.forms`: PDEs written in UFL as DOLFINx form simulators (nonlinear diffusion example);
* :mod:`~physinv.problems.seismic`: 2D acoustic waves (Deepwave), OpenFWI-style data, full-waveform inversion;
* :mod:`~physinv.problems.fluid`: 2D incompressible Navier-Stokes in vorticity form (pseudo-spectral).

Each package registers its simulators, data sets and validations in
:mod:`physinv.core.registry` when imported; the packages are declared under
the ``physinv.problems`` entry-point group, so the registry finds them.
Subpackages are imported lazily: ``physinv.problems.eit`` imports only EIT.
"""

from __future__ import annotations

import importlib

PACKAGES = ("poisson", "calderon", "eit", "flame", "forms", "seismic", "fluid")

__all__ = list(PACKAGES)


def __getattr__(name: str):
    if name in PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
