"""Shared machinery of the fuzz tests (``tests/test_fuzz_*.py``).

Each fuzz test draws a valid call of a public entry point (small sizes), runs it and checks the
result against a reference, then draws ONE mutation of one argument (a dtype -- bool, integers,
float16, complex, object --, a shape, a non-contiguous or read-only layout, NaN / inf / huge /
negative values, an empty array, None, a list, a scalar) and checks the contract of the
library:

* a correct result: bitwise the unmutated result for a mutation that keeps the values (layouts,
  lists, exact dtype conversions), else the reference's (or an invariant where a full
  reference is too slow), or
* a ``TypeError`` / ``ValueError`` / ``MemoryError`` whose message names the mutated argument,

never another exception, a crash, a hang (a fixture dumps the stacks and exits after
``HANG_SECONDS``) or silent garbage. NumPy's "overflow / invalid value encountered" warnings
and ``ComplexWarning`` (silent loss of data) are turned into errors inside the calls.

The number of examples comes from the hypothesis profile (``tests/conftest.py``): "ci" (fixed,
derandomized; selected when ``CI=true``), "dev" (the default, random) and "long"
(``GEOMOPS_FUZZ=long pytest tests/test_fuzz_*.py``). :func:`fuzz_settings` scales it per
test by the test's cost.
"""

from __future__ import annotations

import contextlib
import faulthandler
import re
import warnings

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ACCEPTED_ERRORS = (TypeError, ValueError, MemoryError)
HANG_SECONDS = 120  # one call on these tiny inputs takes milliseconds

# mutation kinds whose result must equal the unmutated call's
EQUIVALENT = ("layout",)


def fuzz_settings(weight=1.0):
    """The current hypothesis profile with its example count scaled by ``weight`` (the
    relative cost of one example); the function-scoped ``device``-style fixtures are fine here."""
    base = settings.default
    return settings(base, max_examples=max(1, int(base.max_examples * weight)),
                    suppress_health_check=list(base.suppress_health_check) + [
                        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                        HealthCheck.function_scoped_fixture])


def names_argument(message, name):
    """Whether ``message`` names argument ``name`` as a whole word ("neighbors_index" is not named
    by "inp_neighbors_index"; "rgb" is named by "render_result.rgb")."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


@contextlib.contextmanager
def watchdog(seconds=HANG_SECONDS):
    """Dump every thread's stack and exit the process when the block runs longer than
    ``seconds``: a hang fails the run instead of stalling it."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def outcome(call):
    """``("ok", result)`` or ``("error", exception)`` for the accepted exception types; anything
    else propagates and fails the test. Data-losing NumPy warnings raise inside the call, and a
    call that hangs ends the process (:func:`watchdog`)."""
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        warnings.filterwarnings("error", message=".*encountered in", category=RuntimeWarning)
        try:
            return "ok", call()
        except ACCEPTED_ERRORS as exc:
            return "error", exc


def assert_names(exc, *names):
    msg = f"{type(exc).__name__}: {exc}"
    assert any(names_argument(str(exc), n) for n in names), f"the error does not name {' or '.join(names)}: {msg}"


# ---- mutations --------------------------------------------------------------------------------

FOREIGN_DTYPES = (np.bool_, np.int8, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64,
                  np.complex64, np.complex128, object)


