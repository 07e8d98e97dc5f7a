"""The public pose functions on device arrays, end to end: render -> image gradients ->
back-propagation -> apply_pose_delta with every array on the "device", against the CPU path.

Ids (instance, class, triangle), colours, valid masks and per-pixel contributions must equal the
CPU's bit for bit; float buffers and gradients to 1e-6 relative (the per-object sums add in
another order). Also: RenderResult.get() / .device, RenderResult.from_buffers on device arrays
(zero-copy where the layout fits, conversions on the device otherwise, the checks with the host's
messages, the masked finiteness check), mixed host/device inputs, the per-mesh device cache,
odd image sizes, empty scenes, objects behind the camera and 100 objects. Without a GPU
everything runs on the CUDA emulator; the ``cuda`` cases need a real device.
"""

import pickle
import warnings

import numpy as np
import pytest

import pose_cases as pc
import reference_pose as ref
from geomops import _backend, _device
from geomops._device import DeviceArray
from geomops.pose import (Mesh, RenderResult, Scene, SceneObject, apply_pose_delta, backpropagate_gradient_to_poses,
                          compute_image_space_gradients, render)
from geomops.pose.diff import _object_masks

FLOAT_BUFFERS = ("depth", "object_coordinates", "cam_coordinates", "normals", "barycentrics")


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.cuda)])
def be(request):
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


def emulated(be):
    return bool(getattr(be.module, "EMULATED", False))


def host(x):
    return x.get() if isinstance(x, DeviceArray) else x


def assert_close(got, want, exact=False):
    """1e-6 relative to the array's largest value (bitwise with ``exact``)."""
    assert isinstance(got, DeviceArray), type(got)
    got = got.get()
    assert got.dtype == want.dtype and got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        scale = float(np.abs(want[np.isfinite(want)]).max()) if want.size and np.isfinite(want).any() else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * max(scale, 1e-30))


def assert_same_render(got, want, exact_floats):
    assert got.device == "cuda:0" and want.device == "cpu"
    for name in pc.RENDER_BUFFERS:
        a = getattr(want, name)
        b = getattr(got, name)
        if a is None:
            assert b is None, name
            continue
        assert_close(b, a, exact=exact_floats or name not in FLOAT_BUFFERS)


# ---- the whole loop on the device -----------------------------------------------------------------

PIPELINE = [("basic", (64, 48)), ("basic", (1, 1)), ("basic", (31, 33)), ("camera_pose", (31, 33)),
            ("near_clip", (64, 48)), ("behind", (64, 48)), ("ties", (40, 30)), ("many", (64, 48)),
            ("empty", (31, 33)), ("no_faces", (64, 48))]


@pytest.mark.parametrize("name,size", PIPELINE, ids=lambda x: f"{x[0]}x{x[1]}" if isinstance(x, tuple) else x)
def test_pipeline_on_device_equals_cpu(be, name, size):
    sc = pc.scene(name, *size)
    want = render(sc)
    got = render(sc, device="cuda")
    assert_same_render(got, want, exact_floats=emulated(be))
    h, w = want.shape
    g = np.random.default_rng(3).standard_normal((3, h, w)).astype(np.float32)
    gd = be.from_host(g)
    for border in ("zero", "replicate"):
        for sem in ("cuda", "cpu"):
            want_img = compute_image_space_gradients(sc, want, border=border, helper_semantics=sem)
            got_img = compute_image_space_gradients(sc, got, border=border, helper_semantics=sem)
            assert got_img[2].dtype == np.bool_
            for a, b in zip(want_img, got_img):
                assert_close(b, a, exact=True)
    for mode in ("exact", "compat"):
        for sem in ("cuda", "cpu"):
            kw = dict(mode=mode, helper_semantics=sem, return_contributions=True)
            with warnings.catch_warnings():  # compat mode warns about near_clip's objects (on both)
                warnings.simplefilter("ignore", RuntimeWarning)
                want_g, want_c = backpropagate_gradient_to_poses(sc, want, g, **kw)
                got_g, got_c = backpropagate_gradient_to_poses(sc, got, gd, **kw)
            assert got_g.shape == (len(sc.objects), 6) and got_g.dtype == np.float32
            assert_close(got_g, want_g)
            assert_close(got_c, want_c, exact=True)
    if sc.objects:
        poses = np.stack([o.pose for o in sc.objects])
        step = -1e-3 * host(got_g).astype(np.float64)
        moved = apply_pose_delta(be.from_host(poses), be.from_host(step))
        assert_close(moved, apply_pose_delta(poses, step))


