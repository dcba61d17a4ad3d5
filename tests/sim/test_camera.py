"""Cameras: calibration, projection of ground-truth boxes onto their own pixels, shading."""

from __future__ import annotations

import numpy as np

from perception.data.sim import Simulator
from perception.data.sim.actors import ActorKind
from perception.geometry import project_points
from perception.types import CameraConvention

from .conftest import EMPTY_WORLD, tiny_config, with_static_actor

SMALL_CAMERAS = {"rig": {"cameras": [
    {"name": "FRONT", "width": 160, "height": 96, "hfov_deg": 70.0,
     "mount_xyz_m": [1.5, 0.0, 2.0]},
    {"name": "LEFT", "width": 160, "height": 96, "hfov_deg": 70.0, "yaw_deg": 90.0,
     "pitch_deg": 5.0, "mount_xyz_m": [1.0, 0.5, 2.0]},
]}}


def test_calibration_is_pinhole_optical_with_zero_distortion(tiny_sim):
    calib = tiny_sim.render_camera("FRONT", 0).image.calibration
    assert calib.camera_convention is CameraConvention.OPTICAL
    assert calib.width == 96 and calib.height == 64
    np.testing.assert_array_equal(calib.distortion, np.zeros(5))
    # The optical axis (z) of the front camera points along vehicle +x.
    np.testing.assert_allclose(calib.T_vehicle_sensor[:3, 2], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(calib.K[0, 2], 48.0)


def test_isolated_actor_centre_projects_onto_its_own_pixels():
    sim = Simulator(tiny_config(EMPTY_WORLD, SMALL_CAMERAS), seed=0)
    for camera, offset in (("FRONT", (14.0, 1.5)), ("LEFT", (1.0, 9.0))):
        actor = with_static_actor(sim, ActorKind.CAR, offset, (4.5, 1.9, 1.5), heading=0.4)
        render = sim.render_camera(camera, 0)
        boxes = sim.ground_truth(render.image.stamp_ns, None)
        uv, _, visible = project_points(boxes.centers, render.image.calibration)
        assert visible[0]
        u, v = np.floor(uv[0]).astype(int)
        assert render.object_id[v, u] == actor.actor_id
        # The actor covers a blob of pixels, and the rest of the image is not the actor.
        assert 20 < (render.object_id == actor.actor_id).sum() < render.object_id.size / 4


def test_box_centres_hit_their_actor_unless_occluded():
    sim = Simulator(tiny_config(SMALL_CAMERAS), seed=1)
    matched = 0
    for k in range(0, 30, 3):
        render = sim.render_camera("FRONT", k)
        boxes = sim.ground_truth(render.image.stamp_ns, None)
        uv, depth, visible = project_points(boxes.centers, render.image.calibration)
        for i in np.flatnonzero(visible):
            u, v = np.floor(uv[i]).astype(int)
            if render.object_id[v, u] == boxes.ids[i]:
                matched += 1
                assert render.depth_m[v, u] < depth[i]  # the surface is in front of the centre
            else:
                # Occluded: what the pixel sees must be in front of the actor's centre.
                assert render.depth_m[v, u] < depth[i]
    assert matched >= 5


def test_image_shows_sky_road_and_distinct_objects(tiny_sim):
    render = tiny_sim.render_camera("FRONT", 5)
    pixels = render.image.pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (64, 96, 3)
    top, bottom = pixels[:5].astype(float), pixels[-5:].astype(float)
    assert top[..., 2].mean() > top[..., 0].mean()     # sky is blue-ish
    assert bottom.std() < 60 and bottom.mean() < 200    # road is a darker grey
    ids = render.object_id
    assert (ids >= 0).sum() > 20
    inside = pixels[ids >= 0].astype(float).mean(axis=0)
    outside = pixels[ids < 0].astype(float).mean(axis=0)
    assert np.abs(inside - outside).max() > 10
