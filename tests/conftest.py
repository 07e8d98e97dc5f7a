"""Shared pytest configuration: the CUDA marker, the backend list and the ``device`` fixture."""

import os

import pytest

import geomops

REQUIRE_CUDA = os.environ.get("GEOMOPS_REQUIRE_CUDA") == "1"
BACKENDS = ["cpu"] + (["cuda"] if geomops.cuda_available() or REQUIRE_CUDA else [])


@pytest.fixture(params=BACKENDS)
def device(request):
    """Each backend's ``device=`` value: op tests taking this fixture run once per backend."""
    return request.param


def pytest_collection_modifyitems(config, items):
    if geomops.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none found)")
    for item in items:
        if "cuda" in item.keywords and not REQUIRE_CUDA:
            item.add_marker(skip)
