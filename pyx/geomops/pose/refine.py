"""Render-and-compare pose refinement: the normalised (Adam) step and a loop over one scene.

:class:`AdamPoseStep` turns the pose gradients of :func:`backpropagate_gradient_to_poses` into
the step that :func:`apply_pose_delta` takes (``pose @ D(-step)``): each of the six components
is scaled by Adam's running moments, because rotation and translation gradients differ by
orders of magnitude and shrink with the loss, so no single ``lr`` for ``-lr * grad`` suits both.
:func:`refine_scene` runs render, L2 loss to a target image, gradients and that step until an
iteration budget or a loss threshold is reached, for every object of a scene at once.
``examples/pose_refinement.py`` and :func:`geomops.dask.refine_poses` use them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import List, NamedTuple, Optional, Union, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._device import AnyArray, ArrayInput, DeviceArray, to_device
from .._validate import as_array, check_int, check_real
from .diff import GradientMode, apply_pose_delta, backpropagate_gradient_to_poses
from .buffers import RenderResult
from .render import render
from .scene import Scene, SceneObject

__all__ = ["AdamPoseStep", "RefineResult", "refine_scene"]

RefineTarget = Union[ArrayInput, RenderResult]  # an image (H, W, 3|4), or a render whose rgb is the image


class AdamPoseStep:
    """The normalised step of render-and-compare pose refinement (Adam's moments, no weight decay).

    Call it with each iteration's gradient, (6,) for one object or (N, 6) for N; it returns the
    step of the same shape, to be applied as ``apply_pose_delta(pose, -step)``::

        step_t = base * decay**t * m_hat / (sqrt(v_hat) + 1e-12)
        m = 0.9 m + 0.1 g,  v = 0.999 v + 0.001 g^2,  m_hat = m / (1 - 0.9^(t+1)),  v_hat = ...

    with ``base = (rotation_step,) * 3 + (translation_step,) * 3`` (radians, scene units), so
    each component moves by about its base step while its gradient keeps its sign, and by less
    as the sign flips around the optimum. The instance holds the moments: use one per
    refinement (``copy.deepcopy`` a configured one).

    Parameters
    ----------
    rotation_step : float, default 0.01
        Step of alpha, beta, gamma in radians (before the decay).
    translation_step : float, default 0.003
        Step of a, b, c in scene units (metres in the examples).
    decay : float, default 0.985
        The step shrinks by this factor per iteration.
    """

    def __init__(self, rotation_step: float = 0.01, translation_step: float = 0.003, decay: float = 0.985) -> None:
        rot = check_real(rotation_step, "rotation_step", positive=True)
        trans = check_real(translation_step, "translation_step", positive=True)
        self.decay = check_real(decay, "decay", positive=True)
        self.base = np.array([rot] * 3 + [trans] * 3)
        self.iteration = 0
        self.m: Optional[NDArray[np.float64]] = None
        self.v: Optional[NDArray[np.float64]] = None

    def __call__(self, grad: ArrayLike) -> NDArray[np.float64]:
        """The step for gradient ``grad`` ((6,) or (N, 6), any float dtype); advances the moments."""
        g = np.asarray(grad, dtype=np.float64)
        if g.ndim not in (1, 2) or g.shape[-1] != 6:
            raise ValueError(f"grad must have shape (6,) or (N, 6), got shape {g.shape}")
        if self.m is None or self.v is None:  # both set together
            self.m = np.zeros(g.shape)
            self.v = np.zeros(g.shape)
        elif self.m.shape != g.shape:
            raise ValueError(f"grad has shape {g.shape}, but this AdamPoseStep has moments of shape "
                             f"{self.m.shape}; use one AdamPoseStep per refinement")
        it = self.iteration
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mh = self.m / (1 - 0.9 ** (it + 1))
        vh = self.v / (1 - 0.999 ** (it + 1))
        self.iteration = it + 1
        return self.base * (self.decay ** it) * mh / (np.sqrt(vh) + 1e-12)

    def __repr__(self) -> str:
        return (f"AdamPoseStep(rotation_step={self.base[0]!r}, translation_step={self.base[3]!r}, "
                f"decay={self.decay!r}, iteration={self.iteration})")


class RefineResult(NamedTuple):
    """What :func:`refine_scene` returns.

    Attributes
    ----------
    poses : ndarray, float64 (N, 4, 4)
        The refined object-to-world poses, in ``scene.objects`` order.
    losses : list of float
        The loss at each pose visited: ``losses[0]`` at the start, ``losses[-1]`` at ``poses``
        (``iterations + 1`` values).
    iterations : int
        Pose updates made (at most the budget; fewer when ``loss_tol`` was reached).
    """
    poses: np.ndarray
    losses: List[float]
    iterations: int

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def loss(self) -> float:
        """The loss at the returned poses."""
        return self.losses[-1]


def _target_image(target: RefineTarget, shape: Sequence[int]) -> NDArray[np.float64]:
    """The target as float64 (H, W, 3) in [0, 1]: uint8 RGB(A) / 255, float RGB as given, or a
    RenderResult's rgb."""
    rgb = getattr(target, "rgb", None)
    if rgb is not None:
        target = rgb.get() if isinstance(rgb, DeviceArray) else rgb
    t = as_array(target, "target")
    if isinstance(t, DeviceArray):  # the loss is taken on the host
        t = t.get()
    if t.ndim != 3 or t.shape[:2] != tuple(shape) or t.shape[2] not in (3, 4):
        raise ValueError(f"target must have shape ({shape[0]}, {shape[1]}, 3) or ({shape[0]}, {shape[1]}, 4) "
                         f"(the camera's image), got shape {t.shape}")
    if t.dtype == np.uint8:
        return t[..., :3] / 255.0
    if not np.issubdtype(t.dtype, np.floating):
        raise TypeError(f"target must be uint8 or float in [0, 1], got dtype {t.dtype}")
    t = t[..., :3].astype(np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("target must be finite")
    return t


def _working_copy(scene: object) -> Scene:
    """A Scene with its own SceneObjects (same meshes, camera and light): the loop moves their
    poses without touching the caller's scene, and meshes keep their device copies."""
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a geomops.pose.Scene, got {type(scene).__name__}")
    objects = [SceneObject(o.mesh, o.pose, o.instance_index) for o in scene.objects]
    if not objects:
        raise ValueError("scene has no objects to refine")
    return Scene(scene.camera, objects, camera_pose=scene.camera_pose, background=scene.background,
                 light=scene.light)


def _loss_and_grad(scene: Scene, target: NDArray[np.float64], mode: GradientMode, num_threads: Optional[int],
                   device: Optional[str]) -> tuple[float, RenderResult, AnyArray]:
    """Render ``scene``; the L2 loss ``0.5 * sum((rgb / 255 - target)^2)`` and the render and
    dLoss/dImage (3, H, W) float64, the latter on ``device``."""
    buf = render(scene, num_threads=num_threads, buffers="gradient", device=device)
    on_device = buf.device != "cpu"
    rgb = buf.rgb.get() if isinstance(buf.rgb, DeviceArray) else buf.rgb  # on_device
    diff = rgb[..., :3] / 255.0 - target
    loss = 0.5 * float(np.sum(diff * diff))
    g = np.ascontiguousarray(diff.transpose(2, 0, 1))
    if on_device:
        g = to_device(g, buf.device)
    return loss, buf, g


def refine_scene(scene: Scene, target: RefineTarget, iterations: int = 80, *, step: Optional[AdamPoseStep] = None,
                 loss_tol: float = 0.0, mode: GradientMode = "exact", num_threads: Optional[int] = None,
                 device: Optional[str] = None) -> RefineResult:
    """Refine the poses of all objects of ``scene`` so that its render matches ``target``.

    Each iteration renders the scene, takes the L2 loss ``0.5 * sum((rgb/255 - target)^2)``
    and its image gradient, back-propagates it to the objects' poses
    (:func:`backpropagate_gradient_to_poses`) and moves every pose by ``apply_pose_delta(pose,
    -step(grad))``. It stops after ``iterations`` updates or as soon as the loss is at most
    ``loss_tol``. ``scene`` itself is not changed. Deterministic: the same inputs give bitwise
    the same result on the CPU for any ``num_threads``.

    Parameters
    ----------
    scene : Scene
        The start poses; every object needs a mesh.
    target : ndarray (H, W, 3|4) uint8 or float in [0, 1], or a RenderResult
        The observed image (its rgb), the camera's size.
    iterations : int, default 80
        The budget of pose updates (>= 0).
    step : AdamPoseStep or None
        The step rule, used as a template (deep-copied, so it can be reused); None:
        ``AdamPoseStep()`` (the defaults of examples/pose_refinement.py).
    loss_tol : float, default 0.0
        Stop when the loss is at most this.
    mode : {"exact", "compat"}
        The gradient mode (see :func:`backpropagate_gradient_to_poses`).
    num_threads : int or None
        OpenMP threads of the render and the gradients (ignored on a GPU).
    device : None, "cpu", "cuda" or "cuda:N"
        Where the renders and the gradients run. On a GPU only the rgb buffer comes back to
        the host each iteration (for the loss) and dLoss/dImage goes back; the step is on the
        host.

    Returns
    -------
    RefineResult
        ``(poses (N, 4, 4) float64, losses, iterations)``.
    """
    work = _working_copy(scene)
    iterations = check_int(iterations, "iterations", minimum=0)
    loss_tol = check_real(loss_tol, "loss_tol")
    if step is not None and not isinstance(step, AdamPoseStep):
        raise TypeError(f"step must be an AdamPoseStep or None, got {type(step).__name__}")
    stepper = AdamPoseStep() if step is None else copy.deepcopy(step)
    target = _target_image(target, work.camera.shape)
    objects = work.objects
    poses = np.stack([o.pose for o in objects])
    losses: list[float] = []
    done = 0
    while True:
        loss, buf, g = _loss_and_grad(work, target, mode, num_threads, device)
        losses.append(loss)
        if done == iterations or loss <= loss_tol:
            break
        grad = backpropagate_gradient_to_poses(work, buf, g, mode=mode, num_threads=num_threads)
        if isinstance(grad, DeviceArray):  # a device render gives device gradients
            grad = grad.get()
        poses = cast(NDArray[np.float64], apply_pose_delta(poses, -stepper(grad)))  # host in, host out
        for obj, pose in zip(objects, poses):
            obj.pose = pose
        done += 1
    return RefineResult(poses, losses, done)
