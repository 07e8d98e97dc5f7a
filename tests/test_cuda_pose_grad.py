"""The CUDA pose gradients (cuda/posegrad.cu) against the CPU kernels, binding against binding.

Image gradients, valid masks, per-pixel contributions and dilated masks must be bitwise equal
(the same per-pixel functions of posegrad_math.h, with every product rounded on its own); the
per-object sums, whose order of additions differs, to 1e-12 relative. Both modes, both helper
semantics, both borders, float32/float64 gradients, CHW and HWC layouts, odd image sizes and
unknown instance ids. Without a GPU the kernels run through the host emulation; the ``device``
cases need a real GPU.
"""

import itertools

import numpy as np
import pytest

import pose_cases as pc
from geomops import _backend, _cpu

SEMANTICS = {"cuda": _cpu.PG_SEM_CUDA, "cpu": _cpu.PG_SEM_CPU}
BORDERS = {"zero": _cpu.PG_BORDER_ZERO, "replicate": _cpu.PG_BORDER_REPLICATE}


@pytest.fixture(params=["emulated", pytest.param("device", marks=pytest.mark.cuda)])
def cuda_be(request):
    """The CUDA backend: emulated on the host, or on the GPU."""
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


def image_gradients(be, rr, border, sem, rgb=None):
    h, w = rr["instance_index"].shape
    gx, gy, valid = be.empty((3, h, w), np.float32), be.empty((3, h, w), np.float32), be.empty((h, w), np.uint8)
    rgb = rr["rgb"] if rgb is None else rgb
    be.kernels.posegrad_image_gradients(be.from_host(rgb), border, sem, be.from_host(rr["instance_index"]),
                                        be.from_host(rr["depth"]), gx, gy, valid, 1)
    return be.to_host(gx), be.to_host(gy), be.to_host(valid)


def backprop(be, d, border, sem, contributions=True, masks=True):
    """Returns (bad id, accum, contributions, masks) as NumPy arrays (None where not asked)."""
    n = d["transforms"].shape[0]
    inst = d["inst"]
    h, w = inst.shape
    up = be.from_host
    acc = be.empty((n, _cpu.PG_ACC_STRIDE), np.float64)
    # zero-filled, as the CPU binding needs; the CUDA one overwrites every element anyway
    con = up(np.zeros((n, 6, h, w), np.float32)) if contributions else None
    msk = up(np.zeros((n, h, w), np.uint8)) if masks else None
    bad, _ = be.kernels.posegrad_backprop(up(d["rgb"]), border, sem, up(inst), up(d["depth"]), up(d["coords"]),
                                          up(d["g"]), d["cstride"], d["pstride"], up(d["transforms"]), up(d["proj"]),
                                          d["denom_row"], up(d["id_to_slot"]), up(d["slot_start"]),
                                          up(d["slot_objects"]), acc, con, msk, 1)
    return bad, be.to_host(acc), be.to_host(con), be.to_host(msk)


def assert_same_backprop(want, got):
    bad0, acc0, con0, msk0 = want
    bad1, acc1, con1, msk1 = got
    assert bad0 == bad1
    np.testing.assert_array_equal(acc1[:, _cpu.PG_ACC_SINGULAR:], acc0[:, _cpu.PG_ACC_SINGULAR:])  # counts
    # the sums' order differs: tolerance relative to each column's largest sum
    scale = np.abs(acc0).max(axis=0, keepdims=True) if acc0.size else 0.0
    assert np.all(np.abs(acc1 - acc0) <= 1e-12 * (np.abs(acc0) + scale)), (acc0, acc1)
    for a, b in ((con0, con1), (msk0, msk1)):
        if a is not None:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("name", ["basic", "camera_pose", "near_clip", "ties", "many", "empty", "guard"])
