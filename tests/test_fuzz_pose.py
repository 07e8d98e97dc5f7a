"""Fuzzing the pose functions: render (with the scene it is given: Camera, Mesh, SceneObject,
Scene, Light), compute_image_space_gradients, backpropagate_gradient_to_poses, apply_pose_delta and
RenderResult.from_buffers (the contract is in fuzz_util's docstring).

Oracles: the NumPy reference of reference_pose (image gradients, back-propagation, pose delta),
the buffer invariants of the rasterizer (background pixels cleared, ids, depth within the clip
range, barycentrics) and, on the emulated CUDA backend, the CPU rasterizer's ids bit for bit.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import reference_pose as ref
from conftest import BACKENDS, use_backend
from fuzz_util import EQUIVALENT, assert_names, device_safe, fuzz_settings, mutations, on_device, outcome
from fuzz_util import results_equal, to_host
from geomops import _backend
from geomops.pose import BACKGROUND_DEPTH, Camera, Light, Mesh, RenderResult, Scene, SceneObject
from geomops.pose import apply_pose_delta, backpropagate_gradient_to_poses, compute_image_space_gradients, render

RENDER_OPTIONS = {"buffers": ["all", "gradient", ("normals", "triangle_id"), "none", ("depth2",), 3, None],
                  "num_threads": [0, -2, 2.5, "1", 1 << 40, 2]}


# ---- render -----------------------------------------------------------------------------------

def _rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@st.composite
def scene_params(draw):
    """The arguments of the constructors of a small scene, by name (``objects[k].field``)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    w, h = draw(st.integers(1, 20)), draw(st.integers(1, 16))
    p = {"width": w, "height": h, "fx": float(0.9 * w + 1), "fy": float(0.9 * w + 1), "cx": w / 2 + 0.3,
         "cy": h / 2 - 0.2, "near": 0.1, "far": 10.0}
    for k in range(draw(st.integers(0, 3))):
        shape = draw(st.sampled_from(["box", "sphere", "soup"]))
        if shape == "box":
            m = Mesh.box(0.3)
            verts, faces = np.array(m.vertices), np.array(m.faces)
        elif shape == "sphere":
            m = Mesh.sphere(0.25, 6, 4)
            verts, faces = np.array(m.vertices), np.array(m.faces)
        else:
            verts = rng.uniform(-0.4, 0.4, (6, 3)).astype(np.float32)
            faces = rng.integers(0, 6, (draw(st.integers(0, 5)), 3)).astype(np.int32)
        pose = np.eye(4)
        pose[:3, :3] = _rotation(rng)
        pose[:3, 3] = [rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(-0.5, 3.0)]
        p[f"objects[{k}].vertices"] = verts
        p[f"objects[{k}].faces"] = faces
        p[f"objects[{k}].vertex_colors"] = rng.uniform(0, 1, (len(verts), 3)) if draw(st.booleans()) else None
        p[f"objects[{k}].normals"] = verts.astype(np.float64) if draw(st.booleans()) else None
        p[f"objects[{k}].class_index"] = k + 1
        p[f"objects[{k}].pose"] = pose
        p[f"objects[{k}].instance_index"] = draw(st.sampled_from([None, k + 1, 7]))
    p["camera_pose"] = None if draw(st.booleans()) else np.eye(4)
    p["background"] = (0.1, 0.2, 0.3)
    p["light.direction"] = (0.3, -0.5, -0.8)
    p["light.color"] = (0.9, 0.8, 0.7)
    p["light.ambient"] = 0.2
    return p


def _build(p):
    cam = Camera(p["width"], p["height"], p["fx"], p["fy"], p["cx"], p["cy"], p["near"], p["far"])
    objs = []
    k = 0
    while f"objects[{k}].vertices" in p:
        o = {n.split(".", 1)[1]: v for n, v in p.items() if n.startswith(f"objects[{k}].")}
        mesh = Mesh(o["vertices"], o["faces"], vertex_colors=o["vertex_colors"], normals=o["normals"],
                    class_index=o["class_index"])
        objs.append(SceneObject(mesh, o["pose"], instance_index=o["instance_index"]))
        k += 1
    light = Light(direction=p["light.direction"], color=p["light.color"], ambient=p["light.ambient"])
    return Scene(cam, objs, camera_pose=p["camera_pose"], background=p["background"], light=light)


