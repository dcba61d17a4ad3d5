"""``sensor_msgs/Image``, ``CompressedImage`` and ``CameraInfo`` <-> :class:`CameraImage` /
:class:`Calibration` for rclpy messages.

Decoding and the message layouts are :mod:`perception.rosmsg.image` (shared with log replay;
see it for the encodings read); the writers here build rclpy messages.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from perception.rosmsg import image as _shared
from perception.rosmsg.image import (
    CHANNELS_OF_ENCODING,
    DISTORTION_MODELS,
    JPEG_MAGIC,
    PNG_MAGIC,
    camera_info_to_calibration,
    compressed_to_camera_image,
    encode_rgb,
    image_format,
    image_to_camera_image,
    image_to_rgb,
)
from perception.types import Calibration, CameraImage

from .messages import RCLPY

__all__ = ["CHANNELS_OF_ENCODING", "DISTORTION_MODELS", "JPEG_MAGIC", "PNG_MAGIC",
           "calibration_to_camera_info", "camera_image_to_compressed", "camera_image_to_image",
           "camera_info_to_calibration", "compressed_to_camera_image", "encode_rgb",
           "image_format", "image_to_camera_image", "image_to_rgb", "rgb_to_image"]


def rgb_to_image(pixels: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """(H, W, 3) uint8 RGB -> ``Image`` with encoding ``rgb8`` (one copy into the message)."""
    return _shared.rgb_to_image(RCLPY, pixels, stamp_ns, frame_id)


def camera_image_to_image(image: CameraImage, frame_id: str) -> Image:
    """:class:`CameraImage` -> raw ``rgb8`` ``Image`` (decodes an encoded image)."""
    return _shared.camera_image_to_image(RCLPY, image, frame_id)


def camera_image_to_compressed(image: CameraImage, frame_id: str, fmt: str = "jpeg",
                               jpeg_quality: int = 90) -> CompressedImage:
    """:class:`CameraImage` -> ``CompressedImage`` (encoded bytes of that format pass
    through)."""
    return _shared.camera_image_to_compressed(RCLPY, image, frame_id, fmt, jpeg_quality)


def calibration_to_camera_info(calibration: Calibration, stamp_ns: int,
                               frame_id: str) -> CameraInfo:
    """Camera :class:`Calibration` -> ``CameraInfo`` (plumb_bob, R = I, P = [K | 0])."""
    return _shared.calibration_to_camera_info(RCLPY, calibration, stamp_ns, frame_id)
