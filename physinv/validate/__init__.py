"""Validation studies: ``physinv validate <name>``.

* :func:`validate_poisson` (:mod:`physinv.validate.poisson`): convergence rates
  of the FD and torch P1 Poisson operators on a manufactured solution, and the
  agreement of torch P1 with DOLFINx on the same mesh.

Attributes are imported lazily, so ``python -m physinv.validate.poisson`` runs
the module once and ``import physinv.validate`` stays cheap.
"""

from __future__ import annotations

import importlib

__all__ = ["format_report", "validate_poisson"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("physinv.validate.poisson"), name)
    raise AttributeError(f"module 'physinv.validate' has no attribute {name!r}")