def test_pipeline_at_479x641(be):
    """Neither dimension a multiple of 32 (stillleben's helpers read out of bounds there)."""
    sc = pc.scene("basic", 479, 641)
    want = render(sc, buffers="gradient")
    got = render(sc, buffers="gradient", device="cuda")
    assert_same_render(got, want, exact_floats=emulated(be))
    g = np.random.default_rng(4).standard_normal((3, 641, 479)).astype(np.float32)
    for a, b in zip(compute_image_space_gradients(sc, want), compute_image_space_gradients(sc, got)):
        assert_close(b, a, exact=True)
    assert_close(backpropagate_gradient_to_poses(sc, got, be.from_host(g)),
                 backpropagate_gradient_to_poses(sc, want, g))


def test_backprop_bitwise_repeatable_and_float64_hwc(be):
    sc = pc.scene("ties", 31, 33)
    buf = render(sc, device="cuda")
    g = np.random.default_rng(5).standard_normal((33, 31, 3))
    gd = be.from_host(g)
    first = backpropagate_gradient_to_poses(sc, buf, gd, layout="HWC").get()
    assert first.dtype == np.float64
    for _ in range(2):
        assert backpropagate_gradient_to_poses(sc, buf, gd, layout="HWC").get().tobytes() == first.tobytes()
    want = backpropagate_gradient_to_poses(sc, buf.get(), g, layout="HWC")
    np.testing.assert_allclose(first, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_numpy_inputs_with_device_cuda_give_numpy(be):
    sc = pc.scene("basic", 31, 33)
    buf = render(sc)
    g = np.random.default_rng(6).standard_normal((3, 33, 31)).astype(np.float32)
    got = compute_image_space_gradients(sc, buf, device="cuda")
    assert all(isinstance(a, np.ndarray) for a in got) and got[2].dtype == np.bool_
    for a, b in zip(compute_image_space_gradients(sc, buf), got):
        np.testing.assert_array_equal(b, a)
    grad, con = backpropagate_gradient_to_poses(sc, buf, g, return_contributions=True, device="cuda")
    assert isinstance(grad, np.ndarray) and isinstance(con, np.ndarray)
    want, want_c = backpropagate_gradient_to_poses(sc, buf, g, return_contributions=True)
    np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(con, want_c)
    masks = _object_masks(sc, buf, device="cuda")
    assert isinstance(masks, np.ndarray) and masks.dtype == np.bool_
    np.testing.assert_array_equal(masks, _object_masks(sc, buf))
    poses = np.stack([o.pose for o in sc.objects])
    out = apply_pose_delta(poses, np.full((1, 6), 0.01), device="cuda")
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, apply_pose_delta(poses, np.full((1, 6), 0.01)), rtol=0, atol=1e-6)


def test_object_masks_on_device(be):
    sc = pc.scene("basic", 31, 33)
    buf = render(sc, device="cuda")
    assert_close(_object_masks(sc, buf), _object_masks(sc, buf.get()), exact=True)


def test_visualize_grad_copies_to_the_host(be):
    pytest.importorskip("matplotlib")
    sc = pc.scene("basic", 31, 33)
    buf = render(sc, device="cuda")
    g = be.from_host(np.random.default_rng(7).standard_normal((3, 33, 31)).astype(np.float32))
    grad, con, fig = backpropagate_gradient_to_poses(sc, buf, g, visualize_grad=True, return_contributions=True)
    assert isinstance(grad, DeviceArray) and isinstance(con, DeviceArray)
    assert len(fig.axes) >= 6 * len(sc.objects)
    grad2, fig2 = backpropagate_gradient_to_poses(sc, buf, g, visualize_grad=True)
    assert isinstance(grad2, DeviceArray) and fig2 is not None


def test_unknown_ids_and_warnings_on_device(be):
    sc = pc.scene("basic", 31, 33)
    buf = render(sc, device="cuda")
    g = be.from_host(np.zeros((3, 33, 31), np.float32))
    fewer = Scene(sc.camera, sc.objects[:1])
    with pytest.raises(ValueError, match=r"contains id 2, which no object in scene.objects has \(object ids: \[1\]\)"):
        backpropagate_gradient_to_poses(fewer, buf, g)
    # object coordinates that map behind the camera under the pose: the exact-mode warning
    behind = Scene(sc.camera, [SceneObject(o.mesh, pc.pose(t=(0.0, 0.0, -5.0))) for o in sc.objects])
    with pytest.warns(RuntimeWarning, match="camera Z <= 0"):
        backpropagate_gradient_to_poses(behind, buf, g, mode="exact")


