"""Minimal PLY (ASCII, binary little/big endian) and OBJ readers (NumPy only).

Used by :meth:`geomops.pose.Mesh.load`. Only geometry, vertex colours and vertex normals are
read; polygons are triangulated as fans ``(v0, vi, vi+1)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, BinaryIO, TypedDict, Union

import numpy as np
from numpy.typing import NDArray

__all__ = ["read_mesh", "read_ply", "read_obj"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}

# A PLY property: ``(name, dtype code)`` or ``(name, "list", count dtype code, item dtype code)``.
_PlyProperty = tuple[str, ...]
# One column of a PLY element: an array, or the rows of a list property of varying length.
_PlyColumn = Union[NDArray[Any], list[list[int]]]


class _PlyElement(TypedDict):
    name: str
    count: int
    props: list[_PlyProperty]


def read_mesh(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    """Dispatch on the file extension (``.ply`` or ``.obj``); returns a dict of arrays."""
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext == ".ply":
        return read_ply(p)
    if ext == ".obj":
        return read_obj(p)
    raise ValueError(f"path: unsupported mesh format {ext!r} (expected .ply or .obj)")


def _fan(polys: Sequence[Sequence[int]]) -> NDArray[np.int64]:
    """Triangulate a list of index lists with fans; polygons with < 3 vertices are dropped."""
    tris = []
    for poly in polys:
        for i in range(1, len(poly) - 1):
            tris.append((poly[0], poly[i], poly[i + 1]))
    return np.array(tris, dtype=np.int64).reshape(-1, 3)


# ----------------------------------------------------------------------------------------------
def _parse_ply_header(f: BinaryIO) -> tuple[str, list[_PlyElement]]:
    first = f.readline().strip()
    if first != b"ply":
        raise ValueError("path: not a PLY file (missing 'ply' magic)")
    fmt = None
    elements: list[_PlyElement] = []
    while True:
        line = f.readline()
        if not line:
            raise ValueError("path: PLY header has no end_header")
        words = line.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append({"name": words[1], "count": int(words[2]), "props": []})
        elif words[0] == "property":
            if not elements:
                raise ValueError("path: PLY property before any element")
            if words[1] == "list":
                elements[-1]["props"].append((words[4], "list", _ply_type(words[2]), _ply_type(words[3])))
            else:
                elements[-1]["props"].append((words[2], _ply_type(words[1])))
        else:
            raise ValueError(f"path: unexpected PLY header line {line!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"path: unsupported PLY format {fmt!r}")
    return fmt, elements


def _ply_type(name: str) -> str:
    try:
        return _PLY_TYPES[name]
    except KeyError:
        raise ValueError(f"path: unknown PLY property type {name!r}") from None


def read_ply(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    """Read a PLY file: ``{'vertices', 'faces', 'colors' (optional), 'normals' (optional)}``."""
    with open(path, "rb") as f:
        fmt, elements = _parse_ply_header(f)
        body = f.read()
    data: dict[str, dict[str, _PlyColumn]] = {}
    if fmt == "ascii":
        tokens = body.split()
        pos = 0
        for el in elements:
            data[el["name"]], pos = _ply_ascii_element(el, tokens, pos)
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        pos = 0
        for el in elements:
            data[el["name"]], pos = _ply_binary_element(el, body, pos, order)
    if "vertex" not in data:
        raise ValueError("path: PLY file has no vertex element")
    vert = data["vertex"]
    for axis in "xyz":
        if axis not in vert:
            raise ValueError(f"path: PLY vertex element has no '{axis}' property")
    out: dict[str, NDArray[Any]] = {"vertices": np.stack([vert["x"], vert["y"], vert["z"]], axis=1).astype(np.float64)}
    polys = None
    face = data.get("face", {})
    for key in ("vertex_indices", "vertex_index"):
        if key in face:
            polys = face[key]
            break
    if polys is None:
        out["faces"] = np.zeros((0, 3), np.int64)
    elif isinstance(polys, np.ndarray):
        out["faces"] = polys.astype(np.int64).reshape(-1, 3)
    else:
        out["faces"] = _fan(polys)
    if all(c in vert for c in ("red", "green", "blue")):
        rgb = np.stack([vert["red"], vert["green"], vert["blue"]], axis=1)
        out["colors"] = rgb.astype(np.uint8) if rgb.dtype == np.uint8 else rgb.astype(np.float64)
    if all(c in vert for c in ("nx", "ny", "nz")):
        out["normals"] = np.stack([vert["nx"], vert["ny"], vert["nz"]], axis=1).astype(np.float64)
    return out


def _ply_ascii_element(el: _PlyElement, tokens: list[bytes], pos: int) -> tuple[dict[str, _PlyColumn], int]:
    n, props = el["count"], el["props"]
    if not any(p[1] == "list" for p in props):
        k = len(props)
        chunk = tokens[pos:pos + n * k]
        if len(chunk) != n * k:
            raise ValueError(f"path: PLY element {el['name']!r} is truncated")
        table = np.array(chunk, dtype=np.float64).reshape(n, k)
        return {p[0]: table[:, i].astype(p[1]) for i, p in enumerate(props)}, pos + n * k
    # Fast path: a single list property with 3 items on every row.
    if len(props) == 1:
        chunk = tokens[pos:pos + n * 4]
        if len(chunk) == n * 4:
            table = np.array(chunk, dtype=np.int64).reshape(n, 4)
            if np.all(table[:, 0] == 3):
                return {props[0][0]: table[:, 1:]}, pos + n * 4
    cols: dict[str, list[Any]] = {p[0]: [] for p in props}  # list rows (list of int) or scalars
    try:
        for _ in range(n):
            for p in props:
                if p[1] == "list":
                    cnt = int(tokens[pos])
                    cols[p[0]].append([int(t) for t in tokens[pos + 1:pos + 1 + cnt]])
                    pos += 1 + cnt
                else:
                    cols[p[0]].append(float(tokens[pos]))
                    pos += 1
    except (IndexError, ValueError):
        raise ValueError(f"path: PLY element {el['name']!r} is truncated or malformed") from None
    return {k: (v if any(p[0] == k and p[1] == "list" for p in props) else np.array(v))
            for k, v in cols.items()}, pos


def _ply_binary_element(el: _PlyElement, body: bytes, pos: int, order: str) -> tuple[dict[str, _PlyColumn], int]:
    n, props = el["count"], el["props"]
    if not any(p[1] == "list" for p in props):
        dt = np.dtype([(p[0], order + p[1]) for p in props])
        end = pos + n * dt.itemsize
        if end > len(body):
            raise ValueError(f"path: PLY element {el['name']!r} is truncated")
        arr = np.frombuffer(body, dtype=dt, count=n, offset=pos)
        return {p[0]: arr[p[0]].copy() for p in props}, end
    if len(props) == 1:  # fast path: every row is a 3-item list
        _, _, ct, it = props[0]
        dt = np.dtype([("n", order + ct), ("i", order + it, (3,))])
        if pos + n * dt.itemsize <= len(body):
            arr = np.frombuffer(body, dtype=dt, count=n, offset=pos)
            if np.all(arr["n"] == 3):
                return {props[0][0]: arr["i"].astype(np.int64)}, pos + n * dt.itemsize
    cols: dict[str, list[Any]] = {p[0]: [] for p in props}  # list rows (list of int) or scalars
    try:
        for _ in range(n):
            for p in props:
                if p[1] == "list":
                    ct = np.dtype(order + p[2])
                    cnt = int(np.frombuffer(body, ct, 1, pos)[0])
                    pos += ct.itemsize
                    it = np.dtype(order + p[3])
                    cols[p[0]].append(np.frombuffer(body, it, cnt, pos).astype(np.int64).tolist())
                    pos += cnt * it.itemsize
                else:
                    t = np.dtype(order + p[1])
                    cols[p[0]].append(np.frombuffer(body, t, 1, pos)[0])
                    pos += t.itemsize
    except ValueError:
        raise ValueError(f"path: PLY element {el['name']!r} is truncated") from None
    return {k: (v if any(p[0] == k and p[1] == "list" for p in props) else np.array(v))
            for k, v in cols.items()}, pos


# ----------------------------------------------------------------------------------------------
def read_obj(path: str | os.PathLike[str]) -> dict[str, NDArray[Any]]:
    """Read a Wavefront OBJ: ``v`` (optionally ``v x y z r g b``) and ``f`` records only."""
    verts, cols, polys = [], [], []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue
            try:
                if words[0] == "v":
                    verts.append([float(w) for w in words[1:4]])
                    if len(verts[-1]) != 3:
                        raise ValueError
                    cols.append([float(w) for w in words[4:7]] if len(words) >= 7 else None)
                elif words[0] == "f":
                    poly = []
                    for w in words[1:]:
                        i = int(w.split("/")[0])
                        poly.append(i - 1 if i > 0 else len(verts) + i)
                    polys.append(poly)
            except ValueError:
                raise ValueError(f"path: malformed OBJ line {lineno}: {line.strip()!r}") from None
    out = {"vertices": np.array(verts, dtype=np.float64).reshape(-1, 3), "faces": _fan(polys)}
    if verts and all(c is not None for c in cols):
        out["colors"] = np.array(cols, dtype=np.float64)
    return out
