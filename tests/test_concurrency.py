"""Thread safety: ops, pose functions and layers called from 8 Python threads at once on shared
read-only inputs give results bitwise equal to serial calls, also while another thread keeps
changing ``geomops.set_num_threads`` (results do not depend on the thread count), on the CPU and
on the emulated CUDA backend."""

import threading

import numpy as np
import pytest

import geomops as gm
import pose_cases
import reference_cconv as R
from conftest import BACKENDS, use_backend
from fuzz_util import results_equal, to_host, watchdog
from geomops.layers import ContinuousConv, ContinuousConvTranspose, KNNSearch, RadiusSearch
from geomops.pose import apply_pose_delta, backpropagate_gradient_to_poses, compute_image_space_gradients, render

THREADS = 8
ROUNDS = 3


def _readonly(tree):
    for a in tree.values():
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return tree


def _op_calls():
    """Named zero-argument calls of the ops on shared read-only inputs (small problems)."""
    p = R.make_problem(3, num_inp=40, num_out=15, in_channels=3, out_channels=2, importance=True)
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    fwd = _readonly(dict(zip(R.Problem.FIELDS, p.args())))
    tr = _readonly(dict(zip(R.TransposeProblem.FIELDS, t.args())))
    rng = np.random.default_rng(4)
    g = rng.standard_normal((len(p.out_positions), 2))
    gt = rng.standard_normal((len(t.out_positions), 3))
    pts = rng.random((200, 3)).astype(np.float32)
    qs = rng.random((30, 3)).astype(np.float32)
    radii = np.full(30, 0.15, np.float32)
    for a in (g, gt, pts, qs, radii):
        a.setflags(write=False)
    return {
        "continuous_conv": lambda dev: gm.continuous_conv(**fwd, device=dev),
        "continuous_conv_backward": lambda dev: gm.continuous_conv_backward(**fwd, out_features_gradient=g,
                                                                            device=dev),
        "continuous_conv_transpose": lambda dev: gm.continuous_conv_transpose(**tr, device=dev),
        "continuous_conv_transpose_backward": lambda dev: gm.continuous_conv_transpose_backward(
            **tr, out_features_gradient=gt, device=dev),
        "invert_neighbors_list": lambda dev: gm.invert_neighbors_list(
            len(p.inp_positions), fwd["neighbors_index"], fwd["neighbors_row_splits"],
            np.arange(len(fwd["neighbors_index"]), dtype=np.int64), device=dev),
        "reduce_subarrays_sum": lambda dev: gm.reduce_subarrays_sum(fwd["neighbors_importance"],
                                                                    fwd["neighbors_row_splits"], device=dev),
        "fixed_radius_search": lambda dev: gm.fixed_radius_search(pts, qs, 0.15, return_distances=True, device=dev),
        "radius_search": lambda dev: gm.radius_search(pts, qs, radii, return_distances=True, device=dev),
        "knn_search": lambda dev: gm.knn_search(pts, qs, 5, return_distances=True, device=dev),
    }


def _pose_calls():
    sc = pose_cases.scene("basic", width=32, height=24)
    base = render(sc)
    g = np.random.default_rng(6).standard_normal((3, 24, 32)).astype(np.float32)
    g.setflags(write=False)
    pose = np.array(sc.objects[0].pose)
    delta = np.array([0.01, -0.02, 0.03, 0.001, 0.002, -0.003])
    return {
        "render": lambda dev: render(sc, device=dev).get(),
        "compute_image_space_gradients": lambda dev: compute_image_space_gradients(sc, base, device=dev),
        "backpropagate_gradient_to_poses": lambda dev: backpropagate_gradient_to_poses(sc, base, g, device=dev),
        "apply_pose_delta": lambda dev: apply_pose_delta(pose, delta, device=dev),
    }


def _as_tuple(result):
    """A comparable form: named tuples of arrays stay tuples, RenderResult becomes its buffers."""
    result = to_host(result)
    if hasattr(result, "__slots__") and not isinstance(result, (tuple, np.ndarray)):
        return tuple(to_host(getattr(result, k)) for k in result.__slots__)
    return result


