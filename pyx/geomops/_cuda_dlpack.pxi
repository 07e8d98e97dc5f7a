# DLPack export and import (structs in _dlpack.pxd), included by _cuda_impl.pxi so that _cuda and
# _cuda_emu each have it. Ownership rules of the DLPack Python spec:
#  - an exported capsule holds one reference to the array's owner, dropped by the managed
#    tensor's deleter; the consumer renames the capsule to "used_dltensor[_versioned]" and calls
#    the deleter when done; a capsule collected unconsumed calls it from its destructor;
#  - an imported capsule is renamed here, and its deleter runs once, when the DLPackImport
#    holding it is collected.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New, PyCapsule_SetName
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

from geomops._dlpack cimport *

import numpy as _np


cdef extern from "Python.h":
    void Py_IncRef(PyObject* o)
    void Py_DecRef(PyObject* o)
    int Py_IsInitialized() nogil
    void PyErr_Fetch(PyObject** t, PyObject** v, PyObject** tb)
    void PyErr_Restore(PyObject* t, PyObject* v, PyObject* tb)


# Managed tensors made by dlpack_export whose deleter has not run yet (for tests).
cdef Py_ssize_t _dlpack_exports_alive = 0

_DL_CODES = {"b": kDLBool, "i": kDLInt, "u": kDLUInt, "f": kDLFloat, "c": kDLComplex}
_DL_KINDS = {kDLBool: "b", kDLInt: "i", kDLUInt: "u", kDLFloat: "f", kDLComplex: "c"}
_DL_CODE_NAMES = {kDLInt: "int", kDLUInt: "uint", kDLFloat: "float", kDLBfloat: "bfloat",
                  kDLComplex: "complex", kDLBool: "bool"}


cdef void _release_owner(void* owner) noexcept nogil:
    global _dlpack_exports_alive
    # after interpreter shutdown the reference cannot be dropped (nor needs to be)
    if owner != NULL and Py_IsInitialized():
        with gil:
            _dlpack_exports_alive -= 1
            Py_DecRef(<PyObject*>owner)


cdef void _delete_legacy(DLManagedTensor* t) noexcept nogil:
    _release_owner(t.manager_ctx)
    free(t)


cdef void _delete_versioned(DLManagedTensorVersioned* t) noexcept nogil:
    _release_owner(t.manager_ctx)
    free(t)


cdef void _capsule_legacy(object capsule) noexcept:
    cdef PyObject *et
    cdef PyObject *ev
    cdef PyObject *tb
    cdef DLManagedTensor* t
    if not PyCapsule_IsValid(capsule, b"dltensor"):
        return  # consumed: the consumer runs the deleter
    PyErr_Fetch(&et, &ev, &tb)
    t = <DLManagedTensor*>PyCapsule_GetPointer(capsule, b"dltensor")
    if t.deleter != NULL:
        t.deleter(t)
    PyErr_Restore(et, ev, tb)


cdef void _capsule_versioned(object capsule) noexcept:
    cdef PyObject *et
    cdef PyObject *ev
    cdef PyObject *tb
    cdef DLManagedTensorVersioned* t
    if not PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        return
    PyErr_Fetch(&et, &ev, &tb)
    t = <DLManagedTensorVersioned*>PyCapsule_GetPointer(capsule, b"dltensor_versioned")
    if t.deleter != NULL:
        t.deleter(t)
    PyErr_Restore(et, ev, tb)


def dlpack_export(owner, uintptr_t ptr, shape, dtype, int device_type, int device_id, bint versioned,
                  bint readonly=False, bint copied=False):
    """A DLPack capsule over the C-contiguous array at ``ptr``.

    Parameters
    ----------
    owner : object
        Keeps the memory alive: the capsule holds a reference to it until the managed tensor's
        deleter runs (called by the consumer, or by the capsule when collected unconsumed).
    ptr, shape, dtype
        The array (a NumPy dtype of kind b, i, u, f or c).
    device_type, device_id : int
        The DLDevice (kDLCUDA = 2, kDLCPU = 1).
    versioned : bool
        A "dltensor_versioned" capsule (DLManagedTensorVersioned, DLPack 1.0) when true, else a
        legacy "dltensor" capsule.
    readonly, copied : bool
        The versioned tensor's READ_ONLY and IS_COPIED flags.
    """
    global _dlpack_exports_alive
    dt = _np.dtype(dtype)
    if dt.kind not in _DL_CODES or not dt.isnative:
        raise BufferError(f"DLPack cannot describe dtype {dt}")
    cdef int ndim = len(shape)
    cdef size_t header = sizeof(DLManagedTensorVersioned) if versioned else sizeof(DLManagedTensor)
    cdef char* block = <char*>malloc(header + 2 * <size_t>ndim * sizeof(int64_t))
    if block == NULL:
        raise MemoryError("geomops: could not allocate a DLPack tensor")
    cdef int64_t* dims = <int64_t*>(block + header)
    cdef int64_t stride = 1
    cdef int d
    for d in range(ndim):
        dims[d] = int(shape[d])
    for d in range(ndim - 1, -1, -1):
        dims[ndim + d] = stride
        stride *= dims[d] if dims[d] > 0 else 1
    cdef DLTensor* t
    cdef DLManagedTensor* legacy = NULL
    cdef DLManagedTensorVersioned* ver = NULL
    if versioned:
        ver = <DLManagedTensorVersioned*>block
        ver.version.major = 1
        ver.version.minor = 0
        ver.manager_ctx = <void*>owner
        ver.deleter = _delete_versioned
        ver.flags = ((DLPACK_FLAG_BITMASK_READ_ONLY if readonly else 0)
                     | (DLPACK_FLAG_BITMASK_IS_COPIED if copied else 0))
        t = &ver.dl_tensor
    else:
        legacy = <DLManagedTensor*>block
        legacy.manager_ctx = <void*>owner
        legacy.deleter = _delete_legacy
        t = &legacy.dl_tensor
    t.data = <void*>ptr
    t.device.device_type = device_type
    t.device.device_id = device_id
    t.ndim = ndim
    t.dtype.code = _DL_CODES[dt.kind]
    t.dtype.bits = 8 * dt.itemsize
    t.dtype.lanes = 1
    t.shape = dims
    t.strides = dims + ndim
    t.byte_offset = 0
    try:
        if versioned:
            capsule = PyCapsule_New(block, b"dltensor_versioned", _capsule_versioned)
        else:
            capsule = PyCapsule_New(block, b"dltensor", _capsule_legacy)
    except BaseException:
        free(block)
        raise
    Py_IncRef(<PyObject*>owner)
    _dlpack_exports_alive += 1
    return capsule


