"""Everything a Dask task takes or returns pickles (pickle and cloudpickle) and round-trips exactly:
arrays bitwise (dtype, shape, bytes, read-only flag), every other attribute equal; caches that hold
native or device memory are dropped; the copies compute what the originals compute."""

import pickle
import threading
import types

import cloudpickle
import numpy as np
import pytest

import geomops
from geomops import layers
from geomops.dask import CloudConv, GradientSum, WorkerSettings
from geomops.pose import (AdamPoseStep, Camera, Light, Mesh, Scene, SceneObject, apply_pose_delta,
                          refine_scene, render)

PICKLERS = {"pickle": pickle, "cloudpickle": cloudpickle}


def _state(obj):
    """An object's attributes: its __dict__ and every __slots__ entry of its classes."""
    state = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                state[name] = getattr(obj, name)
    return state


def assert_same(a, b, path="obj", skip=()):
    """Exact equality of two object graphs (bitwise arrays, equal scalars; NaN equals NaN)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert a.tobytes() == b.tobytes(), f"{path}: the bytes differ"
        assert a.flags.writeable == b.flags.writeable, f"{path}: writeable {a.flags.writeable} -> {b.flags.writeable}"
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
        if hasattr(a, "__dict__"):  # tuple subclasses with attributes (SpatialHashTable)
            assert_same(_state(a), _state(b), f"{path}.__dict__", skip)
    elif isinstance(a, dict):
        keys = set(a) - set(skip)
        assert keys == set(b) - set(skip), f"{path}: keys {sorted(keys)} vs {sorted(set(b) - set(skip))}"
        for k in keys:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (float, np.floating)) and np.isnan(a):
        assert np.isnan(b), path
    elif isinstance(a, (type(None), bool, int, float, str, np.generic, np.dtype, types.FunctionType,
                        types.BuiltinFunctionType, np.ufunc)):
        assert a == b, f"{path}: {a!r} vs {b!r}"
    elif isinstance(a, type(threading.local())):
        pass  # per-thread call state: a fresh one by design
    else:
        assert_same(_state(a), _state(b), path, skip)


def _round_trip(obj, pickler):
    return PICKLERS[pickler].loads(PICKLERS[pickler].dumps(obj))


def _scene():
    cam = Camera(48, 36, 60.0, 61.0, 24.2, 17.9, near=0.05, far=5.0)
    box = Mesh.box((0.1, 0.08, 0.06), class_index=3)
    ball = Mesh.sphere(0.04, segments=8, rings=5, class_index=7)
    grey = Mesh(np.array([[0, 0, 0], [0.05, 0, 0], [0, 0.05, 0]], np.float32), [[0, 1, 2]])
    pose = np.eye(4)
    pose[:3, 3] = (0.01, -0.02, 0.4)
    camera_pose = np.eye(4)
    camera_pose[:3, 3] = (0.0, 0.01, -0.05)
    objects = [SceneObject(box, pose), SceneObject(ball, apply_pose_delta(pose, [0.1, 0.2, 0.0, 0.05, 0.0, 0.02]),
                                                   instance_index=9),
               SceneObject(grey, apply_pose_delta(pose, [0, 0, 0.3, -0.05, 0.03, 0.0]))]
    return Scene(cam, objects, camera_pose=camera_pose, background=(0.1, 0.2, 0.3),
                 light=Light(direction=(0.2, -1.0, -0.5), color=(0.9, 0.8, 0.7), ambient=0.2))


def _cloud(n=300, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3)).astype(dtype), rng.standard_normal((n, 4)).astype(dtype)


PICKLER = pytest.mark.parametrize("pickler", list(PICKLERS))


@PICKLER
def test_scene_objects_round_trip(pickler):
    scene = _scene()
    cams = [scene.camera, Camera.from_projection(scene.camera.projection_matrix(), 48, 36)]
    for obj in [scene, scene.light, *cams, *scene.objects, *(o.mesh for o in scene.objects)]:
        clone = _round_trip(obj, pickler)
        assert_same(obj, clone, type(obj).__name__, skip=("_device_arrays",))
    # read-only arrays stay read-only, so a copy cannot be changed behind its back
    light = _round_trip(scene.light, pickler)
    with pytest.raises(ValueError):
        light.direction[0] = 1.0
    cam = _round_trip(cams[1], pickler)
    assert not cam._P.flags.writeable
    np.testing.assert_array_equal(cam.projection_matrix(), cams[1].projection_matrix())
    mesh = _round_trip(scene.objects[0].mesh, pickler)
    assert mesh._device_arrays is None
    with pytest.raises(ValueError):
        mesh.vertices[0, 0] = 1.0


@PICKLER
def test_a_pickled_scene_renders_bitwise_the_same(pickler):
    scene = _scene()
    scene.objects[0].mesh.bounding_box()  # a cached box travels along
    clone = _round_trip(scene, pickler)
    a, b = render(scene), render(clone)
    for name in type(a).__slots__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@PICKLER
def test_render_results_round_trip(pickler):
    scene = _scene()
    for buffers in ("all", "gradient"):
        rr = render(scene, buffers=buffers)
        assert_same(rr, _round_trip(rr, pickler), "RenderResult")


@PICKLER
def test_search_results_and_hash_tables_round_trip(pickler):
    pts, _ = _cloud()
    for res in (geomops.fixed_radius_search(pts, pts[:50], 0.2, return_distances=True),
                geomops.knn_search(pts, pts[:20], 5, index_dtype=np.int64),
                geomops.radius_search(pts, pts[:30], np.full(30, 0.1, np.float32))):
        assert_same(res, _round_trip(res, pickler), "NeighborSearchResult")
    table = geomops.build_spatial_hash_table(pts, 0.2)
    expected = geomops.fixed_radius_search(pts, pts, 0.2, hash_table=table)
    assert table._grid  # the search cached its grid on the table
    clone = _round_trip(table, pickler)
    assert "_grid" not in clone.__dict__  # native memory: dropped, rebuilt on demand
    assert_same(table, clone, "SpatialHashTable", skip=("_grid",))
    again = geomops.fixed_radius_search(pts, pts, 0.2, hash_table=clone)
    assert_same(expected, again, "search with the unpickled table")


def _conv_args(dtype=np.float64):
    pts, feats = _cloud(200, seed=3, dtype=dtype)
    nb = geomops.fixed_radius_search(pts, pts, 0.15)
    filters = np.random.default_rng(4).standard_normal((3, 3, 3, 4, 2)).astype(dtype)
    return (filters, pts, np.full((1, 1), 0.3, dtype), np.zeros(3, dtype), pts, feats,
            np.linspace(0.5, 1.5, 200).astype(dtype), nb.neighbors_index, None, nb.neighbors_row_splits)


@PICKLER
def test_gradient_named_tuples_round_trip(pickler):
    args = _conv_args()
    g = np.random.default_rng(5).standard_normal((200, 2))
    grads = geomops.continuous_conv_backward(*args, g, wrt=set(geomops.cconv.FORWARD_GRADIENTS))
    assert grads.inp_positions is not None and grads.neighbors_importance is None
    inv = geomops.invert_neighbors_list(200, args[7], args[9], np.arange(args[7].shape[0]))
    (filters, pts, extents, offset, _, feats, _, idx, _, rs) = args
    tgrads = geomops.continuous_conv_transpose_backward(
        filters, pts, None, extents, offset, pts, feats[:, :4], idx,
        None, rs, inv.neighbors_index, None, inv.neighbors_row_splits, np.ones((200, 2)))
    for obj in (grads, tgrads, inv):
        assert_same(obj, _round_trip(obj, pickler), type(obj).__name__)


@PICKLER
def test_layers_and_their_gradients_round_trip(pickler):
    pts, feats = _cloud(150, seed=6)
    conv = layers.ContinuousConv(4, 3, 2, activation="relu", use_dense_layer_for_center=True, seed=7)
    tconv = layers.ContinuousConvTranspose(4, 3, (2, 3, 2), activation=np.tanh, seed=8, dtype=np.float64)
    out, ctx = conv.forward(feats, pts, pts, 0.3)
    cgrads = conv.backward(np.ones_like(out), ctx, wrt=("kernel", "bias", "dense_kernel", "inp_positions"))
    tout, tctx = tconv.forward(feats.astype(np.float64), pts.astype(np.float64), pts[:40].astype(np.float64), 0.3)
    tgrads = tconv.backward(np.ones_like(tout), tctx)
    search = layers.FixedRadiusSearch(metric="L1", return_distances=True, index_dtype=np.int64)
    res, sctx = search.forward(pts, pts[:20], 0.2)
    sgrads = search.backward(np.ones_like(res.neighbors_distance), sctx)
    for obj in (conv, tconv, search, layers.RadiusSearch(normalize_distances=True), layers.KNNSearch(metric="Linf"),
                cgrads, tgrads, sgrads):
        clone = _round_trip(obj, pickler)
        assert_same(obj, clone, type(obj).__name__)
    # the copies compute bitwise what the originals compute
    clone = _round_trip(conv, pickler)
    np.testing.assert_array_equal(clone(feats, pts, pts, 0.3), out)
    assert_same(cgrads, clone.backward(np.ones_like(out), wrt=("kernel", "bias", "dense_kernel", "inp_positions")))


@PICKLER
def test_dask_and_refinement_objects_round_trip(pickler):
    filters = np.random.default_rng(9).standard_normal((2, 2, 2, 4, 3)).astype(np.float32)
    conv = CloudConv(filters, 0.2, normalize=False, metric="Linf")
    step = AdamPoseStep(0.02, 0.001, decay=0.99)
    step(np.arange(12.0).reshape(2, 6))  # with moments
    scene = _scene()
    target = render(scene).rgb
    result = refine_scene(scene, target, 2)
    for obj in (conv, step, result, GradientSum(1.5, np.ones((2, 2)), 3), WorkerSettings(2, "cuda:1", "why")):
        assert_same(obj, _round_trip(obj, pickler), type(obj).__name__)
    pts, feats = _cloud(100, seed=10)
    np.testing.assert_array_equal(_round_trip(conv, pickler).forward(pts, feats), conv.forward(pts, feats))


def test_cloudpickle_carries_a_lambda_loss_and_a_window_function():
    conv = CloudConv(np.ones((1, 1, 1, 4, 2), np.float32), 0.2,
                     loss=lambda out, t: (float(np.sum(out)), np.ones_like(out)))
    clone = cloudpickle.loads(cloudpickle.dumps(conv))
    pts, feats = _cloud(50, seed=11)
    assert clone.loss_and_gradient(pts, feats, None)[0] == conv.loss_and_gradient(pts, feats, None)[0]
    layer = layers.ContinuousConv(4, 2, 2, window_function=lambda u: 1 - u, seed=12)
    twin = cloudpickle.loads(cloudpickle.dumps(layer))
    np.testing.assert_array_equal(twin(feats, pts, pts, 0.4), layer(feats, pts, pts, 0.4))


@PICKLER
def test_torch_layers_round_trip(pickler):
    torch = pytest.importorskip("torch")
    from geomops.torch import layers as tl
    torch.manual_seed(13)
    conv = tl.ContinuousConv(4, 3, 2, activation=torch.relu, use_dense_layer_for_center=True)
    tconv = tl.ContinuousConvTranspose(4, 3, 2).double()
    pts, feats = (torch.from_numpy(a) for a in _cloud(120, seed=14))
    for layer in (conv, tconv, tl.FixedRadiusSearch(metric="L1", return_distances=True), tl.RadiusSearch(),
                  tl.KNNSearch(index_dtype=torch.int64)):
        clone = _round_trip(layer, pickler)
        assert type(clone) is type(layer)
        state, again = layer.state_dict(), clone.state_dict()
        assert list(state) == list(again)
        for name in state:
            assert state[name].dtype == again[name].dtype and state[name].numpy().tobytes() == \
                again[name].numpy().tobytes(), name
        assert_same({k: v for k, v in vars(layer).items() if not k.startswith("_")},
                    {k: v for k, v in vars(clone).items() if not k.startswith("_")}, type(layer).__name__)
    clone = _round_trip(conv, pickler)
    out = conv(feats, pts, pts, 0.3).detach().numpy()
    assert clone(feats, pts, pts, 0.3).detach().numpy().tobytes() == out.tobytes()
