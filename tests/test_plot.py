"""geomops.plot: each picture renders (Agg), is not blank and shows what it claims; bad inputs give
TypeError/ValueError naming the argument; importing geomops does not import matplotlib."""

import io
import subprocess
import sys

import numpy as np
import pytest

import geomops

pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

from geomops import plot  # noqa: E402


def _rendered(fig):
    """RGB pixels of the figure rendered by Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def _not_blank(fig):
    px = _rendered(fig)
    assert px.std() > 5, "the figure is blank"
    fig.savefig(io.BytesIO(), format="png")


def test_import_geomops_does_not_import_matplotlib():
    code = ("import sys, geomops, geomops.plot, geomops.pose.plotting, geomops._demo; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"geomops.plot needs matplotlib.*geomops\[plot\]"):
        plot.plot_filter(np.zeros((1, 1, 1, 1, 1)))


def test_plot_filter_shows_the_slices():
    f = np.random.default_rng(0).normal(size=(3, 4, 5, 2, 3)).astype(np.float32)
    fig = plot.plot_filter(f, in_channel=1, out_channel=2)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.get_axes() if ax.get_images()]
    assert [ax.get_title() for ax in axes] == ["depth d = 0", "depth d = 1", "depth d = 2"]
    for d, ax in enumerate(axes):
        im = ax.get_images()[0]
        np.testing.assert_array_equal(im.get_array(), f[d, :, :, 1, 2])
        lo, hi = im.get_clim()
        assert lo == -hi == -np.abs(f[..., 1, 2]).max()
    assert "in channel 1 -> out channel 2" in fig.get_suptitle()
    _not_blank(fig)


def test_plot_filter_wraps_and_draws_on_a_subfigure():
    f = np.arange(8 * 2 * 2).reshape(8, 2, 2, 1, 1).astype(np.float64)
    root = Figure()
    left, right = root.subfigures(1, 2)
    assert plot.plot_filter(f, fig=right, max_columns=3, title="mine") is root
    axes = [ax for ax in root.get_axes() if ax.get_images()]
    assert len(axes) == 8
    assert right.get_suptitle() == "mine"
    fig = plot.plot_filter(f, vmax=100.0)
    assert fig.get_axes()[0].get_images()[0].get_clim() == (-100.0, 100.0)


@pytest.mark.parametrize("bad, exc, match", [
    (dict(filters=np.zeros((3, 3, 3, 2))), ValueError, "filters must have shape"),
    (dict(filters=np.zeros((0, 3, 3, 2, 2))), ValueError, "empty axis"),
    (dict(filters=np.zeros((3, 3, 3, 2, 2), bool)), TypeError, "filters must be an array of real numbers"),
    (dict(in_channel=2), ValueError, r"in_channel must be in \[0, 2\)"),
    (dict(out_channel=1.0), TypeError, "out_channel must be an int"),
    (dict(fig="x"), TypeError, "fig must be a matplotlib Figure"),
    (dict(max_columns=0), ValueError, "max_columns"),
    (dict(vmax=0.0), ValueError, "vmax must be a positive number"),
])
def test_plot_filter_checks_its_input(bad, exc, match):
    kwargs = dict(filters=np.zeros((3, 3, 3, 2, 2)))
    kwargs.update(bad)
    with pytest.raises(exc, match=match):
        plot.plot_filter(kwargs.pop("filters"), **kwargs)


def _cloud():
    pts = np.random.default_rng(1).random((600, 3)).astype(np.float32)
    return pts, geomops.fixed_radius_search(pts, pts, 0.15, return_distances=True)


def _collection(ax, prefix):
    handles, labels = ax.get_legend_handles_labels()
    return [h for h, lab in zip(handles, labels) if lab.startswith(prefix)]


@pytest.mark.parametrize("zoom", [False, True])
def test_plot_neighbors_draws_exactly_the_neighbors(zoom):
    pts, nb = _cloud()
    q = 7
    rs = nb.neighbors_row_splits
    want = nb.neighbors_index[rs[q]:rs[q + 1]]
    fig = plot.plot_neighbors(pts, nb, q, radius=0.15, zoom=zoom)
    ax = fig.get_axes()[0]
    assert ax.name == "3d"
    (coll,) = _collection(ax, f"{want.size} neighbors")
    xs, ys, zs = coll._offsets3d
    np.testing.assert_array_equal(np.sort(np.asarray(xs)), np.sort(pts[want, 0]))
    np.testing.assert_array_equal(np.asarray(coll.get_array()), nb.neighbors_distance[rs[q]:rs[q + 1]])
    (star,) = _collection(ax, f"query {q}")
    np.testing.assert_array_equal(np.ravel(star._offsets3d[0]), pts[q, :1])
    (others,) = _collection(ax, "other points")
    assert len(others._offsets3d[0]) + want.size <= pts.shape[0]
    assert ax.get_title().startswith(f"query {q}: {want.size} neighbors")
    _not_blank(fig)


def test_plot_neighbors_with_queries_knn_and_an_axes():
    pts, _ = _cloud()
    queries = np.array([[0.5, 0.5, 0.5], [0.1, 0.2, 0.3]], np.float32)
    nb = geomops.knn_search(pts, queries, 9)
    root = Figure()
    ax = root.add_subplot(1, 2, 2, projection="3d")
    assert plot.plot_neighbors(pts, nb, 1, queries=queries, ax=ax, max_background=50) is root
    assert len(_collection(ax, "9 neighbors")) == 1
    (others,) = _collection(ax, "other points")
    assert len(others._offsets3d[0]) == 50


def test_plot_neighbors_checks_its_input():
    pts, nb = _cloud()
    with pytest.raises(TypeError, match="neighbors must be a neighbor search result"):
        plot.plot_neighbors(pts, (nb.neighbors_index,), 0)
    with pytest.raises(ValueError, match="points must have shape"):
        plot.plot_neighbors(pts[:, :2], nb, 0)
    with pytest.raises(ValueError, match=r"query_index must be in \[0, 600\)"):
        plot.plot_neighbors(pts, nb, 600)
    with pytest.raises(ValueError, match="pass the queries that were searched"):
        plot.plot_neighbors(pts, nb, 0, queries=pts[:5])
    with pytest.raises(ValueError, match="outside"):
        plot.plot_neighbors(pts[:10], nb._replace(neighbors_row_splits=nb.neighbors_row_splits[:11]), 3)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        plot.plot_neighbors(pts, nb, 0, radius=-1.0)
    with pytest.raises(TypeError, match="ax must be a 3-D axes"):
        plot.plot_neighbors(pts, nb, 0, ax=Figure().add_subplot())


def _spec_mapping(p, mapping):
    """The cconv spec's formulas (§2.2) for relative positions with extent 1."""
    u = 2 * p
    if mapping == "identity":
        return p
    if mapping == "ball_to_cube_radial":
        m = np.abs(u).max(axis=1, keepdims=True)
        r = np.linalg.norm(u, axis=1, keepdims=True)
        return np.where(m < 1e-8, 0.0, 0.5 * u * r / np.where(m < 1e-8, 1, m))
    out = []
    for x, y, z in u:  # volume preserving
        n = np.sqrt(x * x + y * y + z * z)
        if n * n < 1e-12:
            x = y = z = 0.0
        elif 1.25 * z * z > x * x + y * y:
            s = np.sqrt(3 * n / (n + abs(z)))
            x, y, z = x * s, y * s, np.copysign(n, z)
        else:
            s = n / np.sqrt(x * x + y * y)
            x, y, z = x * s, y * s, 1.5 * z
        rho = np.sqrt(x * x + y * y)
        if rho * rho < 1e-12:
            x = y = 0.0
        elif abs(y) <= abs(x):
            x, y = np.copysign(rho, x), np.copysign(rho, x) * 4 / np.pi * np.arctan(y / x)
        else:
            x, y = np.copysign(rho, y) * 4 / np.pi * np.arctan(x / y), np.copysign(rho, y)
        out.append((x / 2, y / 2, z / 2))
    return np.array(out)


