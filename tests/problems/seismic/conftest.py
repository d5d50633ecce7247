"""Seismic tests run torch (and so Deepwave's OpenMP kernels) on one thread: on a shared machine
two threads competing for busy cores slow Deepwave's compiled kernels down by orders of magnitude
(a tiny gradient: 0.08 s on one thread, 17 s on two beside another job)."""

import pytest


@pytest.fixture(autouse=True)
def _seismic_one_thread(one_thread):
    yield
