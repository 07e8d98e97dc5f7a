"""The continuous-convolution family on the CUDA backend.

Without a GPU (CI): the CUDA kernels compiled for the host (``geomops._cuda_emu``) against the
OpenMP kernels, launcher by launcher, on small random problems over every option; the backward
functions through the emulated backend; results that must not depend on ``max_temp_mem_MB``;
and the new CPU kernels of the backward functions against the NumPy formulas they replaced.
With a GPU (``@pytest.mark.cuda``): the GEMM primitive (fp32, fp64, TF32) against NumPy and
bitwise run-to-run determinism, filter gradient included.
"""

import itertools

import numpy as np
import pytest

import geomops as gm
from geomops import _backend, _cpu
from geomops import cconv as C
from geomops._cconv_args import options, prepare_forward, prepare_transpose

import reference_cconv as R

DTYPES = [np.float32, np.float64]
GEOMETRY = list(itertools.product(R.MAPPINGS, R.INTERPOLATIONS, (True, False)))
GEOMETRY_IDS = [f"{m[:12]}-{i}-ac{int(a)}" for m, i, a in GEOMETRY]
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
CPU = _backend.cpu()


def emulated():
    """The CUDA backend with the host-compiled kernels (usable after the context is left)."""
    with _backend.cuda_emulation():
        return _backend.resolve("cuda")


EMU = emulated()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    gm.set_num_threads(1)
    yield
    gm.set_num_threads(None)


def close(got, want, dtype, what):
    """|got - want| <= RTOL * max|want| (both host arrays of the same dtype and shape, or None)."""
    if want is None:
        assert got is None, what
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    if want.size == 0:
        return
    scale = float(np.max(np.abs(want.astype(np.float64))))
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert err <= RTOL[np.dtype(dtype)] * max(scale, 1e-30), f"{what}: max err {err:.3g}, max|want| {scale:.3g}"


def host(a):
    return CPU.to_host(a) if isinstance(a, np.ndarray) else a.get()


def opts(mapping="ball_to_cube_radial", interp="linear", align=True, normalize=False, mb=64, output_type=None):
    return options(align, mapping, normalize, interp, mb, output_type, 1)


def calls(p, dtype, index_dtype):
    """The forward call of problem p and the transpose call of its inversion (validated)."""
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    return (prepare_forward(*p.args(dtype, index_dtype)), prepare_transpose(*t.args(dtype, index_dtype)))


def grad_for(call, seed=3):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (call.out_positions.shape[0], call.filters.shape[4])).astype(call.dtype)


def both(fn, call, *args):
    """fn(backend, call, *args) on the CPU and on the emulated CUDA backend, as host arrays."""
    cpu = fn(CPU, call, *args)
    emu_call = None if call is None else call.to_backend(EMU)
    emu = fn(EMU, emu_call, *(EMU.from_host(a) if isinstance(a, np.ndarray) else a for a in args))
    if isinstance(cpu, tuple):
        return cpu, tuple(host(a) for a in emu)
    return cpu, host(emu)


