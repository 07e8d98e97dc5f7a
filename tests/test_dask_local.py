"""geomops.dask without a cluster: the per-cloud conv, the thread and device rules, the table, the
pose step and loop, and the helpers on dask's local schedulers (bitwise the serial loops)."""

import asyncio
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import dask
import dask.array as da
import dask.bag as db
import numpy as np
import pytest

import geomops
from geomops import _backend
from geomops.dask import (CloudConv, GeomopsWorkerPlugin, conv_gradient, l2_loss, map_conv, pick_device,
                          refine_poses, refine_poses_delayed, refinement_table, split_threads, task_device,
                          task_threads)
from geomops.pose import (AdamPoseStep, Camera, Mesh, Scene, SceneObject, apply_pose_delta,
                          backpropagate_gradient_to_poses, refine_scene, render)


def test_importing_geomops_imports_no_dask():
    code = textwrap.dedent("""
        import sys
        import geomops, geomops.pose, geomops.layers
        geomops.fixed_radius_search([[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], 0.1)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "cloudpickle"))
        assert not bad, bad
        assert geomops.dask.map_conv and "distributed" in sys.modules  # the attribute imports it
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    without = textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None  # as if dask[distributed] were not installed
        import geomops
        try:
            geomops.dask
        except ImportError as e:
            assert 'pip install "geomops[dask]"' in str(e), e
        else:
            raise AssertionError("no ImportError")
    """)
    subprocess.run([sys.executable, "-c", without], check=True, timeout=120)


# ---- the per-cloud conv ----------------------------------------------------------------------------

def _clouds(sizes=(40, 150, 0, 90, 7), seed=0, dtype=np.float32, cin=4, cout=3):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, 3)).astype(dtype), rng.standard_normal((n, cin)).astype(dtype),
             rng.standard_normal((n, cout)).astype(dtype)) for n in sizes]


