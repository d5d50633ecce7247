"""Fixtures shared by the DOLFINx reference tests."""

import pytest

from physinv.core.errors import MissingExtraError
from physinv.fem.dolfinx_poisson import import_dolfinx


@pytest.fixture(scope="module")
def dolfinx():
    try:
        return import_dolfinx()
    except MissingExtraError as exc:
        pytest.skip(f"DOLFINx not installed: {exc}")
