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


@pytest.fixture
def one_thread():
    """torch on one thread for the test (bitwise-reproducible training), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def unseal():
    """``unseal(path)``: a complete data file turned back into the partial file of its generation
    (seal zeroed, ``complete`` false, attribute digest renewed); returns the partial file's path."""
    import h5py

    from physinv.learn import datafile

    def convert(path):
        partial = datafile.partial_path(path)
        raw = bytearray(path.read_bytes())
        raw[:datafile.USERBLOCK] = bytes(datafile.USERBLOCK)
        partial.write_bytes(bytes(raw))
        path.unlink()
        with h5py.File(partial, "r+", **datafile._H5) as h5:
            datafile._set_attrs(h5, {"complete": False})
        return partial

    return convert