def test_explicit_stream(be):
    sc = pc.scene("basic", 31, 33)
    s = be.module.Stream(0)
    buf = render(sc, device="cuda", stream=s.handle)
    assert buf.depth._stream == s.handle  # pending on the caller's stream
    g = be.from_host(np.ones((3, 33, 31), np.float32))
    gx, gy, valid = compute_image_space_gradients(sc, buf, stream=s.handle)
    assert valid._stream == s.handle
    grad = backpropagate_gradient_to_poses(sc, buf, g, stream=s.handle)
    s.synchronize()
    want = backpropagate_gradient_to_poses(sc, buf.get(), np.ones((3, 33, 31), np.float32))
    np.testing.assert_allclose(grad.get(), want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    with pytest.raises(ValueError, match="only used on a CUDA device"):
        apply_pose_delta(np.eye(4), np.zeros(6), stream=s.handle)


# ---- RenderResult on a device ---------------------------------------------------------------------

def test_render_result_get_and_device(be):
    sc = pc.scene("basic", 31, 33)
    cpu = render(sc, buffers=["triangle_id"])
    dev = render(sc, buffers=["triangle_id"], device="cuda")
    assert cpu.device == "cpu" and cpu.get() is cpu
    assert dev.device == "cuda:0" and dev.shape == (33, 31) and (dev.height, dev.width) == (33, 31)
    assert "on cuda:0" in repr(dev) and "triangle_id" in repr(dev)
    assert dev.normals is None and dev.get().normals is None
    back = dev.get()
    assert back.device == "cpu"
    for name in ("rgb", "depth", "instance_index", "object_coordinates", "triangle_id"):
        a = getattr(back, name)
        assert isinstance(a, np.ndarray) and a.flags.c_contiguous
        np.testing.assert_array_equal(a, getattr(cpu, name))
    for call in (dev.rgb_float, lambda: dev.mask(1)):
        with pytest.raises(TypeError, match=r"on cuda:0; call \.get\(\) first"):
            call()
    np.testing.assert_array_equal(back.mask(1), cpu.mask(1))
    rr = pickle.loads(pickle.dumps(dev))  # device arrays pickle through the host
    np.testing.assert_array_equal(rr.get().depth, cpu.depth)


def test_render_result_constructor_keeps_one_place(be):
    h, w = 2, 3
    ok = dict(rgb=np.zeros((h, w, 4), np.uint8), depth=np.zeros((h, w), np.float32),
              instance_index=np.zeros((h, w), np.int16), object_coordinates=np.zeros((h, w, 3), np.float32))
    dev = {k: be.from_host(v) for k, v in ok.items()}
    r = RenderResult(**dev)
    assert r.device == "cuda:0" and r.depth is dev["depth"]
    with pytest.raises(ValueError, match="depth.*rgb|rgb.*depth"):
        RenderResult(**(dev | dict(rgb=ok["rgb"])))
    with pytest.raises(TypeError, match="instance_index must be a int16"):
        RenderResult(**(dev | dict(instance_index=be.from_host(np.zeros((h, w), np.int32)))))


class CAI:
    """A foreign producer exposing ``__cuda_array_interface__`` over ``base``'s memory, with
    other byte strides if given (a non-contiguous layout)."""

    def __init__(self, base, shape=None, strides=None, dtype=None):
        self.base = base
        dt = np.dtype(dtype or base.dtype)
        self.__cuda_array_interface__ = {"shape": tuple(shape or base.shape), "typestr": dt.str,
                                         "data": (base.ptr, False), "version": 3, "strides": strides,
                                         "stream": None}


class DLPack:
    """A foreign producer exporting ``base`` through a kDLCUDA DLPack capsule."""

    def __init__(self, base):
        self.base = base

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        b = self.base
        return b._module.dlpack_export(b, b.ptr, b.shape, b.dtype, 2, 0, max_version is not None)


def buffers(h=4, w=5, seed=0):
    """Host buffers of an external renderer: two objects on a background."""
    rng = np.random.default_rng(seed)
    inst = np.zeros((h, w), np.int16)
    inst[1:3, 1:4] = 2
    inst[3, 0] = 7
    depth = np.full((h, w), 3000.0, np.float32)
    depth[inst != 0] = 0.8
    return dict(rgb=rng.random((h, w, 4)).astype(np.float32), depth=depth, instance_index=inst,
                object_coordinates=rng.random((h, w, 3)).astype(np.float32))


@pytest.mark.parametrize("flavour", ["device", "cai", "dlpack"])
def test_from_buffers_is_zero_copy_for_kernel_layouts(be, flavour):
    b = buffers()
    b["rgb"] = (b["rgb"] * 255).astype(np.uint8)[..., :3]
    b["class_index"] = np.ones((4, 5), np.int16)
    b["triangle_id"] = np.full((4, 5), -1, np.int32)
    b["cam_coordinates"] = np.ones((4, 5, 4), np.float32)
    b["normals"] = np.zeros((4, 5, 4), np.float32)
    b["barycentrics"] = np.zeros((4, 5, 3), np.float32)
    dev = {k: be.from_host(v) for k, v in b.items()}
    wrap = {"device": lambda d: d, "cai": CAI, "dlpack": DLPack}[flavour]
    rr = RenderResult.from_buffers(**{k: wrap(d) for k, d in dev.items()})
    assert rr.device == "cuda:0"
    for name, d in dev.items():
        got = getattr(rr, name)
        assert isinstance(got, DeviceArray) and got.ptr == d.ptr, name  # the same memory: no copy
        np.testing.assert_array_equal(got.get(), b[name])
    # float32 rgb with 4 channels and depth as (H, W, 1) are kept too
    b2 = buffers()
    rgb, depth = be.from_host(b2["rgb"]), be.from_host(b2["depth"][..., None])
    rr = RenderResult.from_buffers(rgb=wrap(rgb), depth=wrap(depth), instance_index=dev["instance_index"] if
                                   flavour == "device" else wrap(be.from_host(b2["instance_index"])),
                                   object_coordinates=wrap(be.from_host(b2["object_coordinates"])))
    assert rr.rgb.ptr == rgb.ptr and rr.rgb.dtype == np.float32 and rr.rgb.shape == (4, 5, 4)
    assert rr.depth.ptr == depth.ptr and rr.depth.shape == (4, 5)


def test_from_buffers_converts_on_the_device(be):
    b = buffers()
    h, w = 4, 5
    conv = dict(rgb=b["rgb"].astype(np.float64)[..., :3], depth=b["depth"][..., None].astype(np.float64),
                instance_index=b["instance_index"].astype(np.int64), object_coordinates=b["object_coordinates"].astype(
                    np.float64), cam_coordinates=np.random.default_rng(1).random((h, w, 3)),
                normals=np.random.default_rng(2).random((h, w, 3)).astype(np.float32),
                class_index=np.full((h, w, 1), 3, np.uint8), triangle_id=np.arange(h * w).reshape(h, w),
                barycentrics=np.full((h, w, 3), 0.25))
    rr = RenderResult.from_buffers(**{k: be.from_host(v) for k, v in conv.items()})
    want = RenderResult.from_buffers(**conv)
    for name in pc.RENDER_BUFFERS:
        got = getattr(rr, name)
        assert isinstance(got, DeviceArray), name
        if name == "rgb":  # float rgb stays float on the device (3 channels, not rounded to 8 bits)
            assert got.dtype == np.float32 and got.shape == (h, w, 3)
            np.testing.assert_array_equal(got.get(), conv["rgb"].astype(np.float32))
            continue
        ref_a = getattr(want, name)
        assert got.dtype == ref_a.dtype and got.shape == ref_a.shape, name
        np.testing.assert_array_equal(got.get(), ref_a, err_msg=name)
    # a strided producer is copied into a contiguous array on the device first
    wide = be.from_host(np.stack([b["object_coordinates"], np.zeros_like(b["object_coordinates"])], axis=-1))
    strided = CAI(wide, shape=(h, w, 3), strides=(w * 3 * 8, 3 * 8, 8))
    rr = RenderResult.from_buffers(**{k: be.from_host(v) for k, v in b.items() if k != "object_coordinates"},
                                   object_coordinates=strided)
    assert rr.object_coordinates.ptr != wide.ptr
    np.testing.assert_array_equal(rr.object_coordinates.get(), b["object_coordinates"])


def _outcome(fn):
    try:
        fn()
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    return None


ERROR_CASES = [
    dict(instance_index=np.full((4, 5), 40000)),
    dict(instance_index=np.full((4, 5), -1, np.int16)),
    dict(instance_index=np.full((4, 5), 70000, np.uint32)),
    dict(instance_index=np.full((4, 5), 2 ** 63, np.uint64)),
    dict(instance_index=np.zeros((4, 5), bool)),
    dict(instance_index=np.zeros((4, 5), np.float32)),
    dict(instance_index=np.zeros((4, 5, 2), np.int16)),
    dict(depth=np.ones((4, 6), np.float32)),
    dict(depth=np.ones((4, 5), np.int32)),
    dict(object_coordinates=np.ones((4, 5, 4), np.float32)),
    dict(rgb=np.ones((4, 5, 2), np.float32)),
    dict(rgb=np.full((4, 5, 3), 1.5, np.float32)),
    dict(rgb=np.full((4, 5, 3), -0.5)),
    dict(rgb=np.full((4, 5, 3), np.nan, np.float16)),
    dict(rgb=np.ones((4, 5, 3), np.int32)),
    dict(cam_coordinates=np.ones((4, 5, 2), np.float32)),
    dict(class_index=np.full((4, 5), 99999)),
    dict(class_index=np.full((4, 5), -3, np.int8)),
    dict(triangle_id=np.full((4, 5), -2)),
    dict(triangle_id=np.full((4, 5), 2 ** 31, np.int64)),
    dict(barycentrics=np.ones((4, 5), np.float32)),
]


@pytest.mark.parametrize("case", range(len(ERROR_CASES)))
def test_from_buffers_errors_match_the_host(be, case):
    b = buffers() | ERROR_CASES[case]
    want = _outcome(lambda: RenderResult.from_buffers(**b))
    assert want is not None
    got = _outcome(lambda: RenderResult.from_buffers(**{k: be.from_host(v) for k, v in b.items()}))
    assert got == want


def test_from_buffers_masked_finiteness_on_the_device(be):
    b = buffers()
    bg = b["instance_index"] == 0
    depth, oc = b["depth"].copy(), b["object_coordinates"].copy()
    depth[bg] = np.nan  # background may hold anything
    oc[bg] = np.inf
    case = b | dict(depth=depth, object_coordinates=oc)
    rr = RenderResult.from_buffers(**{k: be.from_host(v) for k, v in case.items()})
    assert np.isnan(rr.depth.get()[0, 0]) and np.isinf(rr.object_coordinates.get()[0, 0, 0])
    for name, bad in (("depth", [(1, 1), (3, 0)]), ("object_coordinates", [(2, 3)])):
        arr = (depth if name == "depth" else oc).copy()
        for r, c in bad:
            arr[r, c] = np.inf if name == "depth" else np.nan
        case = b | {name: arr}
        want = _outcome(lambda: RenderResult.from_buffers(**case))
        assert want is not None and f"row {bad[0][0]}, col {bad[0][1]}" in want[1]
        got = _outcome(lambda: RenderResult.from_buffers(**{k: be.from_host(v) for k, v in case.items()}))
        assert got == want
    count, first = be.kernels.array_masked_nonfinite(be.from_host(np.array([[np.nan, 1], [2, np.inf], [3, 4]],
                                                                           np.float32)),
                                                     be.from_host(np.array([0, 5, 1], np.int16)))
    assert (count, first) == (1, 1)
    assert be.kernels.array_masked_nonfinite(be.from_host(np.ones((3, 2), np.float32)),
                                             be.from_host(np.ones(3, np.int16))) == (0, -1)


def test_from_buffers_feed_the_gradients(be):
    """Device buffers of another renderer (float rgb kept as float) give the gradients of the
    same float buffers on the host."""
    cam = ref.Camera(48, 36, 40.0, 40.0, 24.0, 18.0)
    poses = [ref.pose_matrix(0.2, 0.1, 0.0, t=(-0.04, 0.0, 0.5), dtype=np.float64),
             ref.pose_matrix(-0.3, 0.2, 0.4, t=(0.05, 0.01, 0.6), dtype=np.float64)]
    raw = ref.raycast_spheres(ref.Scene(cam, [ref.Obj(p, 5 + k, radius=0.06) for k, p in enumerate(poses)]),
                              background=0.25)
    rgbf = (raw.rgb[..., :3] / 255.0).astype(np.float32)
    dev = RenderResult.from_buffers(rgb=be.from_host(rgbf), depth=be.from_host(raw.depth),
                                    instance_index=be.from_host(raw.instance_index.astype(np.int32)),
                                    object_coordinates=be.from_host(raw.object_coordinates))
    scene = ref.Scene(cam, [ref.Obj(p, 5 + k) for k, p in enumerate(poses)])
    g = np.random.default_rng(2).standard_normal((3, 36, 48)).astype(np.float32)
    hostbuf = ref.Buffers(rgb=rgbf, depth=raw.depth, instance_index=raw.instance_index.astype(np.int16),
                          object_coordinates=raw.object_coordinates)
    for mode in ("exact", "compat"):
        want = backpropagate_gradient_to_poses(scene, hostbuf, g, mode=mode)
        got = backpropagate_gradient_to_poses(scene, dev, be.from_host(g), mode=mode)
        assert np.abs(want).min() > 0
        np.testing.assert_allclose(got.get(), want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


# ---- validation of device inputs in the gradient functions ---------------------------------------

H, W = 9, 11


def _setup():
    rng = np.random.default_rng(0)
    buf = ref.random_buffers(rng, H, W, 2)
    cam = ref.Camera(W, H, 10, 10, W / 2, H / 2)
    scene = ref.Scene(cam, [ref.Obj(ref.pose_matrix(t=(0, 0, 1.0)), i) for i in (1, 2)])
    g = rng.standard_normal((3, H, W)).astype(np.float32)
    return scene, buf, g


def _with(buf, **kw):
    d = dict(rgb=buf.rgb, depth=buf.depth, instance_index=buf.instance_index,
             object_coordinates=buf.object_coordinates)
    d.update(kw)
    return d


GRAD_CASES = [
    dict(rgb=np.zeros((H, W), np.uint8)),
    dict(rgb=np.zeros((H, W, 2), np.uint8)),
    dict(rgb=np.zeros((H, W, 4), np.int32)),
    dict(depth=np.zeros((H, W + 1), np.float32)),
    dict(depth=np.zeros((H, W), np.int32)),
    dict(depth=np.zeros((H, W, 2), np.float32)),
    dict(instance_index=np.zeros((H, W), np.float32)),
    dict(instance_index=np.full((H, W), 40000, np.int32)),
    dict(instance_index=np.full((H, W), -40000, np.int64)),
    dict(instance_index=np.zeros((H + 1, W), np.int16)),
    dict(instance_index=np.full((H, W), 9, np.int32)),  # an id no object has (the kernel's bad_id)
    dict(object_coordinates=np.zeros((H, W, 4), np.float32)),
    dict(object_coordinates=np.zeros((H, W, 3), np.int16)),
]


@pytest.mark.parametrize("case", range(len(GRAD_CASES)))
def test_gradient_errors_match_the_host(be, case):
    scene, buf, g = _setup()
    arrays = _with(buf, **GRAD_CASES[case])
    want = _outcome(lambda: backpropagate_gradient_to_poses(scene, ref.Buffers(**arrays), g))
    assert want is not None
    dev = ref.Buffers(**{k: be.from_host(np.asarray(v)) for k, v in arrays.items()})
    assert _outcome(lambda: backpropagate_gradient_to_poses(scene, dev, be.from_host(g))) == want
    want_img = _outcome(lambda: compute_image_space_gradients(scene, ref.Buffers(**arrays)))
    assert _outcome(lambda: compute_image_space_gradients(scene, dev)) == want_img


@pytest.mark.parametrize("grad,kw", [(np.zeros((3, H, W), np.int32), {}), (np.zeros((H, W, 3), np.float32), {}),
                                     (np.zeros((3, H, W), np.float32), dict(layout="HWC"))])
def test_bad_grad_on_device_matches_the_host(be, grad, kw):
    scene, buf, _ = _setup()
    dev = ref.Buffers(**{k: be.from_host(np.asarray(v)) for k, v in _with(buf).items()})
    want = _outcome(lambda: backpropagate_gradient_to_poses(scene, buf, grad, **kw))
    assert want is not None
    assert _outcome(lambda: backpropagate_gradient_to_poses(scene, dev, be.from_host(grad), **kw)) == want


def test_int_and_squeezed_device_buffers_are_converted(be):
    scene, buf, g = _setup()
    want = backpropagate_gradient_to_poses(scene, buf, g)
    dev = ref.Buffers(rgb=be.from_host(buf.rgb.astype(np.float64) / 255.0),
                      depth=be.from_host(buf.depth[..., None].astype(np.float64)),
                      instance_index=be.from_host(buf.instance_index[..., None].astype(np.uint8)),
                      object_coordinates=be.from_host(buf.object_coordinates.astype(np.float64)))
    got = backpropagate_gradient_to_poses(scene, dev, be.from_host(g.astype(np.float64)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.get(), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_mixed_host_and_device_inputs_name_the_arguments(be):
    scene, buf, g = _setup()
    dev = {k: be.from_host(np.asarray(v)) for k, v in _with(buf).items()}
    with pytest.raises(ValueError, match=r"grad is a NumPy array but render_result\.rgb is on cuda:0"):
        backpropagate_gradient_to_poses(scene, ref.Buffers(**dev), g)
    with pytest.raises(ValueError, match=r"render_result\.depth is a NumPy array but render_result\.rgb is on cuda:0"):
        compute_image_space_gradients(scene, ref.Buffers(**(dev | dict(depth=buf.depth))))
    with pytest.raises(ValueError, match=r"device='cpu' but render_result\.rgb is on cuda:0"):
        compute_image_space_gradients(scene, ref.Buffers(**dev), device="cpu")
    with pytest.raises(ValueError, match=r"depth is a NumPy array but rgb is on cuda:0"):
        RenderResult.from_buffers(**(dev | dict(depth=buf.depth)))
    with pytest.raises(ValueError, match=r"delta is a NumPy array but pose is on cuda:0"):
        apply_pose_delta(be.from_host(np.eye(4)), np.zeros(6))
    with pytest.raises(ValueError, match=r"device='cpu' but pose is on cuda:0"):
        apply_pose_delta(be.from_host(np.eye(4)), [0.0] * 6, device="cpu")


# ---- apply_pose_delta on the device ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_pose_delta_on_device(be, dtype):
    rng = np.random.default_rng(8)
    poses = np.stack([pc.pose(tuple(rng.uniform(-3, 3, 3)), tuple(rng.uniform(-1, 1, 3))) for _ in range(5)])
    poses = poses.astype(dtype)
    tol = 1e-6 if dtype == np.float32 or not emulated(be) else 1e-12
    for delta in (rng.normal(0, 0.2, (5, 6)), rng.normal(0, 0.2, (1, 6)).astype(np.float32),
                  np.array([[1, 0, -1, 0, 2, 0]] * 5, np.int32)):
        for ortho in (True, False):
            got = apply_pose_delta(be.from_host(poses), be.from_host(delta), ortho)
            assert isinstance(got, DeviceArray) and got.dtype == dtype and got.shape == poses.shape
            np.testing.assert_allclose(got.get(), apply_pose_delta(poses, delta, ortho), rtol=0, atol=tol)
    one = apply_pose_delta(be.from_host(poses[0]), [0.1, 0.0, 0.0, 0.0, 0.0, 0.01])  # a list goes anywhere
    np.testing.assert_allclose(one.get(), apply_pose_delta(poses[0], [0.1, 0.0, 0.0, 0.0, 0.0, 0.01]), atol=tol)
    empty = apply_pose_delta(be.from_host(poses[:0]), be.from_host(np.zeros((0, 6))))
    assert empty.shape == (0, 4, 4)


@pytest.mark.parametrize("pose,delta", [
    (np.eye(4, dtype=np.int32), np.zeros(6)),
    (np.eye(3), np.zeros(6)),
    (np.eye(4), np.zeros(5)),
    (np.stack([np.eye(4)] * 3), np.zeros((2, 6))),
    (np.eye(4), np.zeros(6, bool)),
    (np.full((4, 4), np.nan), np.zeros(6)),
    (np.eye(4), np.array([0, 0, np.inf, 0, 0, 0])),
    (np.eye(4), np.array([0, 0, np.nan, 0, 0, 0], np.float16)),
])
def test_apply_pose_delta_errors_match_the_host(be, pose, delta):
    want = _outcome(lambda: apply_pose_delta(pose, delta))
    assert want is not None
    assert _outcome(lambda: apply_pose_delta(be.from_host(pose), be.from_host(delta))) == want
    assert _outcome(lambda: apply_pose_delta(pose, delta, device="cuda")) == want


def test_apply_pose_delta_numpy_path_unchanged_without_device():
    """NumPy in, no device: NumPy's SVD, bit for bit the documented formula's result."""
    rng = np.random.default_rng(9)
    poses = np.stack([pc.pose(tuple(rng.uniform(-3, 3, 3)), tuple(rng.uniform(-1, 1, 3))) for _ in range(4)])
    delta = rng.normal(0, 0.2, (4, 6))
    out = apply_pose_delta(poses, delta, fix_reflection=True)
    al, bt, ga, a, b, c = delta.T
    D = np.zeros((4, 4, 4))
    D[:, 0] = np.stack([np.ones(4), -ga, bt, a], 1)
    D[:, 1] = np.stack([ga, np.ones(4), -al, b], 1)
    D[:, 2] = np.stack([-bt, al, np.ones(4), c], 1)
    D[:, 3, 3] = 1
    new = poses @ D
    u, _, vt = np.linalg.svd(new[:, :3, :3])
    flip = np.linalg.det(u @ vt) < 0
    u[flip, :, 2] *= -1.0
    new[:, :3, :3] = u @ vt
    assert out.tobytes() == new.tobytes()


# ---- the per-mesh device cache --------------------------------------------------------------------

def test_meshes_are_uploaded_once(be, monkeypatch):
    mesh = Mesh.sphere(0.2, 12, 7)
    sc = Scene(pc.scene("basic", 31, 33).camera, [SceneObject(mesh, pc.pose(t=(0.0, 0.0, 1.0))),
                                                  SceneObject(mesh, pc.pose(t=(0.2, 0.0, 1.5)))])
    uploads = []
    real = _device.from_host

    def counting(module, a, device_id):
        uploads.append(a)
        return real(module, a, device_id)

    monkeypatch.setattr(_device, "from_host", counting)
    first = render(sc, device="cuda")
    n_vertices = sum(a is mesh.vertices for a in uploads)
    assert n_vertices == 1  # two objects share the mesh: one copy
    for _ in range(3):
        again = render(sc, device="cuda")
    assert sum(a is mesh.vertices for a in uploads) == 1 and not any(a is mesh.faces for a in uploads[2:])
    np.testing.assert_array_equal(again.get().rgb, first.get().rgb)
    copies = mesh._device_arrays[(be.module.__name__, 0)]
    assert copies[0].get().tobytes() == mesh.vertices.tobytes()
    # a pickled mesh leaves its device copies behind and keeps its arrays read-only
    clone = pickle.loads(pickle.dumps(mesh))
    assert clone._device_arrays is None and not clone.vertices.flags.writeable
    np.testing.assert_array_equal(clone.vertices, mesh.vertices)
    # the CPU renders the host arrays
    uploads.clear()
    render(sc)
    assert uploads == []


def test_empty_scene_and_objects_behind_the_camera(be):
    sc = pc.scene("empty", 31, 33)
    buf = render(sc, device="cuda")
    assert buf.instance_index.get().max() == 0
    g = be.from_host(np.ones((3, 33, 31), np.float32))
    grad, con = backpropagate_gradient_to_poses(sc, buf, g, return_contributions=True)
    assert grad.shape == (0, 6) and con.shape == (0, 6, 33, 31)
    sc = pc.scene("behind", 31, 33)
    buf = render(sc, device="cuda")
    ids = buf.instance_index.get()
    assert 1 not in ids  # wholly behind the camera: not drawn
    grad = backpropagate_gradient_to_poses(sc, buf, g).get()
    np.testing.assert_array_equal(grad[0], 0)


# ---- the generic kernels behind from_buffers --------------------------------------------------------

def test_pad_columns_and_cast_int16_kernels(be):
    src = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = be.empty((4, 5), np.float32)
    be.kernels.array_pad_columns(be.from_host(src), out, 7.5)
    np.testing.assert_array_equal(out.get(), np.hstack([src, np.full((4, 2), 7.5, np.float32)]))
    with pytest.raises(ValueError, match="shorter"):
        be.kernels.array_pad_columns(be.from_host(src), be.empty((4, 2), np.float32), 0.0)
    with pytest.raises(TypeError, match="float32"):
        be.kernels.array_pad_columns(be.from_host(src.astype(np.float64)), out, 0.0)
    for dtype in (np.int8, np.uint8, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        ids = np.array([0, 1, 127, 5, 0], dtype)
        dst = be.empty((5,), np.int16)
        be.kernels.array_cast_int16(be.from_host(ids), dst)
        np.testing.assert_array_equal(dst.get(), ids.astype(np.int16))
    with pytest.raises(TypeError, match="cannot convert from dtype float32"):
        be.kernels.array_cast_int16(be.from_host(np.zeros(3, np.float32)), be.empty((3,), np.int16))
    with pytest.raises(TypeError, match="int16"):
        be.kernels.array_cast_int16(be.from_host(np.zeros(3, np.int32)), be.empty((3,), np.int32))
    with pytest.raises(TypeError, match="float32"):
        be.kernels.array_masked_nonfinite(be.from_host(np.zeros(3)), be.from_host(np.ones(3, np.int16)))
    assert be.kernels.array_masked_nonfinite(be.empty((0, 3), np.float32), be.empty((0,), np.int16)) == (0, -1)