@pytest.mark.parametrize("mapping", ["identity", "ball_to_cube_radial", "ball_to_cube_volume_preserving"])
def test_the_kernel_mapping_matches_the_spec(mapping):
    rng = np.random.default_rng(2)
    p = rng.normal(size=(200, 3))
    p *= 0.5 * rng.random((200, 1)) / np.linalg.norm(p, axis=1, keepdims=True)
    np.testing.assert_allclose(plot._mapped(p, mapping), _spec_mapping(p, mapping), atol=1e-12)


def test_plot_coordinate_mapping_shows_the_three_mappings():
    fig = plot.plot_coordinate_mapping(num_circles=4, num_rays=8)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == [
        f"{m}\n{pl} plane" for pl in ("xy", "xz")
        for m in ("identity", "ball_to_cube_radial", "ball_to_cube_volume_preserving")]
    for ax in axes:
        circles = {line.get_label(): line.get_xydata() for line in ax.get_lines()
                   if line.get_label().startswith("r = ")}
        assert list(circles) == ["r = 0.125", "r = 0.25", "r = 0.375", "r = 0.5"]
        outer = circles["r = 0.5"]
        if ax.get_title().startswith("identity"):
            np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 0.5, atol=1e-12)
        else:  # the ball's surface goes to the cube's surface
            np.testing.assert_allclose(np.abs(outer).max(axis=1), 0.5, atol=1e-9)
    _not_blank(fig)