@pytest.mark.parametrize("size", [(64, 48), (31, 33), (1, 1)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_image_gradients_match_cpu(cuda_be, name, size):
    rr = pc.render_with(_backend.cpu(), pc.scene(name, *size))
    for border, sem in itertools.product(BORDERS.values(), SEMANTICS.values()):
        want = image_gradients(_backend.cpu(), rr, border, sem)
        got = image_gradients(cuda_be, rr, border, sem)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(b, a)


def test_image_gradients_float_rgb_and_three_channels(cuda_be):
    rr = pc.render_with(_backend.cpu(), pc.scene("basic", 31, 33))
    rng = np.random.default_rng(5)
    for rgb in (rr["rgb"][..., :3].copy(), rng.random((33, 31, 4), dtype=np.float32),
                rng.random((33, 31, 3), dtype=np.float32)):
        for border in BORDERS.values():
            want = image_gradients(_backend.cpu(), rr, border, _cpu.PG_SEM_CUDA, rgb=rgb)
            got = image_gradients(cuda_be, rr, border, _cpu.PG_SEM_CUDA, rgb=rgb)
            for a, b in zip(want, got):
                np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("name", ["basic", "camera_pose", "near_clip", "ties", "many", "guard", "no_faces"])
@pytest.mark.parametrize("mode", ["exact", "compat"])
def test_backprop_matches_cpu(cuda_be, name, mode):
    sc = pc.scene(name)
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr, mode=mode)
    for border, sem in itertools.product(BORDERS.values(), SEMANTICS.values()):
        assert_same_backprop(backprop(_backend.cpu(), d, border, sem), backprop(cuda_be, d, border, sem))


@pytest.mark.parametrize("size", [(31, 33), (1, 1), (2, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("layout,dtype", [("CHW", np.float32), ("CHW", np.float64), ("HWC", np.float32),
                                          ("HWC", np.float64)])
def test_backprop_layouts_dtypes_sizes(cuda_be, size, layout, dtype):
    sc = pc.scene("basic", *size)
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr, mode="exact", layout=layout, grad_dtype=dtype)
    for sem in SEMANTICS.values():
        assert_same_backprop(backprop(_backend.cpu(), d, _cpu.PG_BORDER_REPLICATE, sem),
                             backprop(cuda_be, d, _cpu.PG_BORDER_REPLICATE, sem))


def test_large_odd_image(cuda_be):
    """479x641: neither dimension a multiple of 32 (stillleben's helpers read out of bounds there)."""
    sc = pc.scene("basic", 479, 641)
    rr = pc.render_with(_backend.cpu(), sc)
    for border, sem in ((_cpu.PG_BORDER_ZERO, _cpu.PG_SEM_CPU), (_cpu.PG_BORDER_REPLICATE, _cpu.PG_SEM_CUDA)):
        for a, b in zip(image_gradients(_backend.cpu(), rr, border, sem), image_gradients(cuda_be, rr, border, sem)):
            np.testing.assert_array_equal(b, a)
    d = pc.backprop_inputs(sc, rr, mode="exact")
    assert_same_backprop(backprop(_backend.cpu(), d, _cpu.PG_BORDER_REPLICATE, _cpu.PG_SEM_CUDA),
                         backprop(cuda_be, d, _cpu.PG_BORDER_REPLICATE, _cpu.PG_SEM_CUDA))


def test_backprop_without_objects(cuda_be):
    """No objects: empty sums; ids in the buffer are then all unknown."""
    sc = pc.scene("empty")
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr)
    assert d["transforms"].shape == (0, 12)
    want = backprop(_backend.cpu(), d, 0, 0)
    assert want[0] == 0 and want[1].shape == (0, _cpu.PG_ACC_STRIDE)
    assert_same_backprop(want, backprop(cuda_be, d, 0, 0))
    d["inst"] = d["inst"].copy()
    d["inst"][5:9, 7:20] = 4
    want = backprop(_backend.cpu(), d, 0, 0)
    assert want[0] == 4
    assert_same_backprop(want, backprop(cuda_be, d, 0, 0))


def test_backprop_without_optional_outputs(cuda_be):
    sc = pc.scene("ties")
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr, mode="compat")
    for con, msk in ((False, False), (True, False), (False, True)):
        want = backprop(_backend.cpu(), d, 0, 0, contributions=con, masks=msk)
        got = backprop(cuda_be, d, 0, 0, contributions=con, masks=msk)
        assert_same_backprop(want, got)


def test_backprop_writes_every_output_element(cuda_be):
    """The CUDA binding overwrites contributions and masks entirely (no zero-fill needed)."""
    sc = pc.scene("basic")
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr)
    n, (h, w) = d["transforms"].shape[0], d["inst"].shape
    be, up = cuda_be, cuda_be.from_host
    acc = be.empty((n, _cpu.PG_ACC_STRIDE), np.float64)
    con = up(np.full((n, 6, h, w), np.nan, np.float32))
    msk = up(np.full((n, h, w), 7, np.uint8))
    be.kernels.posegrad_backprop(up(d["rgb"]), 1, 0, up(d["inst"]), up(d["depth"]), up(d["coords"]), up(d["g"]),
                                 d["cstride"], d["pstride"], up(d["transforms"]), up(d["proj"]), d["denom_row"],
                                 up(d["id_to_slot"]), up(d["slot_start"]), up(d["slot_objects"]), acc, con, msk, 1)
    _, acc0, con0, msk0 = backprop(_backend.cpu(), d, 1, 0)
    np.testing.assert_array_equal(con.get(), con0)
    np.testing.assert_array_equal(msk.get(), msk0)


def test_shared_ids_and_unknown_ids(cuda_be):
    sc = pc.scene("basic")
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr)
    # a 4th object sharing id 2 under another pose: its own sums over the same pixels
    shared = dict(d)
    shared["transforms"] = np.vstack([d["transforms"], d["transforms"][:1]])
    shared["id_to_slot"], shared["slot_start"], shared["slot_objects"] = pc._slot_tables(np.array([1, 2, 3, 2]))
    want = backprop(_backend.cpu(), shared, 1, 0)
    assert want[0] == 0
    assert want[1][3, _cpu.PG_ACC_PIXELS] == want[1][1, _cpu.PG_ACC_PIXELS] > 0
    assert_same_backprop(want, backprop(cuda_be, shared, 1, 0))
    # ids in the buffer that no object has: the smallest is reported, its pixels are skipped
    for drop in ([3], [1, 3], [1, 2, 3]):
        keep = np.array([i for i in (1, 2, 3) if i not in drop], dtype=np.int64)
        d2 = dict(d)
        d2["transforms"] = d["transforms"][keep - 1]
        d2["id_to_slot"], d2["slot_start"], d2["slot_objects"] = pc._slot_tables(keep)
        want = backprop(_backend.cpu(), d2, 0, 1)
        assert want[0] == min(drop)
        assert_same_backprop(want, backprop(cuda_be, d2, 0, 1))
    # negative ids are unknown too
    d3 = dict(d)
    inst = d["inst"].copy()
    inst[3, 4] = -7
    d3["inst"] = inst
    want = backprop(_backend.cpu(), d3, 0, 0)
    assert want[0] == -7
    assert_same_backprop(want, backprop(cuda_be, d3, 0, 0))


