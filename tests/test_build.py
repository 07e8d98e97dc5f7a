"""The package imports, reports its configuration, and the CUDA module is really built where required."""

import io
import os
import shutil
import subprocess
import sys

import pytest

import geomops
from geomops import _config


def test_version_and_config():
    buf = io.StringIO()
    geomops.show_config(file=buf)
    text = buf.getvalue()
    assert geomops.__version__ in text
    assert "OpenMP" in text and "CUDA" in text and "CPU kernels" in text
    assert "CUDA error" not in text  # a missing driver is said in plain words, not as an error code


def test_cuda_available_never_raises():
    assert geomops.cuda_available() in (True, False)
    count, reason = _config.cuda_status()
    assert (count > 0) == geomops.cuda_available()
    assert count > 0 or reason  # no device: the reason is given


@pytest.mark.skipif(os.environ.get("GEOMOPS_CUDA", "").upper() != "ON"
                    and os.environ.get("GEOMOPS_REQUIRE_CUDA") != "1",
                    reason="only checked where the build was asked to include CUDA (GEOMOPS_CUDA=ON)")
def test_cuda_module_was_built_and_links():
    # A link error (e.g. missing libstdc++) shows up as an ImportError: fail loudly here.
    assert _config.CUDA_IMPORT_ERROR is None, f"_cuda failed to import: {_config.CUDA_IMPORT_ERROR!r}"
    count, status, reason = _config._cuda.device_count()
    # geomops' own status codes, never a raw cudaError_t
    assert status in (0, _config._cuda.NO_DEVICE, 6), (status, reason)
    if status == 0:
        assert count >= 0 and reason == ""
    else:
        assert count == 0 and reason and "CUDA error 35" not in reason
    rt, drv = _config._cuda.versions()
    assert rt >= 11000  # the runtime linked into the module is a real CUDA 11+ runtime


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


def test_source_tree_without_build_says_what_to_do(tmp_path):
    """Importing the sources without the compiled module names the fix, not a circular import."""
    src = os.path.dirname(geomops.__file__)
    dst = tmp_path / "geomops"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.c"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", "import geomops"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "python -m pip install ." in out.stderr and "build_ext --inplace" in out.stderr
    assert "partially initialized" not in out.stderr
