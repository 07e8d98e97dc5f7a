"""The package imports, reports its configuration, and the CUDA module is really built where required."""

import io
import os

import pytest

import geomops
from geomops import _config


def test_version_and_config():
    buf = io.StringIO()
    geomops.show_config(file=buf)
    text = buf.getvalue()
    assert geomops.__version__ in text
    assert "OpenMP" in text and "CUDA" in text


def test_cuda_available_never_raises():
    assert geomops.cuda_available() in (True, False)


@pytest.mark.skipif(os.environ.get("GEOMOPS_CUDA", "").upper() != "ON"
                    and os.environ.get("GEOMOPS_REQUIRE_CUDA") != "1",
                    reason="only checked where the build was asked to include CUDA (GEOMOPS_CUDA=ON)")
def test_cuda_module_was_built_and_links():
    # A link error (e.g. missing libstdc++) shows up as an ImportError: fail loudly here.
    assert _config.CUDA_IMPORT_ERROR is None, f"_cuda failed to import: {_config.CUDA_IMPORT_ERROR!r}"
    count, err = _config._cuda.device_count()
    assert count >= 0


@pytest.mark.cuda
def test_cuda_device_present():
    assert geomops.cuda_available()


def test_thread_control():
    old = geomops.get_num_threads()
    try:
        geomops.set_num_threads(1)
        assert geomops.get_num_threads() == 1
        with pytest.raises(ValueError):
            geomops.set_num_threads(0)
    finally:
        geomops.set_num_threads(None)
    assert geomops.get_num_threads() == old
    with pytest.raises(ValueError, match="num_threads"):
        _config.resolve_num_threads(0)
    with pytest.raises(TypeError, match="num_threads"):
        _config.resolve_num_threads(1.5)