# ---- every launcher: emulated CUDA vs CPU ------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRY, ids=GEOMETRY_IDS)
def test_conv_launchers_match_cpu(geometry, dtype):
    """apply, backprop_filter, neighbor_products and normalizers over the option grid: forward
    and transpose, normalize, importances, extent kinds and index dtypes cycled over it."""
    mapping, interp, align = geometry
    k = GEOMETRY.index(geometry)
    for importance, normalize in itertools.product((False, True), (False, True)):
        kind = R.EXTENT_KINDS[(k + 2 * importance + normalize) % len(R.EXTENT_KINDS)]
        index_dtype = (np.int32, np.int64)[(k + importance) % 2]
        p = R.make_problem(k, extent_kind=kind, importance=importance, offset_nonzero=not align)
        o = opts(mapping, interp, align, normalize)
        for call in calls(p, dtype, index_dtype):
            what = f"{'transpose' if call.transpose else 'forward'} {kind} imp={importance} norm={normalize}"
            g = grad_for(call)
            close(*both(lambda be, c: C._apply(be, c, o), call), dtype, "apply " + what)
            close(*both(lambda be, c, g_: C._backprop_filter(be, c, o, g_), call, g), dtype, "filter grad " + what)
            cpu, emu = both(lambda be, c, g_: C._neighbor_products(be, c, o, g_), call, g)
            close(emu, cpu, np.float64, "neighbor products " + what)
            (d_cpu, z_cpu), (d_emu, z_emu) = both(lambda be, c: C._normalizers(be, c, o), call)
            assert np.array_equal(d_cpu, d_emu) and np.array_equal(z_cpu, z_emu), "normalizers " + what


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_list_launchers_match_cpu(index_dtype):
    """invert_neighbors (identical rows and order), reduce_subarrays_sum (float64 accumulation in
    entry order: identical), the filter transpose and the cast kernel (exact)."""
    rng = np.random.default_rng(1)
    for num_points, rows in ((0, 0), (0, 3), (5, 0), (7, 9), (40, 25)):
        counts = rng.integers(0, 6, rows) if num_points else np.zeros(rows, np.int64)
        splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        index = rng.integers(0, max(num_points, 1), splits[-1]).astype(index_dtype)
        cpu, emu = both(lambda be, c, i, s: C._invert(be, num_points, i, s), None, index, splits)
        for a, b in zip(cpu, emu):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        for dtype in DTYPES:
            values = rng.standard_normal(splits[-1]).astype(dtype)
            cpu, emu = both(lambda be, c, v, s: C._row_sums(be, v, s, 1), None, values, splits)
            assert cpu.dtype == emu.dtype == dtype and np.array_equal(cpu, emu)
    for dtype in DTYPES:
        f = rng.standard_normal((2, 3, 1, 4, 5)).astype(dtype)
        cpu, emu = both(lambda be, c, f_: C._swap_channels(be, f_, 1), None, f)
        assert np.array_equal(cpu, np.swapaxes(f, 3, 4)) and np.array_equal(emu, cpu)
        other = np.float64 if dtype == np.float32 else np.float32
        o = opts(output_type=other)
        cpu, emu = both(lambda be, c, a: C._cast(be, a, o), None, f)
        assert np.array_equal(cpu, f.astype(other)) and np.array_equal(emu, cpu)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_degenerate_shapes(dtype):
    """No = 0, Ni = 0 (every row empty), E = 0, Cout not a multiple of any tile."""
    p = R.make_problem(4, num_inp=30, num_out=9, in_channels=5, out_channels=67, importance=True)
    cases = {
        "No=0": p.replace(out_positions=np.zeros((0, 3)), extents=np.array([[0.6]]), neighbors_index=np.zeros(0, int),
                          neighbors_importance=np.zeros(0), neighbors_row_splits=np.zeros(1, int)),
        "Ni=0": p.replace(inp_positions=np.zeros((0, 3)), inp_features=np.zeros((0, 5)), inp_importance=np.zeros(0),
                          neighbors_index=np.zeros(0, int), neighbors_importance=np.zeros(0),
                          neighbors_row_splits=np.zeros(10, int)),
        "E=0": p.replace(neighbors_index=np.zeros(0, int), neighbors_importance=np.zeros(0),
                         neighbors_row_splits=np.zeros(10, int)),
        "Cout=67": p,
    }
    for name, q in cases.items():
        for normalize in (False, True):
            o = opts(normalize=normalize)
            call = prepare_forward(*q.args(dtype, np.int64))
            g = grad_for(call)
            close(*both(lambda be, c: C._apply(be, c, o), call), dtype, f"apply {name}")
            close(*both(lambda be, c, g_: C._backprop_filter(be, c, o, g_), call, g), dtype, f"filter grad {name}")
            cpu, emu = both(lambda be, c, g_: C._neighbor_products(be, c, o, g_), call, g)
            close(emu, cpu, np.float64, f"products {name}")
            args = q.args(dtype, np.int64)
            want = gm.continuous_conv_backward(*args, g, normalize=normalize)
            with _backend.cuda_emulation():
                got = gm.continuous_conv_backward(*args, g, normalize=normalize, device="cuda")
            for a, b, field in zip(got, want, want._fields):
                close(a, b, dtype, f"backward {field} {name}")


