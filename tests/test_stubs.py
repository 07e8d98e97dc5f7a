"""The .pyi stubs of the compiled modules list exactly what the modules define."""

import ast
import os

import pytest

import geomops
from geomops import _config, _cpu


def _stub_names(module_name):
    path = os.path.join(os.path.dirname(geomops.__file__), module_name + ".pyi")
    tree = ast.parse(open(path).read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    names.discard("Array")
    return names


def _public(module):
    return {n for n in dir(module) if not n.startswith("_")}


def test_cpu_stub_matches_module():
    assert _stub_names("_cpu") == _public(_cpu)


@pytest.mark.skipif(_config._cuda is None, reason="CUDA module not built")
def test_cuda_stub_matches_module():
    assert _stub_names("_cuda") == _public(_config._cuda)


def test_cuda_emulator_has_the_cuda_interface():
    from geomops import _cuda_emu
    assert _stub_names("_cuda") == _public(_cuda_emu)
