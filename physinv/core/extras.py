"""Import optional dependencies with a message that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from physinv.core.errors import MissingExtraError


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" (needed for {purpose})" if purpose else ""
        raise MissingExtraError(
            f"optional dependency {module!r} is not installed{why}; "
            f"install it with: pip install 'physinv[{extra}]'"
        ) from exc