def _check_buffers(rr, scene, what):
    """The rasterizer's invariants (docs/rendering.md)."""
    h, w = scene.camera.height, scene.camera.width
    inst, depth = rr.instance_index, rr.depth
    assert rr.rgb.dtype == np.uint8 and rr.rgb.shape == (h, w, 4), what
    assert depth.dtype == np.float32 and depth.shape == (h, w), what
    assert inst.dtype == np.int16 and inst.shape == (h, w), what
    assert rr.object_coordinates.dtype == np.float32 and rr.object_coordinates.shape == (h, w, 3), what
    ids = {o.instance_index for o in scene.objects}
    assert set(np.unique(inst).tolist()) <= ids | {0}, f"{what}: unknown ids {np.unique(inst)}"
    bg = inst == 0
    assert np.all(depth[bg] == BACKGROUND_DEPTH) and np.all(rr.rgb[..., 3][bg] == 0), what
    assert np.all(rr.rgb[..., 3][~bg] == 255), what
    near, far = scene.camera.near, scene.camera.far
    d = depth[~bg].astype(np.float64)
    assert np.all(np.isfinite(d)) and np.all(d >= near * (1 - 1e-5)) and np.all(d <= far * (1 + 1e-5)), \
        f"{what}: depth outside [near, far]: {d.min() if d.size else None} .. {d.max() if d.size else None}"
    assert np.all(np.isfinite(rr.object_coordinates[~bg])), what
    if rr.triangle_id is not None:
        assert np.all(rr.triangle_id[bg] == -1) and np.all(rr.triangle_id[~bg] >= 0), what
    if rr.barycentrics is not None:
        b = rr.barycentrics[~bg].astype(np.float64)
        assert np.all(b >= 0) and np.allclose(b.sum(axis=1), 1.0, atol=1e-4), what
    if rr.normals is not None:
        assert np.all(np.isfinite(rr.normals)), what


def _param_names(name):
    """The words an error about parameter ``name`` may use."""
    last = name.split(".")[-1]
    return (last, name, "scene") if last not in ("direction", "color", "ambient") else (last, "light")


@pytest.mark.parametrize("device", BACKENDS)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_render(device, data):
    params = data.draw(scene_params(), "scene")
    opts = {"buffers": "all", "num_threads": None}
    scene = _build(params)
    with use_backend(device) as dev:
        status, base = outcome(lambda: render(scene, **opts, device=dev).get())
    assert status == "ok", base
    _check_buffers(base, scene, "valid scene")

    name = data.draw(st.sampled_from(sorted(params) + sorted(RENDER_OPTIONS)), "parameter")
    if name in RENDER_OPTIONS:
        new = data.draw(st.sampled_from(RENDER_OPTIONS[name]), "option")
        kind, what, mopts, mparams = "option", f"-> {new!r}", dict(opts, **{name: new}), params
    else:
        value = params[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            role = "count" if isinstance(value, int) else "scalar"
        elif isinstance(value, tuple) or value is None:
            role = "float"
            value = None if value is None else np.array(value, np.float64)
        else:
            role = "index" if name.endswith(".faces") else "float"
        kind, what, new = data.draw(mutations(value, role), "mutation")
        mopts, mparams = opts, dict(params, **{name: new})
    note(f"{name} {what}")

    def call():
        sc = _build(mparams)
        with use_backend(device) as dev:
            return sc, render(sc, **mopts, device=dev).get()

    status, got = outcome(call)
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, *_param_names(name))
        return
    sc, rr = got
    if kind in EQUIVALENT:
        assert all(results_equal(getattr(rr, b), getattr(base, b)) for b in RenderResult.__slots__)
        return
    _check_buffers(rr, sc, f"{name} {what}")
    if device == "cuda-emu":  # the GPU rasterizer's ids and colours equal the CPU's bit for bit
        cpu = render(sc, **mopts)
        for b in ("rgb", "instance_index", "class_index", "triangle_id"):
            assert results_equal(getattr(rr, b), getattr(cpu, b)), f"{name} {what}: {b} differs from the CPU's"


