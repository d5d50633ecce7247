import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (tests marked gpu run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def dolfinx():
    """DOLFINx, or a skip naming what is missing (the ``fem`` extra)."""
    from physinv.core.errors import MissingExtraError
    from physinv.fem.dolfinx import import_dolfinx

    try:
        return import_dolfinx()
    except MissingExtraError as exc:
        pytest.skip(f"DOLFINx not installed: {exc}")
