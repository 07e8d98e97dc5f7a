"""Per-worker settings: the OpenMP threads of one task, and the GPU of a worker."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, SupportsIndex, SupportsInt, cast

import dask
from dask.system import CPU_COUNT
from distributed import WorkerPlugin

from .. import _backend
from .._config import get_num_threads, resolve_num_threads

if TYPE_CHECKING:
    from distributed import Client, Worker

PLUGIN_NAME = "geomops"
DEVICE_ENV = "GEOMOPS_DASK_DEVICE"

_SETTINGS: dict[str, WorkerSettings] = {}  # worker address -> WorkerSettings, in the worker's process (set by the plugin)


class WorkerSettings(NamedTuple):
    """What :class:`GeomopsWorkerPlugin` chose for one worker.

    Attributes
    ----------
    threads : int
        OpenMP threads of each geomops task on this worker.
    device : str or None
        ``"cuda:N"``: the worker's GPU (tasks with ``device="worker"`` run there); None: no GPU.
    reason : str
        How both were chosen, in words.
    """
    threads: int
    device: Optional[str]
    reason: str


def split_threads(cores: SupportsInt, concurrent_tasks: SupportsInt) -> int:
    """OpenMP threads per task when ``concurrent_tasks`` tasks share ``cores`` cores:
    ``max(1, cores // concurrent_tasks)``, so tasks x threads never exceed the cores (unless
    there are more tasks than cores: then each task gets one thread)."""
    return max(1, int(cores) // max(1, int(concurrent_tasks)))


def _cuda_devices() -> int:
    """CUDA devices geomops can use in this process (the emulator counts as one)."""
    try:
        module = _backend.cuda_module()
    except RuntimeError:
        return 0
    if getattr(module, "EMULATED", False):
        return 1
    from .._config import cuda_device_count
    return cuda_device_count()


def _check_device(device: str, what: str) -> str:
    kind, ordinal = _backend.parse_device(device)
    if kind != "cuda":
        raise ValueError(f"{what} must be 'cuda' or 'cuda:N', got {device!r}")
    return f"cuda:{ordinal}"


def pick_device(name: object, address: str, gpus: float, gpu_workers_on_host: Iterable[str], visible_devices: int,
                explicit: Optional[str] = None) -> tuple[Optional[str], str]:
    """The GPU of a worker, and why: ``(device or None, reason)``.

    Parameters
    ----------
    name : str or int
        The worker's name (``dask worker --name``; LocalCluster names its workers 0, 1, ...;
        the nanny keeps the name when it restarts a worker).
    address : str
        The worker's address.
    gpus : float
        The worker's ``GPU`` resource (``resources={"GPU": 1}``, ``dask worker --resources
        GPU=1``); below 1: no GPU.
    gpu_workers_on_host : collection of str
        The addresses of the workers on this worker's host that have a GPU resource.
    visible_devices : int
        CUDA devices this worker's process sees (1 when ``CUDA_VISIBLE_DEVICES`` names one).
    explicit : str or None
        A device given for this worker (``devices=`` of the plugin, or the worker's
        ``GEOMOPS_DASK_DEVICE`` environment variable): used as it is.

    Rules, in order: an explicit device; no GPU resource -> None; no CUDA device -> None; one
    visible device -> ``cuda:0``; a name ending in a number k (``"3"``, ``"gpu-3"``; not an
    address) -> ``cuda:(k mod visible)``; else the worker's rank among the GPU workers of its
    host (by address) mod visible.
    """
    if explicit is not None:
        return _check_device(explicit, "the explicit device"), f"given explicitly ({explicit!r})"
    if gpus < 1:
        return None, "the worker has no GPU resource"
    if visible_devices < 1:
        return None, "the worker has a GPU resource, but geomops finds no usable CUDA device in its process"
    if visible_devices == 1:
        return "cuda:0", "the only CUDA device the worker sees"
    text = str(name)
    number = None if "://" in text or text == address else re.search(r"(\d+)$", text)
    if number is not None:
        k = int(number.group(1))
        return f"cuda:{k % visible_devices}", f"the number {k} ending the worker's name, mod {visible_devices} devices"
    rank = sorted(set(gpu_workers_on_host) | {address}).index(address)
    return f"cuda:{rank % visible_devices}", f"rank {rank} among the GPU workers of its host, mod {visible_devices}"


class GeomopsWorkerPlugin(WorkerPlugin):
    """Chooses each worker's OpenMP threads per task and its GPU (see :func:`configure`).

    At worker start (and again on every worker the nanny restarts) it asks the scheduler for
    the workers on the same host and sets

    * threads per task = ``threads_per_task``, or ``split_threads(cores, sum of nthreads of the
      workers on this host)`` with ``cores`` the CPUs this process may use
      (:data:`dask.system.CPU_COUNT`: affinity and cgroup limits), so that the concurrent tasks
      of all workers on the host use each core once (:func:`task_threads` gives it to a task;
      the process-wide :func:`geomops.set_num_threads` is left alone, since a worker may share
      its process with the client);
    * the worker's GPU by :func:`pick_device`.

    Parameters
    ----------
    threads_per_task : int or None
        Force this many OpenMP threads per task.
    devices : mapping of worker name -> "cuda:N", or None
        Explicit GPUs by worker name (names compared as strings).
    """

    name = PLUGIN_NAME

    def __init__(self, threads_per_task: Optional[SupportsIndex] = None,
                 devices: Optional[Mapping[Any, str]] = None) -> None:
        self.threads_per_task = None if threads_per_task is None else resolve_num_threads(threads_per_task)
        self.devices = {str(k): _check_device(v, f"devices[{k!r}]") for k, v in dict(devices or {}).items()}

    async def setup(self, worker: Worker) -> None:
        info = await worker.scheduler.identity()
        workers = dict(info.get("workers", {}))
        me = workers.get(worker.address, {})
        host = me.get("host", worker.address)
        resources = dict(worker.state.total_resources)
        workers[worker.address] = dict(me, host=host, nthreads=worker.state.nthreads, resources=resources)
        on_host = {a: w for a, w in workers.items() if w.get("host") == host}
        host_tasks = sum(int(w.get("nthreads", 0)) for w in on_host.values())
        threads = self.threads_per_task or split_threads(CPU_COUNT, host_tasks)
        why = ("threads_per_task given" if self.threads_per_task else
               f"{CPU_COUNT} cores / {host_tasks} concurrent tasks of the {len(on_host)} worker(s) on {host}")
        gpu_workers = [a for a, w in on_host.items() if (w.get("resources") or {}).get("GPU", 0) >= 1]
        explicit = self.devices.get(str(worker.name), os.environ.get(DEVICE_ENV) or None)
        device, how = pick_device(worker.name, worker.address, resources.get("GPU", 0), gpu_workers,
                                  _cuda_devices(), explicit)
        _SETTINGS[worker.address] = WorkerSettings(threads, device, f"threads: {why}; device: {how}")

    def teardown(self, worker: Worker) -> None:
        _SETTINGS.pop(worker.address, None)


def configure(client: Optional[Client] = None, *, threads_per_task: Optional[SupportsIndex] = None,
              devices: Optional[Mapping[Any, str]] = None) -> dict[str, Optional[WorkerSettings]]:
    """Register :class:`GeomopsWorkerPlugin` on every worker of a cluster (current and future
    ones) and return what each worker chose.

    Parameters
    ----------
    client : distributed.Client or None
        None: the current default client (:func:`distributed.get_client`).
    threads_per_task, devices
        See :class:`GeomopsWorkerPlugin`.

    Returns
    -------
    dict
        Worker address -> :class:`WorkerSettings`.
    """
    if client is None:
        from distributed import get_client
        client = get_client()
    client.register_plugin(GeomopsWorkerPlugin(threads_per_task, devices))
    return cast("dict[str, Optional[WorkerSettings]]", client.run(_settings_of))  # Client.run is unannotated


def _settings_of(dask_worker: Worker) -> Optional[WorkerSettings]:
    return _SETTINGS.get(dask_worker.address)


def _current_worker() -> Optional[Worker]:
    try:
        from distributed import get_worker
        return get_worker()
    except ValueError:  # not in a worker's task
        return None


def worker_settings() -> Optional[WorkerSettings]:
    """The :class:`WorkerSettings` of the worker running the calling task; None outside a
    distributed worker or before :func:`configure`."""
    worker = _current_worker()
    return None if worker is None else _SETTINGS.get(worker.address)


def task_threads(num_threads: Optional[SupportsIndex] = None) -> int:
    """The OpenMP threads a geomops task should use here.

    ``num_threads`` when given. In a distributed worker: its :class:`WorkerSettings` (after
    :func:`configure`), else ``split_threads(cores, the worker's nthreads)`` (as if it were the
    only worker on its host). Elsewhere: all of :func:`geomops.get_num_threads` in the main
    thread (dask's synchronous scheduler), else that split over dask's thread pool
    (``num_workers`` in dask's config, default one thread per core).
    """
    if num_threads is not None:
        return resolve_num_threads(num_threads)
    worker = _current_worker()
    if worker is not None:
        settings = _SETTINGS.get(worker.address)
        return settings.threads if settings is not None else split_threads(CPU_COUNT, worker.state.nthreads)
    if threading.current_thread() is threading.main_thread():
        return get_num_threads()
    return split_threads(get_num_threads(), dask.config.get("num_workers", None) or CPU_COUNT)


def task_device(device: Optional[str] = None) -> Optional[str]:
    """The ``device=`` a geomops task passes to the ops.

    ``device`` as given (None, "cpu", "cuda", "cuda:N"), except ``"worker"``: the GPU that
    :func:`configure` chose for the worker running the task. Raises RuntimeError, saying why,
    when that worker has none (no ``GPU`` resource, no CUDA device, not configured) or the task
    runs outside a distributed worker.
    """
    if device != "worker":
        _backend.parse_device(device)
        return device
    worker = _current_worker()
    if worker is None:
        raise RuntimeError("device='worker' runs a task on the GPU of the Dask worker that runs it, but this task "
                           "runs outside a distributed worker; pass device='cuda:N' instead")
    settings = _SETTINGS.get(worker.address)
    if settings is None:
        raise RuntimeError(f"device='worker': worker {worker.name!r} has no geomops settings; call "
                           "geomops.dask.configure(client) before computing")
    if settings.device is None:
        raise RuntimeError(f"device='worker': worker {worker.name!r} has no GPU ({settings.reason}); start GPU "
                           "workers with resources={'GPU': 1} and compute GPU work with resources={'GPU': 1}")
    return settings.device