# ---- image-space gradients and back-propagation -------------------------------------------------

@st.composite
def pose_problems(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    ids = list(range(1, draw(st.integers(1, 3)) + 1))
    buf = ref.random_buffers(rng, h, w, len(ids), rgb_channels=draw(st.sampled_from([3, 4])))
    cam = ref.Camera(w, h, 0.9 * w + 1, 0.95 * w + 1, w / 2 + 0.3, h / 2 - 0.2)
    objs = [ref.Obj(ref.pose_matrix(*rng.uniform(-0.5, 0.5, 3), t=(*rng.uniform(-0.05, 0.05, 2), 1.0)), i)
            for i in ids]
    scene = ref.Scene(cam, objs, None if draw(st.booleans()) else ref.pose_matrix(0.1, 0.0, 0.05, t=(0, 0, 0.02)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    grad = rng.standard_normal((3, h, w)).astype(dtype)
    return scene, buf, grad


BUFFER_ROLES = {"rgb": "float", "depth": "float", "instance_index": "index", "object_coordinates": "float"}


def _buffers_with(buf, **kw):
    d = dict(rgb=buf.rgb, depth=buf.depth, instance_index=buf.instance_index,
             object_coordinates=buf.object_coordinates)
    d.update(kw)
    return ref.Buffers(**d)


def _mutate_buffer(data, buf):
    field = data.draw(st.sampled_from(sorted(BUFFER_ROLES)), "buffer")
    kind, what, new = data.draw(mutations(getattr(buf, field), BUFFER_ROLES[field]), "mutation")
    return field, kind, what, _buffers_with(buf, **{field: new})


def _finite(*arrays):
    for a in arrays:
        try:
            x = np.asarray(a)
        except Exception:
            return False
        if x.dtype.kind == "f" and x.size and not (np.isfinite(x).all() and np.abs(x.astype(np.float64)).max() < 1e30):
            return False
        if x.dtype.kind not in "biuf":
            return False
    return True


GRADIENT_OPTIONS = {"border": ["zero", "replicate", "reflect", None, 1],
                    "helper_semantics": ["cuda", "cpu", "gpu", None],
                    "num_threads": [0, 1.5, True, 1 << 40, 3]}


@pytest.mark.parametrize("device", BACKENDS)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_compute_image_space_gradients(device, data):
    scene, buf, _ = data.draw(pose_problems(), "problem")
    opts = {"border": data.draw(st.sampled_from(["zero", "replicate"])),
            "helper_semantics": data.draw(st.sampled_from(["cuda", "cpu"]))}
    with use_backend(device) as dev:
        status, base = outcome(lambda: compute_image_space_gradients(scene, buf, **opts, device=dev))
    assert status == "ok", base

    def check(result, b, o, what):
        gx, gy, valid = result
        plane = [np.asarray(x) for x in (b.instance_index, b.depth)]
        plane = [x[..., 0] if x.ndim == 3 else x for x in plane]  # (H, W, 1) is accepted (stillleben's)
        rx, ry, rv = ref.image_gradients(np.asarray(b.rgb), *plane, o["border"], o["helper_semantics"])
        np.testing.assert_array_equal(valid, rv, err_msg=what)
        np.testing.assert_allclose(gx, rx, rtol=1e-6, atol=1e-6, err_msg=what)
        np.testing.assert_allclose(gy, ry, rtol=1e-6, atol=1e-6, err_msg=what)

    check(base, buf, opts, "valid call")
    target = data.draw(st.sampled_from(["buffer", "option", "scene"]), "target")
    mscene, mbuf, mopts = scene, buf, opts
    if target == "buffer":
        name, kind, what, mbuf = _mutate_buffer(data, buf)
    elif target == "option":
        name = data.draw(st.sampled_from(sorted(GRADIENT_OPTIONS)), "option")
        new = data.draw(st.sampled_from(GRADIENT_OPTIONS[name]), "value")
        kind, what, mopts = "option", f"-> {new!r}", dict(opts, **{name: new})
    else:
        name, kind = "scene.camera", "scene"
        cam = scene.camera
        mscene = data.draw(st.sampled_from([None, ref.Scene(ref.Camera(cam.width + 1, cam.height, 1, 1, 0, 0), []),
                                            object()]), "scene")
        what = f"-> {type(mscene).__name__}"
    note(f"{name} {what}")
    with use_backend(device) as dev:
        status, got = outcome(lambda: compute_image_space_gradients(mscene, mbuf, **mopts, device=dev))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name, *(["render_result"] if target == "buffer" else []),
                     *(["scene"] if target == "scene" else []))
        return
    if kind in EQUIVALENT:
        assert results_equal(got, base)
        return
    if _finite(mbuf.rgb, mbuf.depth):
        check(got, mbuf, mopts, f"{name} {what}")


BACKPROP_OPTIONS = {"mode": ["exact", "compat", "fast", None], "helper_semantics": ["cpu", "gpu"],
                    "border": ["zero", "replicate", "reflect", 0], "layout": ["HWC", "WHC", None],
                    "return_contributions": [True, 1, "yes"], "num_threads": [0, 2.5, 1 << 40, 2],
                    "visualize_grad": [1, "no", None]}


def _ref_backprop(scene, buf, g, mode, semantics, border):
    return ref.backprop(scene.camera.projection_matrix(), [o.pose for o in scene.objects],
                        [o.instance_index for o in scene.objects], np.asarray(buf.rgb),
                        np.asarray(buf.instance_index), np.asarray(buf.depth), np.asarray(buf.object_coordinates),
                        g, mode=mode, semantics=semantics, border=border,
                        camera_pose=scene.camera_pose if mode == "exact" else None)


def _close(got, want, what):
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    err = float(np.abs(np.asarray(got, np.float64) - want).max(initial=0.0))
    assert err <= 2e-5 * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})\n{got}\n{want}"