def _dense_problem(num_out, num_inp, in_channels, out_channels, filter_dhw, radius, seed=0):
    """Uniform points with a large radius: many entries per row (tap windows, many chunks)."""
    rng = np.random.default_rng(seed)
    out = R.f32(rng.uniform(0, 1, (num_out, 3)))
    inp = R.f32(rng.uniform(0, 1, (num_inp, 3)))
    index, splits = R.radius_neighbors(out, inp, np.full(num_out, radius))
    d, h, w = filter_dhw
    return R.Problem(filters=R.f32(rng.uniform(-1, 1, (d, h, w, in_channels, out_channels))), out_positions=out,
                     extents=np.array([[2 * radius]]), offset=np.zeros(3), inp_positions=inp,
                     inp_features=R.f32(rng.uniform(-1, 1, (num_inp, in_channels))),
                     inp_importance=R.f32(rng.uniform(0.5, 1, num_inp)), neighbors_index=index,
                     neighbors_importance=R.f32(rng.uniform(0.5, 1, len(index))), neighbors_row_splits=splits)


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_do_not_depend_on_max_temp_mem(dtype):
    """max_temp_mem_MB 0 (the minimum: 32-row chunks, 1024-entry tap windows, filter-gradient
    slices continued over chunks) and large (one chunk; whole 512-row slices, batched) give the
    same bits, forward, transpose, filter gradients and neighbor products; also with K > 512
    (the forward GEMM split along K), where the emulation is compared with the CPU too."""
    p = _dense_problem(1100, 300, 2, 3, (2, 2, 2), 0.4)
    assert np.diff(p.neighbors_row_splits)[:32].sum() > 1024  # the first chunk needs several windows
    deep = _dense_problem(70, 50, 9, 5, (4, 4, 4), 0.3, seed=1)  # K = 576
    for q, normalize in itertools.product((p, deep), (False, True)):
        for cpu_call in calls(q, dtype, np.int32):
            g_host = grad_for(cpu_call)
            g = EMU.from_host(g_host)
            call = cpu_call.to_backend(EMU)
            small, large = opts(normalize=normalize, mb=0), opts(normalize=normalize, mb=4096)
            for fn in (lambda be, c, g_, o: C._apply(be, c, o), lambda be, c, g_, o: C._backprop_filter(be, c, o, g_),
                       lambda be, c, g_, o: C._neighbor_products(be, c, o, g_)):
                a, b = fn(EMU, call, g, small).get(), fn(EMU, call, g, large).get()
                assert np.array_equal(a, b)
                if q is deep:
                    close(a, host(fn(CPU, cpu_call, g_host, small)), a.dtype if a.dtype == np.float64 else dtype,
                          "K > 512")


# ---- the backward functions through the emulated backend ---------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRY[::4], ids=GEOMETRY_IDS[::4])
def test_backward_functions_match_cpu(geometry, dtype):
    """continuous_conv_backward / continuous_conv_transpose_backward on device="cuda" (emulated)
    against the CPU, every importance combination, normalize, output_type."""
    mapping, interp, align = geometry
    for importance, normalize in itertools.product((False, True), (False, True)):
        p = R.make_problem(7, extent_kind="Nx3" if normalize else "1x1", importance=importance)
        t = R.transpose_problem(p, in_channels=2, out_channels=3)
        kw = dict(coordinate_mapping=mapping, interpolation=interp, align_corners=align, normalize=normalize)
        g = grad_for(prepare_forward(*p.args(dtype)))
        gt = grad_for(prepare_transpose(*t.args(dtype)))
        for out_type in (None, np.float64 if dtype == np.float32 else np.float32):
            want = gm.continuous_conv_backward(*p.args(dtype), g, output_type=out_type, **kw)
            want_t = gm.continuous_conv_transpose_backward(*t.args(dtype), gt, output_type=out_type, **kw)
            with _backend.cuda_emulation():
                got = gm.continuous_conv_backward(*p.args(dtype), g, output_type=out_type, device="cuda", **kw)
                got_t = gm.continuous_conv_transpose_backward(*t.args(dtype), gt, output_type=out_type,
                                                              device="cuda", **kw)
            for a, b, field in itertools.chain(zip(got, want, want._fields), zip(got_t, want_t, want_t._fields)):
                close(a, b, np.float32 if np.float32 in (dtype, out_type) else np.float64,
                      f"{field} imp={importance} norm={normalize}")


