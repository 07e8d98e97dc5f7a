"""The CUDA rasterizer (cuda/raster.cu) against the CPU one, kernel binding against kernel binding.

Instance ids, triangle ids, class ids and colours must be bitwise equal, float buffers within
1e-6 relative (bitwise too in the host emulation, which shares the CPU's floating point; every
product of raster_math.h is rounded on its own, so a GPU should match bitwise as well). Without
a GPU the kernels run through the host emulation (``geomops._cuda_emu``); the ``device`` cases
need a real GPU.
"""

import numpy as np
import pytest

import pose_cases as pc
from geomops import _backend

SIZES = [(64, 48), (31, 33), (1, 1)]


@pytest.fixture(params=["emulated", pytest.param("device", marks=pytest.mark.cuda)])
def cuda_be(request):
    """The CUDA backend: emulated on the host, or on the GPU."""
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


def _emulated(be):
    return getattr(be.kernels, "EMULATED", False)


def assert_same_render(want, got, exact_floats):
    assert set(want) == set(got)
    for name, a in want.items():
        b = got[name]
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if name in pc.INT_BUFFERS or exact_floats:
            np.testing.assert_array_equal(b, a, err_msg=name)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(a).max())),
                                       err_msg=name)


@pytest.mark.parametrize("name", pc.SCENES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_render_matches_cpu(cuda_be, name, size):
    sc = pc.scene(name, *size)
    want = pc.render_with(_backend.cpu(), sc)
    got = pc.render_with(cuda_be, sc)
    assert_same_render(want, got, exact_floats=_emulated(cuda_be))


def test_scenes_cover_the_paths():
    """The scenes draw something where they should (guards against a vacuous comparison)."""
    covered = {name: pc.render_with(_backend.cpu(), pc.scene(name))["instance_index"] for name in pc.SCENES}
    assert len(np.unique(covered["many"])) > 50
    assert not covered["empty"].any()
    for name in ("near_clip", "behind", "far", "ties", "basic"):
        assert len(np.unique(covered[name])) >= 3, name  # background and at least two objects
    assert covered["guard"].all() and len(np.unique(covered["guard"])) == 2  # the huge triangle fills the image
    # ties: of two identical objects the first wins everywhere
    assert 5 in covered["ties"] and 2 not in covered["ties"]


def test_large_odd_image(cuda_be):
    """479x641 (neither dimension a multiple of the 32-pixel tile), few triangles."""
    sc = pc.scene("basic", 479, 641)
    want = pc.render_with(_backend.cpu(), sc)
    got = pc.render_with(cuda_be, sc)
    assert (want["instance_index"] != 0).sum() > 10000
    assert_same_render(want, got, exact_floats=_emulated(cuda_be))


@pytest.mark.parametrize("buffers", [(), ("triangle_id",), ("normals", "barycentrics")])
def test_optional_buffers_subset(cuda_be, buffers):
    sc = pc.scene("basic")
    want = pc.render_with(_backend.cpu(), sc, buffers=pc.RENDER_BUFFERS[:4] + buffers)
    got = pc.render_with(cuda_be, sc, buffers=pc.RENDER_BUFFERS[:4] + buffers)
    assert set(got) == set(pc.RENDER_BUFFERS[:4] + buffers)
    assert_same_render(want, got, exact_floats=_emulated(cuda_be))


def test_stream_keyword_and_release_cache(cuda_be):
    sc = pc.scene("camera_pose")
    stream = cuda_be.kernels.Stream(0)
    size, intr, objects, shading, out = pc.raster_args(cuda_be, sc)
    cuda_be.kernels.raster_render(size, intr, objects, shading, out, 1, stream=stream.handle)
    stream.synchronize()
    got = {k: v.get() for k, v in out.items()}
    assert_same_render(pc.render_with(_backend.cpu(), sc), got, exact_floats=_emulated(cuda_be))
    cuda_be.kernels.raster_release_cache()


def test_constants_match_cpu():
    from geomops import _cpu, _cuda_emu
    for name in ("MAX_INSTANCE_INDEX", "RASTER_MAX_SIZE", "RASTER_BACKGROUND"):
        assert getattr(_cuda_emu, name) == getattr(_cpu, name)


def test_out_of_memory_names_the_bytes(monkeypatch):
    """A temporary that does not fit raises MemoryError with its size (emulated device memory
    limited by GEOMOPS_CUDA_EMU_MAX_BYTES)."""
    sc = pc.scene("many", 64, 48)
    with _backend.cuda_emulation():
        be = _backend.resolve("cuda")
        args = pc.raster_args(be, sc)
        monkeypatch.setenv("GEOMOPS_CUDA_EMU_MAX_BYTES", "4000")
        with pytest.raises(MemoryError, match="bytes"):
            be.kernels.raster_render(*args, 1)


@pytest.mark.cuda
def test_render_deterministic_on_device():
    be = _backend.resolve("cuda")
    sc = pc.scene("many", 479, 641)
    first = pc.render_with(be, sc)
    second = pc.render_with(be, sc)
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name
