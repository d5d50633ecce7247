"""Validation studies: ``physinv validate <name>``.

* :func:`validate_poisson` (:mod:`physinv.validate.poisson`): convergence rates
  of the FD and torch P1 Poisson operators on a manufactured solution, and the
  agreement of torch P1 with DOLFINx on the same mesh.
* :func:`validate_eit` (:mod:`physinv.validate.eit`): the torch complete
  electrode model against a DOLFINx reference on the same meshes, and the
  convergence rates of the continuum (Neumann) EIT model on the disk.

Attributes are imported lazily, so ``python -m physinv.validate.poisson`` runs
the module once and ``import physinv.validate`` stays cheap.  ``format_report``
is the Poisson one; each study module has its own.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "format_report": "physinv.validate.poisson",
    "validate_poisson": "physinv.validate.poisson",
    "validate_eit": "physinv.validate.eit",
}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'physinv.validate' has no attribute {name!r}")