def test_allow_tf32():
    """Ignored on the CPU (same bits); on the emulated CUDA backend the GEMM inputs are rounded
    to TF32 (about 1e-3 relative); validated like every flag."""
    p = R.make_problem(2, in_channels=8, out_channels=8)
    args = p.args(np.float32, np.int32)
    base = gm.continuous_conv(*args)
    assert np.array_equal(gm.continuous_conv(*args, allow_tf32=True), base)
    with _backend.cuda_emulation():
        tf32 = gm.continuous_conv(*args, allow_tf32=True, device="cuda")
        g = grad_for(prepare_forward(*args))
        bwd = gm.continuous_conv_backward(*args, g, allow_tf32=True, device="cuda")
    assert not np.array_equal(tf32, base)
    np.testing.assert_allclose(tf32, base, rtol=0, atol=1e-2 * np.abs(base).max())
    want = gm.continuous_conv_backward(*args, g)
    for a, b in zip(bwd, want):
        if b is None:  # the position gradients, not asked for
            assert a is None
            continue
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-2 * np.abs(b).max())
    with pytest.raises(TypeError, match="allow_tf32"):
        gm.continuous_conv(*args, allow_tf32=1)


# ---- the new CPU kernels against the NumPy formulas they replaced ----------------------------

def _row_ids(row_splits):
    return np.repeat(np.arange(row_splits.shape[0] - 1), np.diff(row_splits))


def _old_forward_formulas(call, psi_eff, psi_zero, dots, perm, normalize):
    """cconv.py's NumPy code before the kernels (the inverted weights, the importance gradients)."""
    rows = _row_ids(call.neighbors_row_splits)
    if psi_eff is None:
        psi_eff = np.ones(call.out_positions.shape[0])
    w = np.ones(rows.shape[0]) if call.neighbors_importance is None else call.neighbors_importance.astype(np.float64)
    weights = (w / psi_eff[rows]).astype(call.dtype)[perm]
    j = call.neighbors_index
    nb_imp = np.ones(rows.shape[0]) if call.neighbors_importance is None else \
        call.neighbors_importance.astype(np.float64)
    inp_imp = np.ones(rows.shape[0]) if call.inp_importance is None else call.inp_importance.astype(np.float64)[j]
    scaled = dots / psi_eff[rows]
    d_inp_imp = np.bincount(j, weights=nb_imp * scaled, minlength=call.inp_positions.shape[0]).astype(call.dtype)
    d = inp_imp * scaled
    if normalize:
        gout = np.bincount(rows, weights=nb_imp * inp_imp * scaled, minlength=psi_eff.shape[0])
        d = d - np.where(psi_zero, 0.0, gout / psi_eff)[rows]
    return weights, d_inp_imp, d.astype(call.dtype)


