"""Camera images from the simulation, tuned for software (Mesa EGL) rendering on CPUs.

A frame on Mesa's CPU renderer has a large fixed cost, so ``CameraRenderer`` draws every camera
into its own viewport of one offscreen framebuffer (the cameras side by side) and reads the
pixels back once per step; with shadows, reflections, the skybox, fog, haze and multisampling
off, this is several times cheaper than one ``mujoco.Renderer`` call per camera.

Set ``MUJOCO_GL=egl`` before mujoco is first imported on a machine without a display
(importing ``kinema`` does this when the variable is unset, and the Makefile exports it).

Example:
    >>> renderer = CameraRenderer(sim.model, ["cam_high", "cam_left_wrist"], (96, 128))
    >>> images = renderer.render(sim.data)
    >>> images["cam_high"].shape, images["cam_high"].dtype
    ((96, 128, 3), dtype('uint8'))
"""

import sys
from collections.abc import Sequence

import mujoco
import numpy as np

ALOHA_CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")

_FLAGS_OFF = (
    mujoco.mjtRndFlag.mjRND_SHADOW,
    mujoco.mjtRndFlag.mjRND_REFLECTION,
    mujoco.mjtRndFlag.mjRND_SKYBOX,
    mujoco.mjtRndFlag.mjRND_FOG,
    mujoco.mjtRndFlag.mjRND_HAZE,
)
_MAX_SCENE_GEOMS = 2000


def model_cameras(model: mujoco.MjModel) -> list[str]:
    """Names of the cameras defined in ``model``."""
    return [model.camera(i).name for i in range(model.ncam)]


def validate_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """``image_size`` as (height, width) in pixels, or a ValueError saying what is wrong."""
    size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in size):
        raise ValueError(f"image_size must be (height, width) in positive pixels, got {image_size}")
    return int(size[0]), int(size[1])


class CameraRenderer:
    """Renders the named cameras of a model to H×W×3 uint8 arrays, all in one framebuffer.

    The model's offscreen buffer is enlarged, if needed, to hold the cameras side by side
    (``len(cameras) * width`` × ``height`` pixels) before the GL context is made.
    """

    def __init__(self, model: mujoco.MjModel, cameras: Sequence[str], image_size: Sequence[int]):
        self._gl: mujoco.GLContext | None = None
        known = model_cameras(model)
        unknown = [c for c in cameras if c not in known]
        if unknown or not cameras:
            raise ValueError(f"cameras must name some of {known}, got {list(cameras)}")
        self.cameras = tuple(cameras)
        self.height, self.width = validate_image_size(image_size)
        total_width = self.width * len(self.cameras)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, total_width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)

        self._model = model
        self._gl = mujoco.GLContext(model.vis.global_.offwidth, model.vis.global_.offheight)
        self._gl.make_current()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=_MAX_SCENE_GEOMS)
        for flag in _FLAGS_OFF:
            self._scene.flags[flag] = False
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._views = []
        for i, name in enumerate(self.cameras):
            camera = mujoco.MjvCamera()
            camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            camera.fixedcamid = model.camera(name).id
            self._views.append((camera, mujoco.MjrRect(i * self.width, 0, self.width, self.height)))
        self._strip = mujoco.MjrRect(0, 0, total_width, self.height)
        self._pixels = np.empty((self.height, total_width, 3), dtype=np.uint8)

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """One H×W×3 uint8 image per camera, keyed by camera name, for the state in ``data``."""
        self._gl.make_current()
        for camera, viewport in self._views:
            mujoco.mjv_updateScene(
                self._model,
                data,
                self._option,
                self._perturb,
                camera,
                mujoco.mjtCatBit.mjCAT_ALL,
                self._scene,
            )
            mujoco.mjr_render(viewport, self._scene, self._context)
        mujoco.mjr_readPixels(self._pixels, None, self._strip, self._context)
        strip = np.flipud(self._pixels)  # OpenGL rows run bottom to top
        return {
            name: strip[:, i * self.width : (i + 1) * self.width].copy()
            for i, name in enumerate(self.cameras)
        }

    def close(self) -> None:
        """Release the GL resources. Our context is made current first: freeing them while
        another renderer's context is current would delete that renderer's buffers instead."""
        if self._gl is None:
            return
        self._gl.make_current()
        self._context.free()
        self._gl.free()
        self._gl = None

    def __del__(self) -> None:
        if not sys.is_finalizing():  # at interpreter exit EGL is already torn down
            self.close()