def test_plot_coordinate_mapping_checks_its_input():
    with pytest.raises(ValueError, match="mappings: 'radial'"):
        plot.plot_coordinate_mapping(["radial"])
    with pytest.raises(TypeError, match="mappings must be a sequence"):
        plot.plot_coordinate_mapping("identity")
    with pytest.raises(ValueError, match="planes: 'xw'"):
        plot.plot_coordinate_mapping(planes=["xw"])
    with pytest.raises(ValueError, match="num_circles"):
        plot.plot_coordinate_mapping(num_circles=0)
    fig = plot.plot_coordinate_mapping(["ball_to_cube_radial"], planes=["yz"])
    assert [ax.get_title() for ax in fig.get_axes()] == ["ball_to_cube_radial\nyz plane"]


def _edge_maps(h=120, w=160):
    """Maps that are non-zero on a 1-pixel rectangle outline, as the pose gradient's are."""
    c = np.zeros((1, 6, h, w), np.float32)
    mask = np.zeros((h, w), np.uint16)
    mask[50:70, 60:90] = 1
    for e in range(6):
        c[0, e, 50, 60:90] = e + 1
        c[0, e, 69, 60:90] = -(e + 1)
    return c, mask


def test_plot_pose_gradients_exact_maps_without_crop():
    c, mask = _edge_maps()
    grad = c.sum(axis=(2, 3))
    fig = plot.plot_pose_gradients(c, grad, crop=False, thicken=0)
    axes = [ax for ax in fig.get_axes() if ax.get_images()]
    assert [ax.get_title().split("\n")[0] for ax in axes] == list(plot.PARAM_NAMES)
    for e, ax in enumerate(axes):
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), c[0, e])
        assert ax.get_title().endswith(f"sum = {grad[0, e]:.4g}")
    _not_blank(fig)


def test_plot_pose_gradients_crops_thickens_and_outlines():
    c, mask = _edge_maps(480, 640)
    fig = plot.plot_pose_gradients(c[0], outline=mask, thicken=2, ncols=6)
    axes = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(axes) == 6 and len(fig.get_axes()) == 12  # one row of maps, each with a colour bar
    im = axes[2].get_images()[0]
    x0, x1, y1, y0 = im.get_extent()  # the crop keeps pixel coordinates: it contains the box
    assert x0 < 60 and x1 > 90 and y0 < 50 and y1 > 70 and x1 - x0 < 100
    data = np.asarray(im.get_array())
    assert np.count_nonzero(data == 3) == 5 * (30 + 4)  # a 1-pixel line widened to 5 pixels
    assert len(axes[2].collections) >= 1  # the outline's contour
    _not_blank(fig)


def test_plot_pose_gradients_checks_its_input():
    c, mask = _edge_maps()
    with pytest.raises(ValueError, match="contributions must have shape"):
        plot.plot_pose_gradients(c[:, :5])
    with pytest.raises(ValueError, match="grad must have shape"):
        plot.plot_pose_gradients(c, np.zeros(5))
    with pytest.raises(ValueError, match="outline must have the maps' shape"):
        plot.plot_pose_gradients(c, outline=mask[1:])
    with pytest.raises(TypeError, match="thicken must be an int"):
        plot.plot_pose_gradients(c, thicken=1.5)
    with pytest.raises(ValueError, match="ncols"):
        plot.plot_pose_gradients(c, ncols=0)


def test_visualize_grad_figure_has_the_outline():
    from geomops import pose
    cam = pose.Camera(160, 120, 266.7, 266.9, 78.2, 60.3)
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 0.6)
    scene = pose.Scene(cam, [pose.SceneObject(pose.Mesh.box(0.1), T)])
    rr = pose.render(scene)
    g = np.ones((3, 120, 160), np.float32)
    _, fig = pose.backpropagate_gradient_to_poses(scene, rr, g, visualize_grad=True)
    axes = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(axes) == 6 and all(ax.collections for ax in axes)