def _old_transpose_formulas(call, phi_eff, phi_zero, dots, perm, normalize):
    rows = _row_ids(call.neighbors_row_splits)
    j = call.neighbors_index
    nb_imp = np.ones(rows.shape[0]) if call.neighbors_importance is None else \
        call.neighbors_importance.astype(np.float64)
    phi_eff_j = phi_eff[j] if normalize else np.ones(rows.shape[0])
    c = nb_imp / phi_eff_j
    out_imp = np.ones(rows.shape[0]) if call.out_importance is None else call.out_importance.astype(np.float64)[rows]
    d_out_imp = np.bincount(rows, weights=c * dots, minlength=call.out_positions.shape[0]).astype(call.dtype)
    d_nb_imp = (out_imp * dots / phi_eff_j).astype(call.dtype)
    d_sum = np.zeros(call.inp_positions.shape[0], dtype=call.dtype)
    if normalize:
        contrib = -out_imp * nb_imp * dots / phi_eff_j ** 2
        s = np.bincount(j, weights=contrib, minlength=call.inp_positions.shape[0])
        d_sum = np.where(phi_zero, 0.0, s).astype(call.dtype)
    return c.astype(call.dtype)[perm], d_out_imp, d_nb_imp, d_sum


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", [False, True])
def test_cpu_backward_kernels_equal_old_numpy_formulas(dtype, normalize):
    """cconv_inverted_weights / cconv_importance_grads are bitwise the float64 NumPy code they
    replaced (np.bincount sums each bin in entry order: the order of the rows they loop over);
    a row whose importance sum is exactly 0 included."""
    p = R.make_problem(11, num_inp=40, num_out=15, importance=True)
    imp = p.neighbors_importance.copy()
    rs = p.neighbors_row_splits
    zero_row = next(i for i in range(len(rs) - 1) if rs[i + 1] - rs[i] >= 2)
    imp[rs[zero_row]] = 0.5
    imp[rs[zero_row] + 1:rs[zero_row + 1]] = 0.0
    imp[rs[zero_row] + 1] = -0.5
    p = p.replace(neighbors_importance=imp)
    o = opts(normalize=normalize)
    fwd, tr = calls(p, dtype, np.int64)
    for call in (fwd, tr):
        g = grad_for(call)
        divisor = was_zero = None
        if normalize:
            divisor, was_zero = C._normalizers(CPU, call, o)
            if not call.transpose:
                assert was_zero[zero_row]
        inverted = C._invert(CPU, call.inp_positions.shape[0], call.neighbors_index, call.neighbors_row_splits)
        weights = C._inverted_weights(CPU, call, divisor, inverted, 1)
        dots = C._neighbor_products(CPU, call, o, g)
        ni, no, e = call.inp_positions.shape[0], call.out_positions.shape[0], call.neighbors_index.shape[0]
        if not call.transpose:
            d_pt, d_nb = np.empty(ni, dtype), np.empty(e, dtype)
            _cpu.cconv_importance_grads(0, call.neighbors_index, call.neighbors_row_splits, call.neighbors_importance,
                                        call.inp_importance, divisor, was_zero, *inverted, dots, d_pt, d_nb, None, 1)
            want = _old_forward_formulas(call, divisor, was_zero, dots, inverted[2], normalize)
            got = (weights, d_pt, d_nb)
        else:
            d_pt, d_nb, d_sum = np.empty(no, dtype), np.empty(e, dtype), np.empty(ni, dtype)
            _cpu.cconv_importance_grads(1, call.neighbors_index, call.neighbors_row_splits, call.neighbors_importance,
                                        call.out_importance, divisor, was_zero, *inverted, dots, d_pt, d_nb, d_sum,
                                        1)
            want = _old_transpose_formulas(call, divisor, was_zero, dots, inverted[2], normalize)
            got = (weights, d_pt, d_nb, d_sum)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        # the emulated CUDA kernels compute the same float64 expressions
        e_inv = tuple(EMU.from_host(a) for a in inverted)
        e_div = None if divisor is None else EMU.from_host(divisor)
        e_call = call.to_backend(EMU)
        assert np.array_equal(C._inverted_weights(EMU, e_call, e_div, e_inv, 1).get(), weights)


# ---- the GEMM primitive -------------------------------------------------------------------------

