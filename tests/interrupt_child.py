"""The process that tests/test_interrupt.py interrupts: runs one long op and reports, as JSON lines
on stdout, what happened when the parent sent it SIGINT.

    python interrupt_child.py CASE BACKEND

Protocol (the parent answers each "start" with a SIGINT after a delay of its choice):
  {"event": "calibrated", "seconds": T}       the op ran once uninterrupted, T seconds (its
                                              size doubled until T >= MIN_SECONDS)
  {"event": "start", "t": ...}                the op starts now (time.monotonic, which is
                                              system-wide on Linux, so the parent can compare)
  {"event": "interrupted", "t": ..., "in_call": bool, "elapsed": ...}
                                              KeyboardInterrupt caught at t, raised inside the
                                              op call (in_call) after `elapsed` seconds of it
  {"event": "rss", "bytes": ...}              resident memory now
  {"event": "done", "equal": bool}            a last uninterrupted call gave the first result
The op is called in a loop until interrupted (a call that ends before the signal is repeated).
"""

import hashlib
import json
import math
import sys
import time

import numpy as np

import geomops
from geomops import _backend

MIN_SECONDS = 0.9  # a call that did not poll would outlast the bound by 2 * MIN_SECONDS / 3 - 0.5 s
MAX_SCALE = 16
REPEATS = 3  # interrupted calls between the two RSS readings


def emit(**fields):
    print(json.dumps(fields), flush=True)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def host(x):
    """The op result as a tuple of NumPy arrays (device arrays copied back)."""
    if isinstance(x, tuple):
        return tuple(a for item in x for a in host(item))
    if x is None:
        return ()
    if hasattr(x, "get") and not isinstance(x, np.ndarray):
        return (x.get(),)
    return (np.asarray(x),)


def neighbor_points(be, n, neighbors, seed=0):
    """n random points in the unit cube and a radius giving about `neighbors` per point."""
    pts = np.random.default_rng(seed).random((n, 3), dtype=np.float32)
    return pts, float((neighbors / n / (4 / 3 * math.pi)) ** (1 / 3))


def cconv_args(be, n, device):
    pts, r = neighbor_points(be, n, 30)
    nb = geomops.fixed_radius_search(pts, pts, r)
    rng = np.random.default_rng(1)
    filters = rng.random((3, 3, 3, 8, 16), dtype=np.float32)
    feats = rng.random((n, 8), dtype=np.float32)
    args = [filters, pts, np.float32(2 * r), np.zeros(3, np.float32), pts, feats, None, nb.neighbors_index, None,
            nb.neighbors_row_splits]
    return [be.from_host(a) if isinstance(a, np.ndarray) and a.ndim else a for a in args]


def case_cconv(be, scale, device):
    args = cconv_args(be, 60000 * scale if device == "cuda" else 120000 * scale, device)
    return lambda: geomops.continuous_conv(*args, device=device)


def case_cconv_backward(be, scale, device):
    args = cconv_args(be, 10000 * scale if device == "cuda" else 40000 * scale, device)
    g = be.from_host(np.random.default_rng(2).random((args[1].shape[0], 16), dtype=np.float32))
    return lambda: geomops.continuous_conv_backward(*args, g, device=device)


def case_knn(be, scale, device):
    pts, _ = neighbor_points(be, 25000 * scale if device == "cuda" else 150000 * scale, 1)
    p = be.from_host(pts)
    return lambda: geomops.knn_search(p, p, 32, device=device)


def case_radius(be, scale, device):
    pts, r = neighbor_points(be, 50000 * scale if device == "cuda" else 150000 * scale, 40)
    p = be.from_host(pts)
    radii = be.from_host(np.full(pts.shape[0], r, np.float32))
    return lambda: geomops.radius_search(p, p, radii, device=device)


def case_fixed_radius(be, scale, device):
    pts, r = neighbor_points(be, 40000 * scale if device == "cuda" else 500000 * scale, 40)
    p = be.from_host(pts)
    return lambda: geomops.fixed_radius_search(p, p, r, device=device)


