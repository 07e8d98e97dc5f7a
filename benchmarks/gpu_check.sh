#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a session that is lent a device (see docs/cuda.md): one
# prepared run that builds geomops there, runs the whole test suite with a device required,
# compute-sanitizer (memcheck, racecheck) on small cases of every kernel family, and the CUDA
# benchmarks. Everything it prints also goes to $OUT (logs come back with the device tool).
#
#   bash benchmarks/gpu_check.sh            # all steps, ~8 min on an H200
#   STEPS="build test" bash benchmarks/gpu_check.sh
#
# Each step is bounded by `timeout`; a failing step is reported and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/geomops-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 GEOMOPS_CUDA=ON GEOMOPS_CUDA_ARCHS=${GEOMOPS_CUDA_ARCHS:-90}
PY=${PYTHON:-python3}
STEPS=${STEPS:-"build test sanitize bench"}
status=0

step() {  # name, timeout seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%H:%M:%S))" | tee -a "$OUT/summary.txt"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -25 "$OUT/$name.log"
    echo "=== $name: exit $rc" | tee -a "$OUT/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

has() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
if has build; then
    step build 300 "$PY" -m pip install --no-build-isolation --no-deps -v .
    "$PY" -m geomops config | tee "$OUT/config.txt"
fi
if has test; then
    # the CUDA tests first (they are what only this machine can run), then everything
    step test_cuda 240 env GEOMOPS_REQUIRE_CUDA=1 "$PY" -m pytest -q -x -n 8 -m cuda tests
    step test_all 300 env GEOMOPS_REQUIRE_CUDA=1 "$PY" -m pytest -q -n 12 tests
fi
if has sanitize; then
    # small cases only: the GPU-only tests of the kernel families, and the public search ops'
    # ordinary tests on the real device (test ids with "cuda" and not "emu")
    for tool in memcheck racecheck; do
        step "sanitize_$tool" 240 compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 20 \
            "$PY" -m pytest -q -x -p no:xdist -m cuda \
            tests/test_cconv_cuda.py tests/test_cuda_pose_raster.py tests/test_cuda_pose_grad.py \
            tests/test_cuda_pose_delta.py tests/test_device_array_ops.py
        step "sanitize_${tool}_search" 200 compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 20 \
            "$PY" -m pytest -q -x -p no:xdist -k "cuda and not emu" \
            tests/test_search_fixed_radius.py tests/test_search_knn.py tests/test_search_radius.py
    done
fi
if has bench; then
    step bench_cuda 240 "$PY" benchmarks/bench_cuda.py --repeat 3
    step bench_pose 120 "$PY" benchmarks/bench_pose.py --device cuda --width 1920 --height 1080 --objects 20
fi
echo "gpu_check: $([ $status -eq 0 ] && echo all steps passed || echo some steps FAILED) (logs in $OUT)"
exit $status