@pytest.mark.parametrize("device", BACKENDS)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_backpropagate_gradient_to_poses(device, data):
    scene, buf, grad = data.draw(pose_problems(), "problem")
    mode = data.draw(st.sampled_from(["exact", "compat"]), "mode")
    semantics = data.draw(st.sampled_from(["cuda", "cpu"]), "semantics")
    opts = {"mode": mode, "helper_semantics": semantics}
    with use_backend(device) as dev:
        status, base = outcome(lambda: backpropagate_gradient_to_poses(scene, buf, grad, **opts, device=dev))
    assert status == "ok", base
    assert base.dtype == grad.dtype and base.shape == (len(scene.objects), 6)
    border = "zero" if mode == "compat" else "replicate"
    _close(base, _ref_backprop(scene, buf, grad, mode, semantics, border), "valid call")

    target = data.draw(st.sampled_from(["grad", "grad", "buffer", "option", "pose", "id"]), "target")
    mscene, mbuf, mgrad, mopts = scene, buf, grad, opts
    if target == "grad":
        name = "grad"
        kind, what, mgrad = data.draw(mutations(grad, "float"), "mutation")
    elif target == "buffer":
        name, kind, what, mbuf = _mutate_buffer(data, buf)
    elif target == "option":
        name = data.draw(st.sampled_from(sorted(BACKPROP_OPTIONS)), "option")
        new = data.draw(st.sampled_from(BACKPROP_OPTIONS[name]), "value")
        kind, what, mopts = "option", f"-> {new!r}", dict(opts, **{name: new})
        if name == "layout" and new == "HWC":
            mgrad = np.ascontiguousarray(grad.transpose(1, 2, 0))
            kind = "layout"  # the same gradient in the other layout: the same result
    else:
        k = data.draw(st.integers(0, len(scene.objects) - 1), "object")
        name = "pose" if target == "pose" else "instance_index"
        objs = [ref.Obj(o.pose, o.instance_index) for o in scene.objects]
        if target == "pose":
            kind, what, new = data.draw(mutations(objs[k].pose, "float"), "mutation")
            objs[k].pose = new
        else:
            new = data.draw(st.sampled_from([0, -1, 40000, None, 1.5, "1", True, 99]), "id")
            kind, what = "values", f"-> {new!r}"
            objs[k].instance_index = new
        mscene = ref.Scene(scene.camera, objs, scene.camera_pose)
    note(f"{name} {what}")
    with use_backend(device) as dev, warnings.catch_warnings():
        # a mutated pose or buffer may put pixels behind the camera: the documented warning, not a failure
        warnings.filterwarnings("ignore", message=".*map to camera Z <= 0", category=RuntimeWarning)
        status, got = outcome(lambda: backpropagate_gradient_to_poses(mscene, mbuf, mgrad, **mopts, device=dev))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name, *(["render_result"] if target == "buffer" else []))
        return
    if isinstance(got, tuple):
        got = got[0]
    if kind in EQUIVALENT:
        assert results_equal(got, base), f"{name} {what} changed the result"
        return
    finite_inputs = _finite(mgrad, mbuf.rgb, mbuf.depth, mbuf.object_coordinates,
                            *[o.pose for o in mscene.objects])
    if finite_inputs:
        assert np.isfinite(got).all(), f"{name} {what}: finite inputs gave a non-finite gradient {got}"
    else:
        # a NaN / inf where it is not read (else a ValueError): a finite result, the unmutated one
        # where the mutation is a value the kernel does not read
        huge = any(np.asarray(a).dtype.kind == "f" and np.isfinite(np.asarray(a)).all()
                   for a in (mgrad, mbuf.rgb, mbuf.depth, mbuf.object_coordinates))
        assert np.isfinite(got).all() or huge, f"{name} {what}: a non-finite input gave {got} without an error"