def _dlpack_alive():
    """Managed tensors exported by this module whose deleter has not run yet (for tests)."""
    return _dlpack_exports_alive


cdef class DLPackImport:
    """A consumed DLPack tensor: keeps the producer's memory alive and runs its deleter exactly
    once, when this object is collected."""
    cdef void* managed
    cdef bint versioned

    def __dealloc__(self):
        cdef DLManagedTensor* legacy
        cdef DLManagedTensorVersioned* ver
        if self.managed == NULL:
            return
        if self.versioned:
            ver = <DLManagedTensorVersioned*>self.managed
            self.managed = NULL
            if ver.deleter != NULL:
                ver.deleter(ver)
        else:
            legacy = <DLManagedTensor*>self.managed
            self.managed = NULL
            if legacy.deleter != NULL:
                legacy.deleter(legacy)

    def __reduce__(self):
        raise TypeError("an imported DLPack tensor cannot be pickled")


def dlpack_import(capsule):
    """Consume a DLPack capsule (legacy or versioned).

    Returns ``(holder, info)``: ``holder`` (a :class:`DLPackImport`) owns the tensor until it is
    collected; ``info`` is a dict with ``data`` (address of the first element, byte_offset
    included), ``shape``, ``strides`` (in elements, None for C-contiguous), ``code``, ``bits``,
    ``lanes``, ``dtype_name``, ``device_type``, ``device_id``, ``readonly``, ``copied`` and
    ``versioned``. A capsule of an unsupported DLPack major version is not consumed (BufferError).
    """
    cdef DLTensor* t
    cdef DLManagedTensor* legacy = NULL
    cdef DLManagedTensorVersioned* ver = NULL
    cdef uint64_t flags = 0
    if PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        ver = <DLManagedTensorVersioned*>PyCapsule_GetPointer(capsule, b"dltensor_versioned")
        if ver.version.major != 1:
            raise BufferError(f"DLPack version {ver.version.major}.{ver.version.minor} is not supported "
                              "(geomops reads version 1.x)")
        t = &ver.dl_tensor
        flags = ver.flags
    elif PyCapsule_IsValid(capsule, b"dltensor"):
        legacy = <DLManagedTensor*>PyCapsule_GetPointer(capsule, b"dltensor")
        t = &legacy.dl_tensor
    else:
        raise TypeError("expected an unconsumed DLPack capsule ('dltensor' or 'dltensor_versioned')")
    cdef int d
    shape = tuple(int(t.shape[d]) for d in range(t.ndim))
    strides = None if t.strides == NULL else tuple(int(t.strides[d]) for d in range(t.ndim))
    code = int(t.dtype.code)
    dtype_name = _DL_CODE_NAMES.get(code, "code%d_" % code) + str(int(t.dtype.bits))
    info = {"data": <uintptr_t>t.data + <uintptr_t>t.byte_offset, "shape": shape, "strides": strides,
            "code": code, "bits": int(t.dtype.bits), "lanes": int(t.dtype.lanes),
            "dtype_name": dtype_name,
            "device_type": int(t.device.device_type), "device_id": int(t.device.device_id),
            "readonly": bool(flags & DLPACK_FLAG_BITMASK_READ_ONLY),
            "copied": bool(flags & DLPACK_FLAG_BITMASK_IS_COPIED), "versioned": ver != NULL}
    holder = DLPackImport()
    if ver != NULL:
        holder.managed = <void*>ver
        holder.versioned = True
        PyCapsule_SetName(capsule, b"used_dltensor_versioned")
    else:
        holder.managed = <void*>legacy
        holder.versioned = False
        PyCapsule_SetName(capsule, b"used_dltensor")
    return holder, info


def dlpack_dtype(code, bits, lanes):
    """The NumPy dtype of a DLPack (code, bits, lanes), or None when NumPy has none."""
    if lanes != 1 or code not in _DL_KINDS:
        return None
    if code == kDLBool:
        return _np.dtype(_np.bool_) if bits == 8 else None
    try:
        dt = _np.dtype(f"{_DL_KINDS[code]}{bits // 8}")
    except TypeError:
        return None
    return dt if bits % 8 == 0 and dt.itemsize * 8 == bits else None
