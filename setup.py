"""Build script for geomops.

Three extension modules:

* ``geomops._cpu``      -- Cython bindings + the OpenMP C kernels in ``cpu/`` (always built).
* ``geomops._cuda``     -- Cython bindings + nvcc objects from ``cuda/*.cu`` (optional).
* ``geomops._cuda_emu`` -- the same bindings and ``cuda/*.cu`` compiled by the host C++ compiler
  through ``cuda/emu/cuda_emu.h`` (always built, no nvcc needed): the CUDA kernels' logic runs
  on the CPU so that tests exercise it on machines without a GPU.

Environment switches:

* ``GEOMOPS_CUDA=AUTO|ON|OFF`` (default AUTO): AUTO builds ``_cuda`` when a working nvcc
  is found, ON fails when it is not, OFF never builds it.
* ``GEOMOPS_CUDA_ARCHS`` (default ``80;90+PTX``): TORCH_CUDA_ARCH_LIST-style arch list.
* ``CUDACXX`` / ``CUDA_HOME`` / ``CUDA_PATH``: where to look for nvcc.
* ``GEOMOPS_SANITIZE`` (e.g. ``address,undefined``): compile the C kernels of the host modules
  (``cpu/*.c`` into ``_cpu``, ``cuda/*.cu`` into ``_cuda_emu``) with these ``-fsanitize=`` checks
  and debug info, at their usual optimisation (so results stay those of the normal build),
  undefined behaviour fatal, modules unstripped; the Cython-generated binding code is not
  instrumented (it is large and slow to compile so) and the nvcc module is not built. For
  ``.ci/sanitize.sh`` (use a separate ``--build-temp``: objects are reused by modification time).
"""

import glob
import os
import shutil
import subprocess
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)  # relative source paths below

HEADERS = sorted(glob.glob("include/geomops/*.h")) + sorted(glob.glob("cpu/*.h"))
CUDA_HEADERS = sorted(glob.glob("cuda/*.cuh")) + sorted(glob.glob("cuda/emu/*.h"))
CPU_SOURCES = sorted(glob.glob("cpu/*.c"))
CUDA_SOURCES = sorted(glob.glob("cuda/*.cu"))
EMU_CXXFLAGS = ["-x", "c++", "-std=c++17", "-O2", "-g0", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off",
                "-DGM_CUDA_EMULATE", "-Iinclude", "-Icuda", "-Wall", "-Wno-unused-function",
                "-Wno-unknown-pragmas"]
COMMON_CFLAGS = ["-O3", "-g0", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wno-unused-function",
                 "-Wno-unknown-pragmas"]