# ---- apply_pose_delta -------------------------------------------------------------------------

@st.composite
def pose_deltas(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch = draw(st.sampled_from([None, 1, 3]))
    n = 1 if batch is None else batch
    poses = np.stack([np.eye(4) for _ in range(n)])
    for p in poses:
        p[:3, :3] = _rotation(rng)
        p[:3, 3] = rng.uniform(-1, 1, 3)
    delta = rng.uniform(-0.1, 0.1, (n, 6))
    if batch is None:
        return poses[0].astype(dtype), delta[0]
    if batch > 1 and draw(st.booleans()):
        delta = delta[:1]  # broadcast
    return poses.astype(dtype), delta


@pytest.mark.parametrize("device", BACKENDS)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_apply_pose_delta(device, data):
    pose, delta = data.draw(pose_deltas(), "pose")
    ortho = data.draw(st.booleans(), "orthonormalize")
    with use_backend(device) as dev:
        status, base = outcome(lambda: apply_pose_delta(pose, delta, ortho, device=dev))
    assert status == "ok", base

    def check(got, p, d, o, what):
        p = np.asarray(p)
        assert got.dtype == p.dtype and got.shape == p.shape, what
        dd = np.broadcast_to(np.asarray(d, np.float64).reshape(-1, 6), (p.reshape(-1, 4, 4).shape[0], 6))
        want = np.array([ref.apply_pose_delta(pp, de, o) for pp, de in zip(p.reshape(-1, 4, 4), dd)])
        want = want.reshape(-1, 4, 4)
        _close(got.reshape(-1, 4, 4), want, what)

    check(base, pose, delta, ortho, "valid call")
    name = data.draw(st.sampled_from(["pose", "delta", "orthonormalize", "fix_reflection"]), "argument")
    kw = {"orthonormalize": ortho}
    mpose, mdelta = pose, delta
    if name in ("orthonormalize", "fix_reflection"):
        new = data.draw(st.sampled_from([1, "yes", None, np.bool_(True), 0.0]), "value")
        kind, what = "option", f"-> {new!r}"
        kw[name] = new
    else:
        kind, what, new = data.draw(mutations(pose if name == "pose" else delta, "float"), "mutation")
        mpose, mdelta = (new, delta) if name == "pose" else (pose, new)
    note(f"{name} {what}")
    mortho = kw.pop("orthonormalize")
    with use_backend(device) as dev:
        status, got = outcome(lambda: apply_pose_delta(mpose, mdelta, mortho, **kw, device=dev))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name)
        return
    if kind in EQUIVALENT:
        assert results_equal(got, base)
        return
    if _finite(mpose, mdelta) and np.asarray(mpose).dtype.kind == "f":
        rot = np.asarray(mpose, np.float64).reshape(-1, 4, 4)[:, :3, :3]
        if np.all(np.abs(np.linalg.det(rot)) > 1e-3):  # a well-conditioned rotation block: the reference
            check(got, mpose, mdelta, bool(mortho), f"{name} {what}")
        assert np.isfinite(got).all(), f"{name} {what}: finite inputs gave {got}"


