"""geomops.dask on a real cluster: a LocalCluster of 2 worker processes (1 thread each) on loopback.

Every helper runs on generated data and gives bitwise the serial loop's results; a worker that
dies mid-run still gives complete, correct results; a geomops ValueError reaches the client
unchanged; tasks with device="worker" run on the GPU each worker was given (here the CUDA
emulator, switched on in the workers by a plugin). One cluster serves the whole module.

Nothing may hang (CI has 2 cores): every result is awaited with a timeout, and a watchdog ends
the test process with a traceback of every thread if the whole module overruns."""

import faulthandler
import os
import sys

import cloudpickle
import dask
import dask.array as da
import dask.bag as db
import numpy as np
import pytest
from dask.system import CPU_COUNT
from distributed import Client, Future, LocalCluster, WorkerPlugin, wait

from geomops import _backend
from geomops.dask import (CloudConv, conv_gradient, configure, l2_loss, map_conv, refine_poses, split_threads,
                          task_device, task_threads)
from geomops.pose import Camera, Mesh, Scene, SceneObject, apply_pose_delta, refine_scene, render


class _EmulateCuda(WorkerPlugin):
    """Tests only: device="cuda" runs the CUDA emulator in the workers (also after a restart)."""
    name = "emulate-cuda"

    def setup(self, worker):
        _backend._emulate_cuda = True


TIMEOUT = 60  # seconds for one computation (they take well under one here)
MODULE_LIMIT = 600  # seconds for the whole module, cluster start and stop included (about 20 here)


def _futures(obj):
    if isinstance(obj, Future):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _futures(item)


def _get(futures):
    """The results of a (nested list of) futures, failing after TIMEOUT instead of hanging."""
    flat = list(_futures(futures))
    wait(flat, timeout=TIMEOUT)
    return flat[0].client.gather(futures)


@pytest.fixture(scope="module")
def cluster():
    faulthandler.dump_traceback_later(MODULE_LIMIT, exit=True)  # a hung cluster must not stall CI
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this file
    try:
        # no dashboard; the scheduler's HTTP server (it always has one) on a free port, not 8787,
        # which another cluster on the machine may hold
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, host="127.0.0.1",
                          resources={"GPU": 1}) as lc, Client(lc) as client:
            client.register_plugin(_EmulateCuda())
            yield client, configure(client)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def client(cluster):
    return cluster[0]


def _clouds(seed=0, sizes=(60, 200, 0, 130, 25, 90)):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, 3)).astype(np.float32), rng.standard_normal((n, 4)).astype(np.float32),
             rng.standard_normal((n, 5)).astype(np.float32)) for n in sizes]


def _conv(**kw):
    return CloudConv(np.random.default_rng(1).uniform(-1, 1, (3, 3, 3, 4, 5)).astype(np.float32), 0.35, **kw)


def _serial_sum(conv, clouds):
    loss, total = 0.0, np.zeros(conv.filters.shape)
    for pts, feats, target in clouds:
        value, grad = conv.loss_and_gradient(pts, feats, target)
        loss += value
        total += grad
    return loss, total


def _probe():
    return task_threads(), task_device("worker")


def test_each_worker_gets_its_share_of_the_cores_and_a_gpu(cluster):
    client, settings = cluster
    assert len(settings) == 2
    threads = split_threads(CPU_COUNT, 2)  # 2 workers x 1 thread on this host
    for s in settings.values():
        assert s.threads == threads and s.device == "cuda:0", s  # one (emulated) device per worker
        assert "2 concurrent tasks" in s.reason
    for address in settings:
        assert _get(client.submit(_probe, workers=[address], pure=False)) == (threads, "cuda:0")


def test_map_conv_equals_the_serial_loop(client):
    conv = _conv()
    clouds = _clouds()
    serial = [conv.forward(p, f).tobytes() for p, f, _ in clouds]
    bag = map_conv(conv, db.from_sequence(clouds, npartitions=3))
    delayed = map_conv(conv, [dask.delayed(c) for c in clouds])
    rng = np.random.default_rng(2)
    P, F = rng.random((6, 80, 3)).astype(np.float32), rng.standard_normal((6, 80, 4)).astype(np.float32)
    array = map_conv(conv, da.from_array(P, chunks=(2, 80, 3)), da.from_array(F, chunks=(3, 40, 4)))
    assert bag.npartitions == 3 and array.chunks == ((2, 2, 2), (80,), (5,))
    got_bag, got_delayed, got_array = _get(client.compute([bag, delayed, array]))
    assert [a.tobytes() for a in got_bag] == serial
    assert [a.tobytes() for a in got_delayed] == serial
    assert [got_array[i].tobytes() for i in range(6)] == [conv.forward(P[i], F[i]).tobytes() for i in range(6)]


