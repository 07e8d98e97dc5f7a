"""Shared pytest configuration: the CUDA marker, the backend list and the ``device`` fixture.

Backends: "cpu" (OpenMP), "cuda-emu" (the CUDA backend's kernels compiled for the host and run
sequentially through ``cuda/emu/cuda_emu.h``: every kernel's logic is tested without a GPU; the
op runs with ``device="cuda"``, so NumPy inputs are copied in and results out), and "cuda" where
a device is found (or GEOMOPS_REQUIRE_CUDA=1 makes a missing device fail)."""

import contextlib
import os

import pytest
from hypothesis import HealthCheck, settings

import geomops
from geomops import _backend

# Hypothesis profiles. "ci": a fixed number of examples, derandomized (the same examples every
# run), no deadline; chosen when CI=true. "dev" (the default): the same count, random examples.
# "long": for a long fuzzing run by hand: GEOMOPS_FUZZ=long pytest tests/test_fuzz_*.py (or
# HYPOTHESIS_PROFILE=long; either variable picks any registered profile).
# Tests with their own max_examples keep it; the fuzz tests scale the profile's (fuzz_util).
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or os.environ.get("GEOMOPS_FUZZ")
                      or ("ci" if os.environ.get("CI") == "true" else "dev"))

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