# ---- RenderResult.from_buffers ----------------------------------------------------------------

FROM_BUFFERS_ROLES = {"rgb": "float", "depth": "float", "instance_index": "index", "object_coordinates": "float",
                      "cam_coordinates": "float", "normals": "float", "class_index": "index",
                      "triangle_id": "index", "barycentrics": "float"}


@st.composite
def foreign_buffers(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    buf = ref.random_buffers(rng, h, w, 2, rgb_channels=draw(st.sampled_from([3, 4])))
    b = dict(rgb=buf.rgb if draw(st.booleans()) else buf.rgb / np.float32(255),
             depth=buf.depth, instance_index=buf.instance_index.astype(draw(st.sampled_from([np.int16, np.int32]))),
             object_coordinates=buf.object_coordinates)
    if draw(st.booleans()):
        b.update(cam_coordinates=rng.uniform(-1, 1, (h, w, 3)).astype(np.float32),
                 normals=rng.uniform(-1, 1, (h, w, 4)), class_index=np.zeros((h, w, 1), np.int64),
                 triangle_id=np.full((h, w), -1, np.int32), barycentrics=rng.uniform(0, 1, (h, w, 3)))
    return b


@pytest.mark.parametrize("flavour", ["numpy", "device"])
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_render_result_from_buffers(flavour, data):
    """Host buffers, and (on the emulated GPU) device buffers, which must give the same errors."""
    b = data.draw(foreign_buffers(), "buffers")
    status, base = outcome(lambda: RenderResult.from_buffers(**b))
    assert status == "ok", base
    name = data.draw(st.sampled_from(sorted(FROM_BUFFERS_ROLES)), "buffer")
    kind, what, new = data.draw(mutations(b.get(name), FROM_BUFFERS_ROLES[name]), "mutation")
    mb = dict(b, **{name: new})
    note(f"{name} {what}")
    if flavour == "device":
        if not all(v is None or isinstance(v, np.ndarray) and device_safe(v) for v in mb.values()):
            return  # a host scalar or list among device buffers is a placement error (tested elsewhere)
        with _backend.cuda_emulation():
            be = _backend.resolve("cuda")
            host = outcome(lambda: RenderResult.from_buffers(**mb))
            dev = outcome(lambda: RenderResult.from_buffers(**{k: on_device(be, v) for k, v in mb.items()}).get())
        if host[0] == "error" or dev[0] == "error":
            assert (dev[0], type(dev[1]), str(dev[1])) == (host[0], type(host[1]), str(host[1])), (host, dev)
        else:  # device buffers keep float rgb as float32 (documented); the rest is the host's
            for k in RenderResult.__slots__:
                if k != "rgb":
                    assert results_equal(getattr(dev[1], k), getattr(host[1], k)), k
        return
    status, got = outcome(lambda: RenderResult.from_buffers(**mb))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name)
        return
    if kind in EQUIVALENT:
        assert all(results_equal(getattr(got, k), getattr(base, k)) for k in RenderResult.__slots__)
        return
    h, w = got.depth.shape
    assert got.rgb.dtype == np.uint8 and got.rgb.shape == (h, w, 4)
    assert got.instance_index.dtype == np.int16 and got.object_coordinates.shape == (h, w, 3)
    fg = got.instance_index != 0
    assert np.isfinite(got.depth[fg]).all() and np.isfinite(got.object_coordinates[fg]).all(), \
        f"{name} {what}: non-finite foreground values were accepted"
    src = np.asarray(mb[name]) if mb[name] is not None else None
    if name in ("depth", "object_coordinates", "instance_index") and src is not None and src.dtype.kind in "biuf":
        stored = getattr(got, name)
        np.testing.assert_array_equal(stored, src.reshape(stored.shape).astype(stored.dtype),
                                      err_msg=f"{name} {what}: the stored buffer is not the given one")
