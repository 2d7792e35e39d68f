"""Camera observations: names, sizes, content, and bad camera requests."""

import gymnasium as gym
import numpy as np
import pytest

from kinema.aloha import HOME_POSE
from kinema.sim.env import IMAGE_KEY_PREFIX, AlohaEnv
from kinema.sim.rendering import ALOHA_CAMERAS


@pytest.fixture(scope="module")
def camera_env():
    env = gym.make("kinema/TransferCube-v0", cameras=list(ALOHA_CAMERAS), image_size=(60, 80))
    yield env
    env.close()


def test_every_camera_asked_for_is_rendered_at_the_asked_size(camera_env):
    obs, _ = camera_env.reset(seed=0)
    assert camera_env.observation_space.contains(obs)
    for camera in ALOHA_CAMERAS:
        image = obs[IMAGE_KEY_PREFIX + camera]
        assert image.shape == (60, 80, 3) and image.dtype == np.uint8
        assert image.std() > 5, f"{camera} rendered a flat image"
    # At home the scene is mirror-symmetric, so the two wrist cameras (each looking at the
    # other arm) see the same picture; break the symmetry by turning the left waist.
    turned = HOME_POSE.copy()
    turned[0] += 0.4
    for _ in range(10):
        obs, *_ = camera_env.step(turned)
    views = [obs[IMAGE_KEY_PREFIX + c].astype(int) for c in ALOHA_CAMERAS]
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            assert np.abs(views[i] - views[j]).mean() > 5, "two cameras show the same view"


def test_the_cube_is_visible_from_the_high_camera(camera_env):
    obs, _ = camera_env.reset(seed=0)
    image = obs[IMAGE_KEY_PREFIX + "cam_high"].astype(int)
    red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
    assert red.sum() >= 2


def test_wrist_camera_moves_with_the_wrist(camera_env):
    obs, _ = camera_env.reset(seed=0)
    before = obs[IMAGE_KEY_PREFIX + "cam_left_wrist"].astype(int)
    turned = HOME_POSE.copy()
    turned[0] += 0.5  # left waist
    for _ in range(20):
        obs, *_ = camera_env.step(turned)
    after = obs[IMAGE_KEY_PREFIX + "cam_left_wrist"].astype(int)
    assert np.abs(after - before).mean() > 5
    still = obs[IMAGE_KEY_PREFIX + "cam_low"].astype(int)
    assert still.shape == before.shape


def test_images_are_rendered_again_every_step(camera_env):
    camera_env.reset(seed=0)
    moved = HOME_POSE.copy()
    moved[7] -= 0.4  # right waist
    frames = [camera_env.step(moved)[0][IMAGE_KEY_PREFIX + "cam_high"] for _ in range(3)]
    assert not np.array_equal(frames[0], frames[2])


def test_several_renderers_in_one_process_do_not_disturb_each_other():
    envs = [
        gym.make("kinema/Insertion-v0", cameras=["cam_high"], image_size=(48, 64)) for _ in range(2)
    ]
    images = [env.reset(seed=0)[0][IMAGE_KEY_PREFIX + "cam_high"] for env in envs]
    envs[0].close()
    del envs[0]
    again = envs[0].reset(seed=0)[0][IMAGE_KEY_PREFIX + "cam_high"]
    np.testing.assert_array_equal(images[1], again)
    envs[0].close()


def test_render_mode_rgb_array_shows_the_render_camera():
    env = gym.make("kinema/TransferCube-v0", render_mode="rgb_array", image_size=(48, 64))
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.std() > 5
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cameras": ["cam_top"]}, "cam_top"),
        ({"cameras": ["cam_high"], "image_size": (0, 10)}, "image_size"),
        ({"cameras": ["cam_high"], "image_size": (10,)}, "image_size"),
        ({"render_mode": "ansi"}, "render_mode"),
    ],
)
def test_bad_camera_requests_raise_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlohaEnv("TransferCube", **kwargs)
