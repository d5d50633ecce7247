"""Protocols, errors, seeding, devices and I/O shared by every layer.

The errors are imported here; every other module on first attribute access
(``physinv.core.noise.add_noise``), so importing ``physinv.core`` stays light.
"""

import importlib

from physinv.core.errors import (
    InvalidParameterError,
    MissingExtraError,
    PhysinvError,
    ShapeMismatchError,
    UnknownNameError,
)

__all__ = [
    "InvalidParameterError",
    "MissingExtraError",
    "PhysinvError",
    "ShapeMismatchError",
    "UnknownNameError",
]


def __getattr__(name: str):
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
