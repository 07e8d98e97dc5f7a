"""Every ```python snippet of docs/*.md and README.md runs.

The snippets of one page run in order in one namespace (a later snippet may use what an earlier
one defined), in a temporary folder. An HTML comment on the line before a fence (invisible in the
rendered page) changes how that snippet runs:

* ``<!-- snippet: cuda -->``: on the CUDA backend; without a GPU on its host emulation
  (``geomops._backend.cuda_emulation``), which runs the same kernels on host memory.
* ``<!-- snippet: gpu -->``: only with a real CUDA device (it hands device memory to another
  library, e.g. PyTorch through DLPack, which the emulation's host memory cannot stand in for).
* ``<!-- snippet: torch -->``: only where PyTorch is installed.
* ``<!-- snippet: raises TypeError -->``: the snippet must end with that exception.
* ``<!-- snippet: cluster -->``: needs a real cluster (a scheduler address or GPU workers): shown,
  not run. Such a snippet must name a scheduler address (``"tcp://..."``) or GPU resources
  (``resources={"GPU": ...}``, ``device="worker"``), so that the mark cannot hide any other snippet.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

import geomops
from geomops import _backend

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
# what only a real cluster has: a scheduler's address, or GPU workers
CLUSTER_ONLY = re.compile(r"""["'](?:tcp|tls|ucx)://[^"']+["']|resources=\{["']GPU["']|device=["']worker["']""")
FENCE = re.compile(r"(?:<!-- snippet: (?P<mark>[^>]*?) -->\n)?^```python\n(?P<code>.*?)^```", re.M | re.S)


def snippets(page):
    """[(line number, mark or '', code)] of the page's python snippets."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start("code")) + 1, (m.group("mark") or "").strip(), m.group("code"))
            for m in FENCE.finditer(text)]


def test_snippets_found():
    """The extraction finds the pages' snippets (a changed fence style would skip them silently)."""
    found = {p.name: len(snippets(p)) for p in PAGES}
    assert found["quickstart.md"] >= 3 and found["cconv.md"] >= 2 and found["pose.md"] >= 2, found


def test_cluster_snippets_need_a_cluster():
    """A snippet marked ``cluster`` (not run) names a scheduler address or GPU workers."""
    marked = [(p.name, line, code) for p in PAGES for line, mark, code in snippets(p) if mark == "cluster"]
    assert marked, "no cluster snippet found (docs/scale_out.md has some)"
    for name, line, code in marked:
        assert CLUSTER_ONLY.search(code), f"{name}:{line} is marked cluster but needs no scheduler address or GPU"


@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)], ids=lambda p: p.name)
def test_page_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": f"snippets_of_{page.stem}"}
    ran = 0
    for line, mark, code in snippets(page):
        where = f"{page.name}:{line}"
        context = contextlib.nullcontext()
        expected = None
        if mark == "cluster" or (mark == "gpu" and not geomops.cuda_available()):
            continue
        if mark == "torch" or "import torch" in code:
            pytest.importorskip("torch")
        if mark == "cuda" and not geomops.cuda_available():
            context = _backend.cuda_emulation()
        if mark.startswith("raises "):
            expected = mark.split()[1]
        compiled = compile(code, where, "exec")
        with context:
            if expected is None:
                exec(compiled, namespace)
            else:
                with pytest.raises(Exception) as info:
                    exec(compiled, namespace)
                assert type(info.value).__name__ == expected, f"{where}: {info.value!r}"
        ran += 1
    assert ran or not snippets(page)