def test_conv_gradient_equals_the_serial_loop(client):
    conv = _conv()
    clouds = _clouds(3)
    loss, total = _serial_sum(conv, clouds)
    rng = np.random.default_rng(4)
    P, F, T = (rng.random((5, 50, 3)), rng.standard_normal((5, 50, 4)), rng.standard_normal((5, 50, 5)))
    conv64 = CloudConv(conv.filters.astype(np.float64), 0.35)
    loss64, total64 = _serial_sum(conv64, zip(P, F, T))
    sums = _get(client.compute([
        conv_gradient(conv, db.from_sequence(clouds, npartitions=4)),
        conv_gradient(conv, [dask.delayed(c) for c in clouds]),
        conv_gradient(conv64, da.from_array(P, chunks=2), da.from_array(F, chunks=2), da.from_array(T, chunks=2))]))
    for s in sums[:2]:
        assert (s.loss, s.filters.tobytes(), s.clouds) == (loss, total.tobytes(), len(clouds))
    assert (sums[2].loss, sums[2].filters.tobytes(), sums[2].clouds) == (loss64, total64.tobytes(), 5)


def _pose_problems(count=3, size=(32, 24)):
    out = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        cam = Camera(size[0], size[1], 40.0, 40.0, size[0] / 2, size[1] / 2)
        T = np.eye(4)
        T[:3, 3] = (0.0, 0.0, 0.6)
        T = apply_pose_delta(T, np.concatenate([rng.uniform(-0.4, 0.4, 3), [0, 0, 0]]))
        mesh = Mesh.box((0.12, 0.1, 0.08))
        target = render(Scene(cam, [SceneObject(mesh, T)], background=(0.2, 0.3, 0.4))).rgb
        start = apply_pose_delta(T, np.concatenate([rng.choice([-1, 1], 3) * 0.08, rng.choice([-1, 1], 3) * 0.01]))
        out.append((Scene(cam, [SceneObject(mesh, start)], background=(0.2, 0.3, 0.4)), target))
    return [p[0] for p in out], [p[1] for p in out]


def test_refine_poses_equals_the_serial_loop(client):
    scenes, targets = _pose_problems()
    table = refine_poses(scenes, targets, 6, client=client, table="numpy", loss_tol=0.5)
    serial = [refine_scene(s, t, 6, loss_tol=0.5) for s, t in zip(scenes, targets)]
    assert table["scene"].tolist() == [0, 1, 2]
    assert table["pose"].tobytes() == np.concatenate([r.poses for r in serial]).tobytes()
    assert table["loss"].tolist() == [r.loss for r in serial]
    assert table["initial_loss"].tolist() == [r.initial_loss for r in serial]
    assert table["iterations"].tolist() == [r.iterations for r in serial]


class _DieOnce:
    """An L2 loss whose first call anywhere kills its worker process (a marker file makes it once)."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, out, target):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return l2_loss(out, target)
        os.close(fd)
        os._exit(1)


def test_a_worker_that_dies_mid_run_still_gives_the_full_result(client, tmp_path):
    marker = str(tmp_path / "died")
    clouds = _clouds(5)
    conv = _conv(loss=_DieOnce(marker))
    loss, total = _serial_sum(_conv(), clouds)
    before = set(client.scheduler_info()["workers"])
    result = _get(client.compute(conv_gradient(conv, db.from_sequence(clouds, npartitions=3)), retries=2))
    assert os.path.exists(marker)  # a worker did die
    assert (result.loss, result.filters.tobytes(), result.clouds) == (loss, total.tobytes(), len(clouds))
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, with the plugins set up again
    assert set(client.scheduler_info()["workers"]) != before
    assert set(_get([client.submit(_probe, workers=[a], pure=False)
                              for a in client.scheduler_info()["workers"]])) == \
        {(split_threads(CPU_COUNT, 2), "cuda:0")}


def test_a_geomops_value_error_reaches_the_client_unchanged(client):
    conv = _conv()
    clouds = _clouds(6)
    bad = clouds[1][0].copy()
    bad[3, 1] = np.nan
    clouds[1] = (bad,) + clouds[1][1:]
    with pytest.raises(ValueError) as serial:
        conv.forward(*clouds[1][:2])
    for lazy in (map_conv(conv, db.from_sequence(clouds, npartitions=2)),
                 conv_gradient(conv, [dask.delayed(c) for c in clouds])):
        with pytest.raises(ValueError) as remote:
            _get(client.compute(lazy, retries=1))
        assert type(remote.value) is ValueError and str(remote.value) == str(serial.value)
        assert "points must be finite" in str(remote.value)


def test_device_worker_runs_on_each_workers_gpu(client):
    conv = _conv()
    clouds = _clouds(7)[:4]
    scenes, targets = _pose_problems(2, size=(24, 16))
    with _backend.cuda_emulation():
        serial = [conv.forward(p, f, device="cuda:0").tobytes() for p, f, _ in clouds]
        refined = [refine_scene(s, t, 3, device="cuda:0") for s, t in zip(scenes, targets)]
    mapped = map_conv(conv, db.from_sequence(clouds, npartitions=2), device="worker")
    got = _get(client.compute(mapped, resources={"GPU": 1}))
    assert [a.tobytes() for a in got] == serial
    table = refine_poses(scenes, targets, 3, client=client, device="worker", table="rows")
    assert [row["pose"].tobytes() for row in table] == [r.poses[0].tobytes() for r in refined]
    assert [row["loss"] for row in table] == [r.loss for r in refined]
