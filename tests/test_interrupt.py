"""Ctrl-C interrupts long calls (docs/architecture.md, "Interrupts and memory limits").

Each test starts tests/interrupt_child.py in a subprocess, which calibrates one long op (its size
grown until an uninterrupted call takes at least 0.9 s here), then calls it again; this
process sends SIGINT a third of a call in and checks, from the child's own report, that
KeyboardInterrupt was raised inside the call within INTERRUPT_BOUND seconds of the signal (a call
that did not poll would run on for two thirds of a call), that three more interrupted calls left
the resident memory where it was, and that a last call still gives the first call's result
bitwise. Latencies are measured with time.monotonic on both sides (one clock system-wide); no
absolute speed is asserted."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

INTERRUPT_BOUND = 0.5  # seconds from SIGINT to KeyboardInterrupt
RSS_SLACK = 48 << 20  # allocator noise over the repeated interrupted calls; a leak is larger
CHILD = os.path.join(os.path.dirname(__file__), "interrupt_child.py")
SANITIZED = os.environ.get("GEOMOPS_SANITIZED") == "1"  # set by .ci/sanitize.sh

CPU_CASES = ["cconv", "cconv_backward", "knn", "radius", "fixed_radius", "render", "image_gradients", "backprop"]
# the emulation polls in its launch loop, the same for every kernel: one op per family
EMU_CASES = ["cconv_backward", "fixed_radius", "render", "backprop"]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/statm, sends SIGINT")


def run_child(case, backend):
    """Run the child, interrupting each of its calls; return its events and the signal times."""
    proc = subprocess.Popen([sys.executable, CHILD, case, backend], stdout=subprocess.PIPE, text=True)
    events, sent = [], []
    try:
        seconds = None
        for line in proc.stdout:
            ev = json.loads(line)
            events.append(ev)
            if ev["event"] == "calibrated":
                seconds = ev["seconds"]
            elif ev["event"] == "start":
                # the first call a third of the way in, the RSS repeats soon after they start
                time.sleep(seconds / 3 if len(sent) == 0 else 0.2)
                sent.append(time.monotonic())
                proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, f"child failed: {events}"
    finally:
        if proc.poll() is None:
            proc.kill()
    return events, sent


def latency_problems(case, backend, events, sent):
    """What broke the latency bound in one child's run (empty: nothing); asserts the rest."""
    by = {}
    for ev in events:
        by.setdefault(ev["event"], []).append(ev)
    calibrated = by["calibrated"][0]["seconds"]
    caught = by["interrupted"]
    assert len(caught) == len(sent)
    assert caught[0]["in_call"], f"{case}: the interrupt arrived between calls ({events})"
    rss = [ev["bytes"] for ev in by["rss"]]
    if not SANITIZED:  # AddressSanitizer keeps freed memory in quarantine
        assert rss[1] - rss[0] <= RSS_SLACK, f"{case}: resident memory grew by {(rss[1] - rss[0]) >> 20} MiB"
    assert by["done"][0]["equal"], f"{case}: the call after the interrupted ones gave another result"
    latencies = [c["t"] - s for c, s in zip(caught, sent)]
    print(f"{case} ({backend}): call {calibrated:.2f} s, interrupt latency {latencies[0] * 1000:.0f} ms, "
          f"repeats {[round(t * 1000) for t in latencies[1:]]} ms")
    return [f"{case} ({backend}): KeyboardInterrupt {t:.3f} s after SIGINT (call of {calibrated:.2f} s)"
            for t in latencies if not 0 <= t <= INTERRUPT_BOUND]


def check(case, backend):
    # A second run when the bound was missed: on a loaded machine the scheduler alone can hold a
    # process back for longer (a call that did not poll misses it every time, by seconds).
    problems = latency_problems(case, backend, *run_child(case, backend))
    if problems:
        print("retrying:", problems)
        problems = latency_problems(case, backend, *run_child(case, backend))
    assert not problems, problems


@pytest.mark.slow
@pytest.mark.parametrize("case", CPU_CASES)
def test_interrupt_cpu(case):
    check(case, "cpu")


@pytest.mark.slow
@pytest.mark.parametrize("case", EMU_CASES)
def test_interrupt_cuda_emu(case):
    check(case, "cuda-emu")