def huge(dtype):
    """A finite value near the top of ``dtype``'s range."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return float(np.finfo(dt).max) / 4
    if dt.kind in "iu":
        return int(np.iinfo(dt).max)
    return 1e300


def _strided(a):
    return np.repeat(a, 2, axis=0)[::2]


def _negative(a):
    return np.ascontiguousarray(a[::-1])[::-1]


def _readonly(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


LAYOUTS = {"strided": _strided, "fortran": np.asfortranarray, "negative": _negative, "readonly": _readonly}


def _resize(a, axis, n):
    """``a`` with ``n`` entries along ``axis`` (cut, or repeated from its last entry / zeros)."""
    if n <= a.shape[axis]:
        return np.take(a, np.arange(n), axis=axis)
    extra_shape = list(a.shape)
    extra_shape[axis] = n - a.shape[axis]
    if a.shape[axis]:
        last = np.take(a, [a.shape[axis] - 1], axis=axis)
        extra = np.repeat(last, n - a.shape[axis], axis=axis)
    else:
        extra = np.zeros(extra_shape, a.dtype)
    return np.concatenate([a, extra], axis=axis)


@st.composite
def mutations(draw, value, role):
    """``(kind, description, new value)``: one mutation of an argument ``value`` whose role is
    "float" (float data), "position" (coordinates), "index" (indices), "splits" (row splits),
    "count" (an int) or "scalar" (a real number)."""
    if role == "count":
        kind = draw(st.sampled_from(["values", "dtype", "none"]))
        if kind == "values":
            # never a count whose allocation could succeed and exhaust the machine (2**31 points: 16 GiB)
            new = draw(st.sampled_from([-1, 0, value + 1, 2 ** 62, 2 ** 63 - 1]))
        elif kind == "dtype":
            new = draw(st.sampled_from([float(value), str(value), np.array([value]), True, complex(value)]))
        else:
            new = None
        return kind, f"{kind} -> {new!r}", new
    if role == "scalar":
        kind = draw(st.sampled_from(["values", "dtype", "none", "shape"]))
        if kind == "values":
            new = draw(st.sampled_from([np.nan, np.inf, -np.inf, -value, 0.0, 1e300, 1e-300, 5e-324]))
        elif kind == "dtype":
            new = draw(st.sampled_from([str(value), True, complex(value), np.float16(value), object()]))
        elif kind == "shape":
            new = draw(st.sampled_from([np.array([value]), np.array([[value]]), [value, value], np.zeros(0)]))
        else:
            new = None
        return kind, f"{kind} -> {new!r}", new
    if value is None:
        kind = draw(st.sampled_from(["values", "dtype"]))
        new = np.zeros(draw(st.integers(0, 3))) if kind == "values" else np.array(["x"])
        return kind, f"None -> {new!r}", new
    a = np.asarray(value)
    kinds = ["dtype", "shape", "none", "scalar", "empty"]
    if a.size:
        kinds += ["layout", "values", "values", "list"]
    kind = draw(st.sampled_from(kinds))
    if kind == "layout":
        how = draw(st.sampled_from(sorted(LAYOUTS)))
        return kind, f"layout {how}", LAYOUTS[how](a)
    if kind == "list":
        return kind, "as a list", a.tolist()
    if kind == "none":
        return kind, "None", None
    if kind == "scalar":
        new = draw(st.sampled_from([1.0, 0, np.float64(2.5), np.array(1.5)]))
        return kind, f"scalar {new!r}", new
    if kind == "empty":
        new = np.zeros((0,) + a.shape[1:], a.dtype) if draw(st.booleans()) or a.ndim == 0 else np.zeros(0, a.dtype)
        return kind, f"empty {new.shape}", new
    if kind == "dtype":
        dt = draw(st.sampled_from([d for d in FOREIGN_DTYPES if np.dtype(d) != a.dtype]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            new = a.astype(dt)
        if np.dtype(dt).kind == "c" and new.size:
            new = new + 1j  # a true imaginary part: dropping it would be silent garbage
        return kind, f"dtype {np.dtype(dt)}", new
    if kind == "shape":
        options = ["add_axis", "ravel"]
        if a.ndim:
            options += ["drop_axis", "grow", "shrink"]
        if a.ndim >= 2:
            options.append("swap")
        how = draw(st.sampled_from(options))
        if how == "add_axis":
            new = a[None] if draw(st.booleans()) else a[..., None]
        elif how == "ravel":
            new = a.reshape(-1) if a.ndim != 1 else a.reshape(1, -1)
        elif how == "drop_axis":
            new = a[0] if a.shape[0] else np.zeros(a.shape[1:], a.dtype)
        elif how == "swap":
            new = np.swapaxes(a, 0, a.ndim - 1)
        else:
            axis = draw(st.integers(0, a.ndim - 1))
            n = a.shape[axis] + (draw(st.integers(1, 3)) if how == "grow" else -min(a.shape[axis], 1))
            new = _resize(a, axis, n)
        return kind, f"shape {how} -> {np.shape(new)}", new
    # values
    flat = a.reshape(-1).copy()
    k = draw(st.integers(0, flat.size - 1))
    if role in ("float", "position") and a.dtype.kind in "iu":
        v = draw(st.sampled_from(["max", "min", 0, -1] if a.dtype.kind == "i" else ["max", 0]))
        v = {"max": np.iinfo(a.dtype).max, "min": np.iinfo(a.dtype).min}.get(v, v)
        flat[k] = v
        return kind, f"values [{k}] = {v}", flat.reshape(a.shape)
    if role in ("float", "position"):
        new_value = draw(st.sampled_from(["nan", "inf", "-inf", "huge", "-huge", "zero", "negative", "tiny"]))
        v = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": huge(a.dtype), "-huge": -huge(a.dtype),
             "zero": 0.0, "negative": -abs(float(flat[k])) - 1.0, "tiny": 1e-40}[new_value]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flat[k] = v
        return kind, f"values [{k}] = {new_value}", flat.reshape(a.shape)
    if role == "index":
        v = draw(st.sampled_from([-1, "n", "max", "min"]))
        v = {"max": np.iinfo(a.dtype).max, "min": np.iinfo(a.dtype).min, "n": int(a.max()) + 1}.get(v, v)
        flat[k] = v
        return kind, f"values [{k}] = {v}", flat.reshape(a.shape)
    # splits
    how = draw(st.sampled_from(["first", "last", "decreasing", "huge"]))
    if how == "first":
        flat[0] = draw(st.sampled_from([1, -1]))
    elif how == "last":
        flat[-1] += draw(st.sampled_from([1, -1]))
    elif how == "decreasing" and flat.size > 2:
        flat[k] = flat[k] - 1 if k else -1
        flat[1] = flat[-1] + 1
    else:
        flat[k] = np.iinfo(flat.dtype).max
    return kind, f"splits {how}", flat.reshape(a.shape)


def results_equal(got, want):
    """Bitwise equality of two results (arrays, named tuples of arrays or None)."""
    if isinstance(want, tuple):
        return isinstance(got, tuple) and len(got) == len(want) and all(
            results_equal(g, w) for g, w in zip(got, want))
    if want is None:
        return got is None
    got, want = np.asarray(got), np.asarray(want)
    return got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def to_host(x):
    """Device results (DeviceArray, named tuples of them) as NumPy."""
    if isinstance(x, tuple):
        return type(x)(*(to_host(v) for v in x)) if hasattr(x, "_fields") else tuple(to_host(v) for v in x)
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else x


def on_device(be, x):
    """NumPy arrays (and tuples of them) as device arrays of backend ``be``; the rest as is."""
    if isinstance(x, np.ndarray):
        return be.from_host(x) if x.dtype != object else x
    if isinstance(x, tuple):
        return tuple(on_device(be, v) for v in x)
    return x


def device_safe(x):
    """Whether ``x`` can be put on a device for the device-flavour check (no object / complex /
    string arrays: device arrays of those do not exist)."""
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "biuf"
    if isinstance(x, tuple):
        return all(device_safe(v) for v in x)
    return True