COMMON_LDFLAGS = ["-s"]
SANITIZE = os.environ.get("GEOMOPS_SANITIZE", "").strip()
SANITIZE_FLAGS = []
if SANITIZE:
    SANITIZE_FLAGS = [f"-fsanitize={SANITIZE}", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
    EMU_CXXFLAGS += SANITIZE_FLAGS
    COMMON_LDFLAGS = [f"-fsanitize={SANITIZE}"]


def _log(msg):
    print(f"[geomops setup] {msg}", file=sys.stderr)


def _cuda_mode():
    mode = os.environ.get("GEOMOPS_CUDA", "AUTO").strip().upper()
    aliases = {"1": "ON", "TRUE": "ON", "YES": "ON", "0": "OFF", "FALSE": "OFF", "NO": "OFF", "": "AUTO"}
    mode = aliases.get(mode, mode)
    if mode not in ("AUTO", "ON", "OFF"):
        sys.exit(f"GEOMOPS_CUDA must be AUTO, ON or OFF, got {os.environ['GEOMOPS_CUDA']!r}")
    return mode


def _find_nvcc():
    """Return a working nvcc path or None (checked with ``nvcc --version``)."""
    candidates = [os.environ.get("CUDACXX"), shutil.which("nvcc")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "nvcc"))
    candidates.append("/usr/local/cuda/bin/nvcc")
    for cand in candidates:
        if not cand or not os.path.exists(cand):
            continue
        try:
            subprocess.run([cand, "--version"], check=True, capture_output=True, timeout=60)
            return cand
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def _cuda_home(nvcc):
    """Ask nvcc where its toolkit lives (``which nvcc`` may be a wrapper script)."""
    out = subprocess.run([nvcc, "-dryrun", "-x", "cu", "-c", "/dev/null", "-o", "/dev/null"],
                         capture_output=True, text=True, timeout=60)
    for line in (out.stdout + out.stderr).splitlines():
        line = line.lstrip("#$ ").strip()
        if line.startswith("TOP="):
            return line[4:].strip()
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def _gencode_flags():
    archs = os.environ.get("GEOMOPS_CUDA_ARCHS", "80;90+PTX")
    flags = []
    for item in archs.replace(",", ";").replace(" ", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        ptx = item.endswith("+PTX")
        num = item[:-4] if ptx else item
        num = num.replace(".", "")
        if not num.isdigit():
            sys.exit(f"GEOMOPS_CUDA_ARCHS: cannot parse {item!r} (expected e.g. '80;90+PTX')")
        flags += ["-gencode", f"arch=compute_{num},code=sm_{num}"]
        if ptx:
            flags += ["-gencode", f"arch=compute_{num},code=compute_{num}"]
    return flags


# cythonize() drops custom Extension attributes, so the .cu list is keyed by module name.
CUDA_EXTENSION_SOURCES = {}
# GEOMOPS_SANITIZE: the module's C kernels, compiled apart from its binding code (with the sanitizers).
SANITIZED_SOURCES = {}


class BuildExt(build_ext):
    """build_ext that compiles ``.cu`` files with nvcc for the CUDA extension."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self):
        super().run()
        self._remove_stale_modules()

    def _remove_stale_modules(self):
        """Delete compiled modules of this package that this build did not make.

        GEOMOPS_CUDA=OFF must be honoured in a tree built before with CUDA: setuptools would
        otherwise ship the old ``_cuda`` from ``build/`` in the wheel (and an in-place build would
        keep importing it)."""
        built = {ext.name.rsplit(".", 1)[-1] for ext in self.extensions}
        suffixes = (".so", ".pyd")
        dirs = [os.path.join(self.build_lib, "geomops")]
        if self.inplace:
            dirs.append(os.path.join(HERE, "pyx", "geomops"))
        for d in dirs:
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                stem = name.split(".", 1)[0]
                if name.endswith(suffixes) and stem.startswith("_") and stem not in built:
                    _log(f"removing stale module {os.path.join(d, name)} (not part of this build)")
                    os.remove(os.path.join(d, name))

    def build_extension(self, ext):
        cu_files = CUDA_EXTENSION_SOURCES.get(ext.name)
        if cu_files:
            emulate = ext.name == "geomops._cuda_emu"
            objdir = os.path.join(self.build_temp, "cuda_emu_objects" if emulate else "cuda_objects")
            os.makedirs(objdir, exist_ok=True)
            objects = []
            for cu in cu_files:
                obj = os.path.join(objdir, os.path.basename(cu) + ".o")
                newest_input = max(os.path.getmtime(p) for p in [cu] + HEADERS + CUDA_HEADERS)
                if not os.path.exists(obj) or os.path.getmtime(obj) < newest_input:
                    if emulate:
                        cmd = [self._cxx(), *EMU_CXXFLAGS, "-c", cu, "-o", obj]
                    else:
                        nvcc = CUDA_EXTENSION_SOURCES["__nvcc__"]
                        cmd = [nvcc, "-O3", "-std=c++17", "-Xcompiler", "-fPIC,-fvisibility=hidden",
                               "-Iinclude", "-Icuda", *_gencode_flags(), "-c", cu, "-o", obj]
                    _log(" ".join(cmd))
                    subprocess.run(cmd, check=True)
                objects.append(obj)
            ext.extra_objects = list(ext.extra_objects or []) + objects
        sanitized = SANITIZED_SOURCES.get(ext.name)
        if sanitized:
            objects = self.compiler.compile(sanitized, output_dir=os.path.join(self.build_temp, "sanitized"),
                                            include_dirs=ext.include_dirs,
                                            extra_postargs=ext.extra_compile_args + SANITIZE_FLAGS)
            ext.extra_objects = list(ext.extra_objects or []) + objects
        super().build_extension(ext)

    def _cxx(self):
        """The host C++ compiler matching the C compiler setuptools uses (g++ for gcc)."""
        cc = self.compiler.compiler_so[0]
        base = os.path.basename(cc)
        for c, cxx in (("gcc", "g++"), ("clang", "clang++"), ("cc", "c++")):
            if base.endswith(c):
                cand = os.path.join(os.path.dirname(cc), base[: -len(c)] + cxx)
                return cand if os.path.dirname(cc) else (shutil.which(base[: -len(c)] + cxx) or cxx)
        return os.environ.get("CXX", "c++")


def _extensions():
    if SANITIZE:
        SANITIZED_SOURCES["geomops._cpu"] = CPU_SOURCES
    cpu = Extension(
        "geomops._cpu",
        sources=["pyx/geomops/_cpu.pyx"] + ([] if SANITIZE else CPU_SOURCES),
        include_dirs=["include", "cpu"],
        depends=HEADERS + sorted(glob.glob("pyx/geomops/*.pxi")) + sorted(glob.glob("pyx/geomops/*.pxd")),
        extra_compile_args=COMMON_CFLAGS + ["-fopenmp"],
        extra_link_args=COMMON_LDFLAGS + ["-fopenmp"],
        libraries=["m"],
    )
    CUDA_EXTENSION_SOURCES["geomops._cuda_emu"] = CUDA_SOURCES
    emu = Extension(
        "geomops._cuda_emu",
        sources=["pyx/geomops/_cuda_emu.pyx"],
        include_dirs=["include"],
        depends=HEADERS + CUDA_HEADERS + CUDA_SOURCES + sorted(glob.glob("pyx/geomops/_cuda*.pxi")),
        extra_compile_args=COMMON_CFLAGS,
        extra_link_args=COMMON_LDFLAGS,
        libraries=["stdc++", "m"],
    )
    exts = [cpu, emu]

    mode = _cuda_mode()
    if SANITIZE and mode != "OFF":
        _log(f"GEOMOPS_SANITIZE={SANITIZE}: building the host modules only")
        mode = "OFF"
    if mode != "OFF":
        nvcc = _find_nvcc()
        if nvcc is None:
            if mode == "ON":
                sys.exit("GEOMOPS_CUDA=ON but no working nvcc was found "
                         "(looked at $CUDACXX, PATH, $CUDA_HOME, $CUDA_PATH, /usr/local/cuda)")
            _log("nvcc not found: building the CPU module only")
        else:
            home = _cuda_home(nvcc)
            libdir = next((d for d in (os.path.join(home, "lib64"), os.path.join(home, "lib"))
                           if os.path.isdir(d)), os.path.join(home, "lib64"))
            _log(f"building the CUDA module with {nvcc} (toolkit {home})")
            CUDA_EXTENSION_SOURCES["__nvcc__"] = nvcc
            CUDA_EXTENSION_SOURCES["geomops._cuda"] = CUDA_SOURCES
            exts.append(Extension(
                "geomops._cuda",
                sources=["pyx/geomops/_cuda.pyx"],
                include_dirs=["include"],
                depends=HEADERS + CUDA_HEADERS + CUDA_SOURCES + sorted(glob.glob("pyx/geomops/_cuda*.pxi")),
                extra_compile_args=COMMON_CFLAGS,
                extra_link_args=COMMON_LDFLAGS,
                library_dirs=[libdir],
                libraries=["cudart_static", "stdc++", "rt", "pthread", "dl"],
            ))
    else:
        _log("GEOMOPS_CUDA=OFF: building the CPU module only")
    return cythonize(exts, language_level=3, include_path=["pyx/geomops", "include", "cpu"],
                     compiler_directives={"boundscheck": False, "wraparound": False,
                                          "initializedcheck": False, "cdivision": True,
                                          "embedsignature": True})


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