def test_stream_keyword(cuda_be):
    sc = pc.scene("basic")
    rr = pc.render_with(_backend.cpu(), sc)
    be, up = cuda_be, cuda_be.from_host
    stream = be.kernels.Stream(0)
    h, w = rr["instance_index"].shape
    gx, gy, valid = be.empty((3, h, w), np.float32), be.empty((3, h, w), np.float32), be.empty((h, w), np.uint8)
    be.kernels.posegrad_image_gradients(up(rr["rgb"]), 0, 0, up(rr["instance_index"]), up(rr["depth"]), gx, gy,
                                        valid, 1, stream=stream.handle)
    stream.synchronize()
    for a, b in zip(image_gradients(_backend.cpu(), rr, 0, 0), (gx.get(), gy.get(), valid.get())):
        np.testing.assert_array_equal(b, a)


@pytest.mark.cuda
def test_backprop_deterministic_on_device():
    be = _backend.resolve("cuda")
    sc = pc.scene("many", 479, 641)
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr)
    first = backprop(be, d, 1, 0)
    for _ in range(3):
        again = backprop(be, d, 1, 0)
        for a, b in zip(first[1:], again[1:]):
            assert a.tobytes() == b.tobytes()


def first_nonfinite(be, d, sem, threads=1):
    """The kernel's first object pixel where g is not finite (-1 if none)."""
    n = d["transforms"].shape[0]
    up = be.from_host
    acc = be.empty((n, _cpu.PG_ACC_STRIDE), np.float64)
    _, first = be.kernels.posegrad_backprop(up(d["rgb"]), 0, sem, up(d["inst"]), up(d["depth"]), up(d["coords"]),
                                            up(d["g"]), d["cstride"], d["pstride"], up(d["transforms"]),
                                            up(d["proj"]), d["denom_row"], up(d["id_to_slot"]), up(d["slot_start"]),
                                            up(d["slot_objects"]), acc, None, None, threads)
    return first


@pytest.mark.parametrize("layout", ["CHW", "HWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sem", ["cuda", "cpu"])
def test_first_nonfinite_read_pixel(cuda_be, layout, dtype, sem):
    """The smallest pixel where the backprop kernel reads g (a valid pixel of an object's dilated
    mask, object or ring) and finds a NaN/inf in any channel; pixels it does not read never count.
    The answer does not depend on the thread count or the backend. Huge finite float64 values
    (their projection overflows) are not reported."""
    sc = pc.scene("many", 61, 47)
    rr = pc.render_with(_backend.cpu(), sc)
    d = pc.backprop_inputs(sc, rr, layout=layout, grad_dtype=dtype)
    h, w = d["inst"].shape
    _, valid = image_gradients(_backend.cpu(), rr, 0, SEMANTICS[sem])[1:]
    _, _, _, masks = backprop(_backend.cpu(), d, 0, SEMANTICS[sem], contributions=False)
    read = (valid.ravel() != 0) & masks.reshape(len(masks), -1).any(axis=0)
    inst = d["inst"].ravel()
    objects, ring, unread = (np.flatnonzero(read & (inst != 0)), np.flatnonzero(read & (inst == 0)),
                             np.flatnonzero(~read))
    assert objects.size > 10 and ring.size > 10 and unread.size > 10
    rng = np.random.default_rng(3)
    g0 = d["g"].copy()

    def at(p, ch):
        return ch * h * w + p if layout == "CHW" else 3 * p + ch

    picks = [[], list(rng.choice(objects, 3, replace=False)), [objects[-1]], list(rng.choice(ring, 2)),
             [ring[0], objects[0]]]
    for pixels in picks:
        for value in (np.nan, np.inf, -np.inf):
            g = g0.copy()
            if dtype == np.float64:
                g.reshape(-1)[at(objects[1], 0)] = 1e307  # finite: its projection may overflow
            g.reshape(-1)[[at(p, ch) for p in unread[:7] for ch in range(3)]] = value  # never read
            for p in pixels:
                g.reshape(-1)[at(p, int(rng.integers(3)))] = value
            d["g"] = g
            want = int(min(pixels)) if pixels else -1
            for threads in (1, 2, 3):
                assert first_nonfinite(_backend.cpu(), d, SEMANTICS[sem], threads) == want
            assert first_nonfinite(cuda_be, d, SEMANTICS[sem]) == want
