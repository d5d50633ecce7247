"""Protocols, errors, seeding, devices and I/O shared by every layer."""

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
