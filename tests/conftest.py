"""Shared pytest configuration: the CUDA marker, the backend list and the ``device`` fixture.

Backends: "cpu" (OpenMP), "cuda-emu" (the CUDA backend's kernels compiled for the host and run
sequentially through ``cuda/emu/cuda_emu.h``: every kernel's logic is tested without a GPU; the
op runs with ``device="cuda"``, so NumPy inputs are copied in and results out), and "cuda" where
a device is found (or GEOMOPS_REQUIRE_CUDA=1 makes a missing device fail)."""

import contextlib
import os

import pytest

import geomops
from geomops import _backend

REQUIRE_CUDA = os.environ.get("GEOMOPS_REQUIRE_CUDA") == "1"
BACKENDS = ["cpu", "cuda-emu"] + (["cuda"] if geomops.cuda_available() or REQUIRE_CUDA else [])


@contextlib.contextmanager
def use_backend(name):
    """The ``device=`` value of backend ``name``, with the CUDA emulation on for "cuda-emu"."""
    if name == "cuda-emu":
        with _backend.cuda_emulation():
            yield "cuda"
    else:
        yield name


@pytest.fixture(params=BACKENDS)
def device(request):
    """Each backend's ``device=`` value: op tests taking this fixture run once per backend."""
    with use_backend(request.param) as dev:
        yield dev


def pytest_collection_modifyitems(config, items):
    if geomops.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none found)")
    for item in items:
        if "cuda" in item.keywords and not REQUIRE_CUDA:
            item.add_marker(skip)
