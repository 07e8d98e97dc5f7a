#!/usr/bin/env bash
# Sanitizer check of the C kernels: builds geomops._cpu (the OpenMP kernels) and
# geomops._cuda_emu (the CUDA kernels compiled for the host) with AddressSanitizer and
# UndefinedBehaviorSanitizer (GEOMOPS_SANITIZE in setup.py), then runs a bounded subset of the
# tests of every family under them: continuous convolutions, searches, rasterizer, pose
# gradients, device arrays on the emulated GPU, memory limits and interrupts. Any sanitizer
# report aborts the tests and fails this script.
#
# Run by .ci/run; by hand from anywhere:  .ci/sanitize.sh
# Needs gcc with libasan and libubsan, and a Python with numpy, cython, setuptools and the test
# extras (PYTHON selects it, default: python). The build goes to a temporary folder (or
# GEOMOPS_SANITIZE_DIR); the source tree is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python}"
work="${GEOMOPS_SANITIZE_DIR:-$(mktemp -d)}"
mkdir -p "$work"
start=$SECONDS

GEOMOPS_SANITIZE=address,undefined GEOMOPS_CUDA=OFF "$python" setup.py -q \
    build_py --build-lib "$work/lib" \
    build_ext --build-lib "$work/lib" --build-temp "$work/temp" -j "$(nproc)" > "$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log" >&2; echo "FAIL: sanitizer build" >&2; exit 1; }
echo "sanitize: built in $((SECONDS - start)) s ($work)"

# Python itself is not instrumented: the runtime is preloaded; Python's own allocations "leak" by
# design, so leak detection is off. allocator_may_return_null: a huge request returns NULL (the
# kernels turn it into MemoryError) instead of aborting.
libasan="$(gcc -print-file-name=libasan.so)"
tests=(
    tests/test_cconv_ops.py tests/test_cconv_edge_cases.py tests/test_cconv_gradients.py
    tests/test_cconv_position_grads.py tests/test_cconv_cuda.py tests/test_cconv_bad_inputs.py
    tests/test_search_fixed_radius.py tests/test_search_knn.py tests/test_search_radius.py
    tests/test_search_hash_table.py tests/test_search_plan.py tests/test_search_cuda.py
    tests/test_render.py tests/test_cuda_pose_raster.py
    tests/test_posegrad_reference.py tests/test_posegrad_inputs.py tests/test_cuda_pose_grad.py
    tests/test_cuda_pose_delta.py
    tests/test_device_array.py tests/test_device_array_ops.py tests/test_device_validation.py
    tests/test_memory_limits.py
)
# The big-data repeats (thread counts, temporary-memory limits, large clouds) run the code paths
# of the smaller tests again on more points: skipped here to keep the step short (~1.5 min of
# tests on 2 cores).
skip="not thread_count and not max_temp_mem and not large_cloud and not large_query_set"
GEOMOPS_SANITIZED=1 PYTHONPATH="$work/lib" LD_PRELOAD="$libasan" \
    ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "$python" -m pytest -q -p no:cacheprovider -x "${tests[@]}" -k "$skip" \
    "tests/test_interrupt.py::test_interrupt_cpu[knn]" "tests/test_interrupt.py::test_interrupt_cuda_emu[render]"
echo "sanitize: passed in $((SECONDS - start)) s"
