"""physinv: PDE inverse problems with differentiable PyTorch simulators.

    import physinv as pi
    sim = pi.problems.poisson.PoissonSimulator(...)
    problem = pi.invert.InverseProblem(sim, data, noise, regularizer)

Layers (imports point downward only): ``cases`` -> ``cli`` -> ``problems`` ->
``invert`` / ``learn`` -> ``linalg`` / ``discretize`` / ``fem`` / ``viz`` ->
``core``.  The horizontal layers know no PDE; each PDE lives in one package
under :mod:`physinv.problems` and joins through :mod:`physinv.core.registry`.
Subpackages are imported on first attribute access, so ``import physinv``
imports neither torch-heavy code nor DOLFINx, deepxde or neuraloperator.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

SUBPACKAGES = ("core", "discretize", "linalg", "fem", "viz", "invert", "learn", "problems")

__all__ = ["__version__", *SUBPACKAGES]


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBPACKAGES))