def pose_scene(side, segments):
    from geomops.pose import Camera, Mesh, Scene, SceneObject
    cam = Camera(side, side, fx=1.2 * side, fy=1.2 * side, cx=side / 2, cy=side / 2)
    pose = np.eye(4)
    pose[2, 3] = 1.5
    objs = [SceneObject(Mesh.sphere(0.5, segments, segments // 2), pose, instance_index=1)]
    pose2 = pose.copy()
    pose2[:3, 3] = (0.4, 0.2, 1.2)
    objs.append(SceneObject(Mesh.sphere(0.3, segments, segments // 2), pose2, instance_index=2))
    return Scene(cam, objs)


def case_render(be, scale, device):
    scene = pose_scene(int(512 * math.sqrt(scale)) if device == "cuda" else int(2048 * math.sqrt(scale)),
                       256 if device == "cuda" else 2048)
    return lambda: geomops.pose.render(scene, device=device)


def pose_inputs(be, scale, device, with_grad=True):
    side = int(2048 * math.sqrt(scale)) if device == "cuda" else int(3072 * math.sqrt(scale))
    scene = pose_scene(side, 128)
    res = geomops.pose.render(scene, buffers="gradient", device=device)
    if not with_grad:
        return scene, res, None
    grad = be.from_host(np.random.default_rng(3).standard_normal((3, side, side)).astype(np.float32))
    return scene, res, grad


def case_image_gradients(be, scale, device):
    # a fast op (a few ns per pixel): one thread on the CPU, so that a call of MIN_SECONDS needs
    # half the pixels (the buffers of 2 threads' worth once took 19 GB and the OOM killer)
    scene, res, _ = pose_inputs(be, 2 * scale, device, with_grad=False)
    nt = 1 if device == "cpu" else None
    return lambda: geomops.pose.compute_image_space_gradients(scene, res, device=device, num_threads=nt)


def case_backprop(be, scale, device):
    scene, res, grad = pose_inputs(be, scale, device)
    return lambda: geomops.pose.backpropagate_gradient_to_poses(scene, res, grad, device=device)


def result_of(value):
    """Comparable arrays of an op's result (RenderResult and NamedTuples flattened)."""
    if hasattr(value, "get") and hasattr(value, "rgb"):  # RenderResult
        value = value.get()
        return tuple(np.asarray(getattr(value, n)) for n in ("rgb", "depth", "instance_index"))
    if isinstance(value, tuple):
        return tuple(a for item in value for a in result_of(item))
    return host(value)


def digest(arrays):
    """A hash of the arrays' shapes, dtypes and bytes: the first result is not kept in memory."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return h.hexdigest()


def main(case, backend):
    build = globals()["case_" + case]
    ctx = _backend.cuda_emulation() if backend == "cuda-emu" else None
    if ctx is not None:
        ctx.__enter__()
    device = "cuda" if backend == "cuda-emu" else "cpu"
    be = _backend.resolve(device)
    build(be, 1, device)()  # one-time costs (imports, first-touch of module state) are not the call's
    scale = 1
    while True:
        op = build(be, scale, device)
        t0 = time.monotonic()
        ref = digest(result_of(op()))
        seconds = time.monotonic() - t0
        if seconds >= MIN_SECONDS or scale >= MAX_SCALE:
            break
        # at most 4x per step: small sizes underestimate the time per item (first-touch page
        # faults grow with the outputs), and one jump to MAX_SCALE once needed 14 GB for 4 s calls
        scale = min(MAX_SCALE, scale * min(4, max(2, 2 ** math.ceil(math.log2(1.5 * MIN_SECONDS / max(seconds, 1e-3))))))
    emit(event="calibrated", seconds=seconds, scale=scale)
    for k in range(1 + REPEATS):
        if k == 1:
            emit(event="rss", bytes=rss_bytes())
        in_call, start = False, time.monotonic()
        emit(event="start", t=start)
        try:
            while True:
                in_call, start = True, time.monotonic()
                op()
                in_call = False
        except KeyboardInterrupt:
            now = time.monotonic()
            emit(event="interrupted", t=now, in_call=in_call, elapsed=now - start)
    emit(event="rss", bytes=rss_bytes())
    emit(event="done", equal=digest(result_of(op())) == ref)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