def _run_threads(work, n=THREADS):
    """Run ``work(k)`` in ``n`` threads started together; return their results (re-raise errors)."""
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def target(k):
        try:
            barrier.wait()
            results[k] = work(k)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    with watchdog(300):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", ["ops", "pose"])
def test_threads_give_serial_results(family, backend):
    calls = _op_calls() if family == "ops" else _pose_calls()
    names = sorted(calls)
    with use_backend(backend) as dev:
        serial = {n: _as_tuple(calls[n](dev)) for n in names}

        def work(k):
            # every thread runs every call, each starting at another one, ROUNDS times
            out = []
            for r in range(ROUNDS):
                for j in range(len(names)):
                    name = names[(j + k) % len(names)]
                    out.append((name, _as_tuple(calls[name](dev))))
            return out

        for per_thread in _run_threads(work):
            for name, got in per_thread:
                assert results_equal(got, serial[name]), f"{name}: a concurrent call differs from the serial one"


def test_set_num_threads_while_ops_run():
    """One thread keeps changing the OpenMP thread count while 7 others run ops."""
    calls = _op_calls()
    names = sorted(calls)
    serial = {n: _as_tuple(calls[n]("cpu")) for n in names}
    before = gm.get_num_threads()
    stop = threading.Event()

    def work(k):
        if k == 0:
            count = 0
            while not stop.is_set():
                gm.set_num_threads(1 + count % 3)
                count += 1
            return count
        try:
            out = []
            for r in range(ROUNDS):
                for name in names:
                    out.append((name, _as_tuple(calls[name]("cpu"))))
            return out
        finally:
            if k == 1:
                stop.set()

    try:
        results = _run_threads(work)
    finally:
        stop.set()
        gm.set_num_threads(before)
    for per_thread in results[1:]:
        for name, got in per_thread:
            assert results_equal(got, serial[name]), f"{name}: differs while set_num_threads runs"


def _cloud(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3))
    f = rng.standard_normal((n, 4))
    x.setflags(write=False)
    f.setflags(write=False)
    return x, f


@pytest.mark.parametrize("cls", [ContinuousConv, ContinuousConvTranspose])
def test_one_layer_shared_by_threads(cls):
    """One layer object, 8 threads calling it and its backward on their own inputs: every
    thread gets what a serial call gives (the per-thread context keeps the calls apart)."""
    layer = cls(4, 3, 2, activation="tanh", dtype=np.float64, seed=1)
    inputs = [_cloud(30 + k, k) for k in range(THREADS)]
    grads = [np.random.default_rng(50 + k).standard_normal((30 + k, 3)) for k in range(THREADS)]

    def step(k):
        x, f = inputs[k]
        out = layer(f, x, x, 0.4)
        return out, tuple(layer.backward(grads[k]))

    serial = [step(k) for k in range(THREADS)]
    for k, got in enumerate(_run_threads(lambda k: [step(k) for _ in range(ROUNDS)])):
        for out, bw in got:
            assert results_equal(out, serial[k][0]) and results_equal(bw, serial[k][1]), f"thread {k}"


@pytest.mark.parametrize("cls", [RadiusSearch, KNNSearch])
def test_search_layer_shared_by_threads(cls):
    layer = cls(return_distances=True)
    inputs = [_cloud(40 + k, 10 + k)[0] for k in range(THREADS)]

    def step(k):
        x = inputs[k]
        res = layer(x, x, 0.3 if cls is RadiusSearch else 4)
        g = np.linspace(-1, 1, len(res.neighbors_distance))
        return tuple(res), tuple(layer.backward(g))

    serial = [step(k) for k in range(THREADS)]
    for k, got in enumerate(_run_threads(lambda k: [step(k) for _ in range(ROUNDS)])):
        for res, bw in got:
            assert results_equal(res, serial[k][0]) and results_equal(bw, serial[k][1]), f"thread {k}"