def _conv(dtype=np.float32, cin=4, cout=3, **kw):
    filters = np.random.default_rng(1).uniform(-1, 1, (3, 3, 3, cin, cout)).astype(dtype)
    return CloudConv(filters, 0.4, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cloud_conv_is_the_search_and_the_op(dtype):
    conv = _conv(dtype, interpolation="linear_border", normalize=False, ignore_query_point=True)
    pts, feats, target = _clouds(dtype=dtype)[1]
    nb = geomops.fixed_radius_search(pts, pts, 0.2, ignore_query_point=True)
    args = (conv.filters, pts, np.full((1, 1), 0.4, dtype), np.zeros(3, dtype), pts, feats, None,
            nb.neighbors_index, None, nb.neighbors_row_splits)
    expected = geomops.continuous_conv(*args, interpolation="linear_border")
    out = conv.forward(pts, feats, num_threads=1)
    assert out.dtype == dtype and out.tobytes() == expected.tobytes()
    loss, grad = conv.loss_and_gradient(pts, feats, target, num_threads=2)
    d = expected.astype(np.float64) - target
    assert loss == 0.5 * float(np.sum(d * d))
    ref = geomops.continuous_conv_backward(*args, d.astype(dtype), interpolation="linear_border").filters
    assert grad.dtype == dtype and grad.tobytes() == ref.tobytes()


def test_cloud_conv_validates_and_is_immutable():
    with pytest.raises(ValueError, match="extent must be > 0"):
        _conv().__class__(np.ones((1, 1, 1, 2, 2), np.float32), 0.0)
    with pytest.raises(ValueError, match=r"filters must have 5 dimensions, got shape \(2, 2\)"):
        CloudConv(np.ones((2, 2), np.float32), 0.1)
    with pytest.raises(ValueError, match="metric"):
        _conv(metric="L3")
    with pytest.raises(TypeError, match="loss must be callable"):
        _conv(loss=3)
    conv = _conv()
    with pytest.raises(ValueError):
        conv.filters[0, 0, 0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        conv.extent = 2.0
    pts, feats, target = _clouds()[0]
    with pytest.raises(ValueError, match="target must have the shape"):
        conv.loss_and_gradient(pts, feats, target[:, :2])
    with pytest.raises(TypeError, match="a cloud must be"):
        map_conv(conv, [np.zeros((3, 3))]).pop().compute()
    with _backend.cuda_emulation():  # the conv keeps host filters (it used to fail on setflags)
        device_filters = _backend.resolve("cuda").from_host(conv.filters)
        with pytest.raises(TypeError, match=r"filters must be a NumPy array.*filters\.get\(\)"):
            CloudConv(device_filters, 0.4)


def test_a_custom_loss():
    def loss(out, target):
        return float(np.sum(np.abs(out - target))), np.sign(out - target)

    conv = _conv(loss=loss)
    pts, feats, target = _clouds()[3]
    value, grad = conv.loss_and_gradient(pts, feats, target)
    out = conv.forward(pts, feats)
    assert value == float(np.sum(np.abs(out - target)))
    nb = geomops.fixed_radius_search(pts, pts, 0.2)
    ref = geomops.continuous_conv_backward(conv.filters, pts, np.full((1, 1), 0.4, np.float32), np.zeros(3, np.float32),
                                           pts, feats, None, nb.neighbors_index, None, nb.neighbors_row_splits,
                                           np.sign(out - target), normalize=True)
    assert grad.tobytes() == ref.filters.tobytes()


def test_cloud_conv_on_the_emulated_device():
    conv = _conv()
    pts, feats, target = _clouds()[1]
    with _backend.cuda_emulation():
        out = conv.forward(pts, feats, device="cuda:0")
        loss, grad = conv.loss_and_gradient(pts, feats, target, device="cuda")
        nb = geomops.fixed_radius_search(pts, pts, 0.2, device="cuda")
        ref = geomops.continuous_conv(conv.filters, pts, np.full((1, 1), 0.4, np.float32), np.zeros(3, np.float32),
                                      pts, feats, None, nb.neighbors_index, None, nb.neighbors_row_splits,
                                      normalize=True, device="cuda")
    assert isinstance(out, np.ndarray) and out.tobytes() == ref.tobytes()
    np.testing.assert_allclose(out, conv.forward(pts, feats), rtol=1e-5, atol=1e-5)
    cpu_loss, cpu_grad = conv.loss_and_gradient(pts, feats, target)
    np.testing.assert_allclose(loss, cpu_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, cpu_grad, rtol=1e-4, atol=1e-4)


# ---- the helpers on dask's local schedulers ----------------------------------------------------------

def _serial_sum(conv, clouds):
    loss, total = 0.0, np.zeros(conv.filters.shape)
    for pts, feats, target in clouds:
        value, grad = conv.loss_and_gradient(pts, feats, target)
        loss += value
        total += grad
    return loss, total


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_bag_and_delayed_helpers_equal_the_serial_loop(scheduler):
    conv = _conv()
    clouds = _clouds()
    serial = [conv.forward(p, f) for p, f, _ in clouds]
    bag = db.from_sequence(clouds, npartitions=3)
    mapped = map_conv(conv, bag)
    assert mapped.npartitions == 3
    delayed = map_conv(conv, [dask.delayed(c) for c in clouds])
    dicts = map_conv(conv, [dict(points=p, features=f) for p, f, _ in clouds])
    with dask.config.set(scheduler=scheduler):
        for result in (mapped.compute(), dask.compute(*delayed), dask.compute(*dicts)):
            assert [a.tobytes() for a in result] == [s.tobytes() for s in serial]
        loss, total = _serial_sum(conv, clouds)
        for part in (1, 2, 5):
            got = conv_gradient(conv, db.from_sequence(clouds, npartitions=part)).compute()
            assert (got.loss, got.filters.tobytes(), got.clouds) == (loss, total.tobytes(), len(clouds))
        got = conv_gradient(conv, clouds).compute()
        assert (got.loss, got.filters.tobytes()) == (loss, total.tobytes())
        empty = conv_gradient(conv, []).compute()
        assert empty.loss == 0.0 and not empty.filters.any() and empty.clouds == 0


def test_array_helpers_keep_the_chunks_and_equal_the_serial_loop():
    conv = _conv(np.float64)
    rng = np.random.default_rng(2)
    P, F, T = rng.random((5, 60, 3)), rng.standard_normal((5, 60, 4)), rng.standard_normal((5, 60, 3))
    points = da.from_array(P, chunks=((2, 1, 2), (30, 30), (3,)))
    out = map_conv(conv, points, da.from_array(F, chunks=(5, 60, 2)))
    assert out.chunks == ((2, 1, 2), (60,), (3,)) and out.dtype == np.float64
    with dask.config.set(scheduler="threads"):
        got = out.compute()
        total = conv_gradient(conv, points, da.from_array(F, chunks=2), da.from_array(T, chunks=3)).compute()
    for i in range(5):
        assert got[i].tobytes() == conv.forward(P[i], F[i]).tobytes()
    loss, ref = _serial_sum(conv, zip(P, F, T))
    assert (total.loss, total.filters.tobytes(), total.clouds) == (loss, ref.tobytes(), 5)
    with pytest.raises(ValueError, match="input channels"):
        map_conv(conv, points, da.from_array(F[..., :2]))
    with pytest.raises(TypeError, match="targets"):
        conv_gradient(conv, points, da.from_array(F))
    with pytest.raises(TypeError, match="features is only given"):
        map_conv(conv, db.from_sequence([1]), da.from_array(F))


def test_bad_arguments_fail_before_computing():
    conv = _conv()
    with pytest.raises(TypeError, match="conv must be a geomops.dask.CloudConv"):
        map_conv(object(), [])
    with pytest.raises(TypeError, match="clouds must be"):
        map_conv(conv, {1: 2})
    with pytest.raises(ValueError, match="device must be"):
        map_conv(conv, [], device="tpu")
    with pytest.raises(ValueError, match="same length"):
        refine_poses_delayed([1, 2], [1])


# ---- threads and devices ------------------------------------------------------------------------------

def test_split_threads():
    assert split_threads(16, 8) == 2 and split_threads(16, 3) == 5 and split_threads(2, 2) == 1
    assert split_threads(2, 8) == 1 and split_threads(4, 0) == 4


def test_task_threads_and_device_outside_a_worker():
    assert task_threads(3) == 3
    assert task_threads() == geomops.get_num_threads()  # the main thread: dask's sync scheduler
    with dask.config.set(num_workers=2):
        got = dask.compute(dask.delayed(task_threads)(), scheduler="threads")[0]
    assert got == max(1, geomops.get_num_threads() // 2)
    assert task_device(None) is None and task_device("cuda:1") == "cuda:1"
    with pytest.raises(RuntimeError, match="outside a distributed worker"):
        task_device("worker")
    with pytest.raises(ValueError, match="device must be"):
        task_device("gpu")


def test_pick_device():
    gpu = ["tcp://h:1", "tcp://h:2", "tcp://h:3"]
    assert pick_device("a", "tcp://h:1", 0, gpu, 4) == (None, "the worker has no GPU resource")
    assert pick_device("a", "tcp://h:1", 1, gpu, 0)[0] is None
    assert pick_device("7", "tcp://h:1", 1, gpu, 1)[0] == "cuda:0"  # one visible device
    assert pick_device(5, "tcp://h:1", 1, gpu, 4)[0] == "cuda:1"  # name 5 mod 4
    assert pick_device("node-a-2", "tcp://h:1", 1, gpu, 4)[0] == "cuda:2"
    assert pick_device("tcp://h:3", "tcp://h:3", 1, gpu, 2)[0] == "cuda:0"  # rank 2 of 3 by address, mod 2
    assert pick_device("w", "tcp://h:2", 1, gpu, 2)[0] == "cuda:1"
    assert pick_device("w", "tcp://h:2", 0, gpu, 0, explicit="cuda")[0] == "cuda:0"
    with pytest.raises(ValueError, match="explicit device"):
        pick_device("w", "tcp://h:2", 1, gpu, 2, explicit="cpu")


class _FakeWorker:
    """What GeomopsWorkerPlugin.setup reads of a distributed Worker, with a scheduler that knows
    the cluster ``workers`` (address -> host, nthreads, resources)."""

    def __init__(self, address, name, workers):
        info = workers[address]
        self.address, self.name = address, name
        self.state = SimpleNamespace(nthreads=info["nthreads"], total_resources=dict(info["resources"]))

        async def identity():
            return {"workers": workers}
        self.scheduler = SimpleNamespace(identity=identity)


def test_the_plugin_maps_resources_to_threads_and_devices(monkeypatch):
    """The resource -> (threads, device) logic of the plugin on a made-up 2-host cluster with 4
    GPUs per host (no GPU here: _cuda_devices is replaced by a count)."""
    from geomops.dask import _workers
    monkeypatch.setattr(_workers, "_cuda_devices", lambda: 4)
    monkeypatch.setattr(_workers, "CPU_COUNT", 16)
    monkeypatch.delenv(_workers.DEVICE_ENV, raising=False)
    gpu = {"GPU": 1}
    workers = {"tcp://a:1": dict(host="a", nthreads=2, resources=gpu),
               "tcp://a:2": dict(host="a", nthreads=2, resources=gpu),
               "tcp://a:3": dict(host="a", nthreads=4, resources={}),
               "tcp://b:1": dict(host="b", nthreads=1, resources=gpu)}
    names = {"tcp://a:1": "w-x", "tcp://a:2": "gpu-7", "tcp://a:3": "cpu", "tcp://b:1": "b"}

    def setup(plugin, address):
        worker = _FakeWorker(address, names[address], workers)
        asyncio.run(plugin.setup(worker))
        try:
            return _workers._SETTINGS[address]
        finally:
            plugin.teardown(worker)

    plugin = GeomopsWorkerPlugin()
    a1, a2, a3, b1 = (setup(plugin, a) for a in workers)
    # host a runs 2 + 2 + 4 = 8 tasks at once on 16 cores: 2 OpenMP threads each; host b: 16
    assert (a1.threads, a2.threads, a3.threads, b1.threads) == (2, 2, 2, 16)
    assert a1.device == "cuda:0"  # rank 0 among host a's GPU workers (its name ends in no number)
    assert a2.device == "cuda:3" and "number 7" in a2.reason  # 7 mod 4
    assert a3.device is None and "no GPU resource" in a3.reason
    assert b1.device == "cuda:0"
    forced = GeomopsWorkerPlugin(threads_per_task=3, devices={"w-x": "cuda:2"})
    f1 = setup(forced, "tcp://a:1")
    assert (f1.threads, f1.device) == (3, "cuda:2") and "given explicitly" in f1.reason
    monkeypatch.setenv(_workers.DEVICE_ENV, "cuda:1")  # the worker's environment variable
    assert setup(plugin, "tcp://b:1").device == "cuda:1"
    with pytest.raises(ValueError, match="devices"):
        GeomopsWorkerPlugin(devices={"w": "cpu"})


# ---- the pose step and loop ---------------------------------------------------------------------------

def test_adam_pose_step_is_the_examples_formula():
    rng = np.random.default_rng(3)
    grads = rng.standard_normal((5, 2, 6)) * np.array([1e3] * 3 + [1e-2] * 3)
    step = AdamPoseStep(0.02, 0.004, decay=0.9)
    base = np.array([0.02] * 3 + [0.004] * 3)
    m = v = np.zeros((2, 6))
    for it, g in enumerate(grads):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected = base * (0.9 ** it) * (m / (1 - 0.9 ** (it + 1))) / (np.sqrt(v / (1 - 0.999 ** (it + 1))) + 1e-12)
        assert step(g).tobytes() == expected.tobytes()
    assert step.iteration == 5
    with pytest.raises(ValueError, match="moments of shape"):
        step(np.zeros(6))
    with pytest.raises(ValueError, match=r"shape \(6,\) or \(N, 6\)"):
        AdamPoseStep()(np.zeros(5))
    with pytest.raises(ValueError, match="rotation_step must be > 0"):
        AdamPoseStep(rotation_step=0)


def _pose_problem(seed, size=(48, 36), objects=1):
    rng = np.random.default_rng(seed)
    cam = Camera(size[0], size[1], 60.0, 60.0, size[0] / 2, size[1] / 2)
    meshes = [Mesh.box((0.12, 0.1, 0.08)), Mesh.sphere(0.05, 10, 6)]
    true, start = [], []
    for k in range(objects):
        T = np.eye(4)
        T[:3, 3] = (0.08 * k - 0.04 * (objects - 1), 0.0, 0.6)
        T = apply_pose_delta(T, rng.uniform(-0.3, 0.3, 6) * [1, 1, 1, 0, 0, 0])
        true.append(SceneObject(meshes[k % 2], T))
        off = np.concatenate([rng.choice([-1, 1], 3) * 0.08, rng.choice([-1, 1], 3) * 0.01])
        start.append(SceneObject(meshes[k % 2], apply_pose_delta(T, off)))
    target = render(Scene(cam, true, background=(0.2, 0.3, 0.4))).rgb
    return Scene(cam, start, background=(0.2, 0.3, 0.4)), target


def test_refine_scene_converges_and_leaves_the_scene_alone():
    scene, target = _pose_problem(4, objects=2)
    before = [o.pose for o in scene.objects]
    result = refine_scene(scene, target, 30, num_threads=1)
    assert [o.pose.tobytes() for o in scene.objects] == [p.tobytes() for p in before]
    assert result.iterations == 30 and len(result.losses) == 31 and result.poses.shape == (2, 4, 4)
    assert result.loss < result.initial_loss / 2
    again = refine_scene(scene, target, 30, num_threads=2)  # any thread count: bitwise the same
    assert again.poses.tobytes() == result.poses.tobytes() and again.losses == result.losses
    # the loop is render / loss / gradient / AdamPoseStep / apply_pose_delta
    work = Scene(scene.camera, [SceneObject(o.mesh, o.pose) for o in scene.objects], background=scene.background)
    step, poses = AdamPoseStep(), np.stack(before)
    for it in range(3):
        buf = render(work, buffers="gradient")
        diff = buf.rgb[..., :3] / 255.0 - target[..., :3] / 255.0
        assert 0.5 * float(np.sum(diff * diff)) == result.losses[it]
        grad = backpropagate_gradient_to_poses(work, buf, np.ascontiguousarray(diff.transpose(2, 0, 1)))
        poses = apply_pose_delta(poses, -step(grad))
        for obj, pose in zip(work.objects, poses):
            obj.pose = pose
    short = refine_scene(scene, target, 3)
    assert short.poses.tobytes() == poses.tobytes() and short.losses == result.losses[:3] + [short.loss]


def test_refine_scene_stops_at_the_loss_tolerance_and_checks_its_inputs():
    scene, target = _pose_problem(5)
    full = refine_scene(scene, target, 20)
    tol = min(full.losses[1:])
    first = full.losses.index(tol)
    early = refine_scene(scene, target, 20, loss_tol=tol)
    assert first > 1 and early.iterations == first and early.loss == tol and early.losses == full.losses[:first + 1]
    assert refine_scene(scene, target, 0).iterations == 0
    assert refine_scene(scene, target / 255.0, 2).losses == full.losses[:2] + [refine_scene(scene, target, 2).loss]
    with pytest.raises(ValueError, match="target must have shape"):
        refine_scene(scene, target[:10], 2)
    with pytest.raises(TypeError, match="scene must be"):
        refine_scene("scene", target, 2)
    with pytest.raises(ValueError, match="no objects"):
        refine_scene(Scene(scene.camera), target, 2)
    with pytest.raises(TypeError, match="step must be"):
        refine_scene(scene, target, 2, step="adam")


def test_refine_scene_on_the_emulated_device():
    scene, target = _pose_problem(6, size=(32, 24))
    with _backend.cuda_emulation():
        dev = refine_scene(scene, target, 6, device="cuda")
    cpu = refine_scene(scene, target, 6)
    assert dev.iterations == 6
    np.testing.assert_allclose(dev.losses, cpu.losses, rtol=1e-3)
    with _backend.cuda_emulation():  # a device-array target is read back once (it used to fail on indexing)
        dev_target = refine_scene(scene, _backend.resolve("cuda").from_host(target), 2, device="cuda")
    assert dev_target.losses == dev.losses[:2] + [dev_target.loss]


def test_refine_poses_on_the_local_scheduler_and_the_table():
    problems = [_pose_problem(s, size=(32, 24), objects=1 + s % 2) for s in range(3)]
    scenes, targets = [p[0] for p in problems], [p[1] for p in problems]
    serial = [refine_scene(s, t, 5) for s, t in zip(scenes, targets)]
    table = refine_poses(scenes, targets, 5, keys=["a", "b", "c"], table="numpy")
    assert table.dtype.names == ("scene", "object", "pose", "initial_loss", "loss", "iterations")
    assert table["scene"].tolist() == ["a", "b", "b", "c"] and table["object"].tolist() == [0, 0, 1, 0]
    assert table["pose"].tobytes() == np.concatenate([r.poses for r in serial]).tobytes()
    assert table["loss"].tolist() == [serial[0].loss, serial[1].loss, serial[1].loss, serial[2].loss]
    assert table["iterations"].tolist() == [5] * 4
    rows = refinement_table(serial, kind="rows")
    assert rows[2]["scene"] == 1 and rows[2]["object"] == 1
    assert rows[2]["pose"].tobytes() == serial[1].poses[1].tobytes()
    assert isinstance(refinement_table(serial), np.ndarray if _no_pandas() else object)
    with pytest.raises(ValueError, match="kind must be"):
        refinement_table(serial, kind="csv")
    with pytest.raises(ValueError, match="one label per scene"):
        refinement_table(serial, keys=[1])


def _no_pandas():
    try:
        import pandas  # noqa: F401
    except ImportError:
        return True
    return False


def test_the_pandas_table():
    pandas = pytest.importorskip("pandas")
    scene, target = _pose_problem(7, size=(32, 24))
    result = refine_scene(scene, target, 2)
    frame = refinement_table([result], keys=["x"])
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == ["scene", "object", "pose", "initial_loss",
                                                                          "loss", "iterations"]
    assert frame["pose"][0].tobytes() == result.poses[0].tobytes()


def test_l2_loss():
    out = np.array([[1.0, 2.0]], np.float32)
    value, grad = l2_loss(out, [[0.5, 4.0]])
    assert value == 0.5 * (0.25 + 4.0) and grad.dtype == np.float32 and grad.tolist() == [[0.5, -2.0]]