def _gemm_case(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return a, b, c, ref


def _run_gemm(be, a, b, c, ta, tb, acc, tf32):
    dc = be.from_host(c)
    be.kernels.gemm(be.from_host(a), be.from_host(b), dc, ta, tb, acc, tf32)
    return dc.get()


GEMM_SHAPES = [(1, 1, 1), (7, 5, 3), (130, 67, 33), (64, 64, 8), (200, 3, 129)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_emulated(dtype):
    """The emulation's GEMM: every transposition, accumulate, and k split over two accumulating
    calls giving the same bits as one call (the fma chain the kernel computes per element)."""
    rng = np.random.default_rng(0)
    for (m, n, k), ta, tb in itertools.product(GEMM_SHAPES, (False, True), (False, True)):
        a, b, c, ref = _gemm_case(rng, m, n, k, ta, tb, dtype)
        close(_run_gemm(EMU, a, b, c, ta, tb, False, False), ref.astype(dtype), dtype, "gemm")
        close(_run_gemm(EMU, a, b, c, ta, tb, True, False), (c + ref).astype(dtype), dtype, "gemm accumulate")
    a, b, c, _ = _gemm_case(rng, 9, 11, 40, False, False, dtype)
    one = _run_gemm(EMU, a, b, c, False, False, False, False)
    half = _run_gemm(EMU, np.ascontiguousarray(a[:, :24]), b[:24], c, False, False, False, False)
    two = _run_gemm(EMU, np.ascontiguousarray(a[:, 24:]), b[24:], half, False, False, True, False)
    assert np.array_equal(one, two)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_gpu(dtype):
    """The tiled kernels against NumPy on shapes that are not multiples of any tile; the
    accumulate chain split over two calls gives the same bits; same as the emulation's chain."""
    be = _backend.resolve("cuda")
    rng = np.random.default_rng(0)
    for (m, n, k), ta, tb in itertools.product(GEMM_SHAPES + [(1000, 64, 2048)], (False, True), (False, True)):
        a, b, c, ref = _gemm_case(rng, m, n, k, ta, tb, dtype)
        rtol = 1e-5 if dtype == np.float32 else 1e-13
        got = _run_gemm(be, a, b, c, ta, tb, False, False)
        assert np.abs(got - ref).max() <= rtol * np.sqrt(k) * np.abs(ref).max()
        assert np.array_equal(got, _run_gemm(EMU, a, b, c, ta, tb, False, False))
        got = _run_gemm(be, a, b, c, ta, tb, True, False)
        assert np.abs(got - (c + ref)).max() <= rtol * np.sqrt(k) * np.abs(c + ref).max()
    a, b, c, _ = _gemm_case(rng, 90, 70, 100, False, False, dtype)
    one = _run_gemm(be, a, b, c, False, False, False, False)
    half = _run_gemm(be, np.ascontiguousarray(a[:, :37]), b[:37], c, False, False, False, False)
    assert np.array_equal(one, _run_gemm(be, np.ascontiguousarray(a[:, 37:]), b[37:], half, False, False, True, False))


@pytest.mark.cuda
def test_gemm_tf32_gpu():
    """TF32 within 1e-2 relative of NumPy, deterministic, and k split at multiples of 32 exact."""
    be = _backend.resolve("cuda")
    rng = np.random.default_rng(1)
    for (m, n, k), ta, tb in itertools.product(GEMM_SHAPES + [(1000, 64, 2048)], (False, True), (False, True)):
        a, b, c, ref = _gemm_case(rng, m, n, k, ta, tb, np.float32)
        got = _run_gemm(be, a, b, c, ta, tb, True, True)
        assert np.abs(got - (c + ref)).max() <= 1e-2 * np.abs(c + ref).max()
        assert np.array_equal(got, _run_gemm(be, a, b, c, ta, tb, True, True))
    a, b, c, _ = _gemm_case(rng, 90, 70, 100, False, False, np.float32)
    one = _run_gemm(be, a, b, c, False, False, False, True)
    half = _run_gemm(be, np.ascontiguousarray(a[:, :64]), b[:64], c, False, False, False, True)
    assert np.array_equal(one, _run_gemm(be, np.ascontiguousarray(a[:, 64:]), b[64:], half, False, False, True, True))


# ---- determinism and agreement on a real GPU -----------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_deterministic_and_matches_cpu(dtype):
    """Two runs bitwise equal (filter gradient included), max_temp_mem_MB 0 vs 256 bitwise equal,
    and the GPU against the CPU and the emulation."""
    p = _dense_problem(3000, 2000, 8, 16, (3, 3, 3), 0.12, seed=5)
    args = p.args(dtype, np.int32)
    g = grad_for(prepare_forward(*args))
    for tf32 in ((False, True) if dtype == np.float32 else (False,)):
        kw = dict(normalize=True, allow_tf32=tf32)
        runs = [gm.continuous_conv_backward(*args, g, device="cuda", max_temp_mem_MB=mb, **kw) for mb in (0, 256, 256)]
        fwd = [gm.continuous_conv(*args, device="cuda", max_temp_mem_MB=mb, **kw) for mb in (0, 256)]
        assert np.array_equal(fwd[0], fwd[1])
        for a, b, c in zip(*runs):
            assert np.array_equal(b, c) and np.array_equal(a, b)
        want = gm.continuous_conv_backward(*args, g, normalize=True)
        tol = 1e-2 if tf32 else {np.float32: 1e-4, np.float64: 1e-11}[dtype]
        for a, b in zip(runs[0], want):
            assert np.abs(a - b).max() <= tol * np.abs(b).max()
