"""Sphinx configuration of the geomops documentation.

Build (from the repository root, after ``python -m pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The Markdown pages are read by myst-parser, the API reference is generated from the docstrings
(autodoc + napoleon, NumPy style) and the figures are drawn at build time by the scripts in
``docs/figures/`` (matplotlib's plot directive).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A development checkout built in place (``python setup.py build_ext --inplace``) documents its own
# sources; an installed geomops is used otherwise.
if any(p.suffix in (".so", ".pyd") for p in (HERE.parent / "pyx" / "geomops").glob("_cpu.*")):  # built, not .pyx
    sys.path.insert(0, str(HERE.parent / "pyx"))
os.environ.setdefault("MPLBACKEND", "Agg")

import geomops  # noqa: E402

project = "geomops"
author = "geomops developers"
copyright = "geomops developers"
release = version = geomops.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "matplotlib.sphinxext.plot_directive",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures/*.py", "README.md"]
html_theme = "alabaster"
html_title = f"geomops {release}"
html_theme_options = {"description": "continuous convolutions, neighbor search and pose gradients for NumPy"}

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.header"]

autodoc_member_order = "bysource"
autodoc_typehints = "none"          # the docstrings say shapes and dtypes; signatures stay readable
autodoc_default_options = {"members": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True     # "Attributes" sections are field lists, not duplicate member entries
napoleon_use_param = False   # types as plain text: words such as "shape" are not cross-references

plot_basedir = str(HERE / "figures")
plot_working_directory = str(HERE / "figures")
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

# ---- the API reference ------------------------------------------------------------------------
# One line per module. A module that does not import here (an optional dependency is missing, or
# it has not landed yet) is left out of the reference instead of failing the build.
API_MODULES = [
    # (module, title, members: None = the module's __all__, or the names to document)
    ("geomops", "geomops (top level)",
     ["DeviceArray", "to_device", "cuda_available", "show_config", "get_num_threads", "set_num_threads"]),
    ("geomops.ops", "geomops.ops: continuous convolutions and neighbor search", None),
    ("geomops.layers", "geomops.layers: layers without a framework", None),
    ("geomops.pose", "geomops.pose: rendering and pose gradients", None),
    ("geomops.pose.plotting", "geomops.pose.plotting: pictures of pose gradients", None),
    ("geomops.torch.ops", "geomops.torch.ops: the open3d.ml.torch ops", None),
    ("geomops.torch.layers", "geomops.torch.layers: the open3d.ml.torch layers", None),
    ("geomops.torch.return_types", "geomops.torch.return_types", None),
    ("geomops.dask", "geomops.dask: scale-out", None),
    ("geomops.plot", "geomops.plot: plotting helpers", None),
]


def _api_page(module, title, members):
    lines = [title, "=" * len(title), "", f".. automodule:: {module}", "   :no-members:", ""]
    mod = importlib.import_module(module)
    names = members if members is not None else list(getattr(mod, "__all__", []))
    for name in names:
        obj = getattr(mod, name)
        if isinstance(obj, type):
            lines += [f".. autoclass:: {module}.{name}", "   :members:"]
            fields = getattr(obj, "_fields", ())    # a named tuple: its docstring describes the fields
            if fields:
                lines += ["   :exclude-members: " + ", ".join(fields)]
            lines += [""]
        elif callable(obj):
            lines += [f".. autofunction:: {module}.{name}", ""]
        else:
            lines += [f".. autodata:: {module}.{name}", "   :no-value:", ""]
    return "\n".join(lines)


def _write_api(app):
    """Write docs/api/<module>.rst for every module of API_MODULES that imports, and their index."""
    out = HERE / "api"
    out.mkdir(exist_ok=True)
    pages = []
    for module, title, members in API_MODULES:
        try:
            text = _api_page(module, title, members)
        except ImportError as exc:
            print(f"geomops docs: {module} is left out of the API reference ({exc})")
            continue
        pages.append(module)
        path = out / f"{module}.rst"
        if not path.exists() or path.read_text() != text:   # unchanged pages are not rebuilt
            path.write_text(text)
    for stale in out.glob("*.rst"):
        if stale.stem not in pages and stale.name != "index.rst":
            stale.unlink()
    index = "\n".join(["API reference", "=============", "",
                       "Generated from the docstrings (NumPy style): every public name, with the shapes and",
                       "dtypes its arguments take.", "",
                       ".. toctree::", "   :maxdepth: 1", ""] + [f"   {m}" for m in pages]) + "\n"
    path = out / "index.rst"
    if not path.exists() or path.read_text() != index:
        path.write_text(index)


def setup(app):
    app.connect("builder-inited", _write_api)
