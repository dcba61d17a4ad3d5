"""``sensor_msgs/Image``, ``CompressedImage`` and ``CameraInfo`` <-> :class:`CameraImage` /
:class:`Calibration`.

Images in the data model are uint8 (H, W, 3) RGB. Raw images are read with ``np.frombuffer``
(a view of ``msg.data`` for ``rgb8`` without row padding); ``bgr8``, ``rgba8``, ``bgra8`` and
``mono8`` are converted with one vectorised copy. Compressed images stay encoded (JPEG or
PNG bytes) and are decoded lazily by :class:`CameraImage`; encoded bytes are written back
unchanged, never re-encoded.

A camera's ROS frame is its optical frame (x right, y down, z forward), so a calibration built
from ``CameraInfo`` uses :attr:`CameraConvention.OPTICAL` and ``T_vehicle_sensor`` is the
vehicle <- optical transform (from ``/tf_static``).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..types import Calibration, CameraConvention, CameraImage
from .factory import MessageFactory, header_msg
from .stamps import conversion_error, stamp_to_ns

CHANNELS_OF_ENCODING = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
"""Raw encodings read (all 8 bit per channel) -> channels per pixel."""
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DISTORTION_MODELS = ("plumb_bob", "")
"""CameraInfo distortion models read: plumb_bob (k1, k2, p1, p2, k3), or none (zeros)."""


# ------------------------------------------------------------------------------------------
# Raw images
# ------------------------------------------------------------------------------------------

def image_to_rgb(msg: Any, topic: str = "") -> np.ndarray:
    """Raw ``Image`` -> (H, W, 3) uint8 RGB (a view for ``rgb8`` when the layout allows).

    Raises:
        ConversionError: unsupported encoding, ``step`` shorter than a row, or a data length
            that is not ``step * height``.
    """
    channels = CHANNELS_OF_ENCODING.get(msg.encoding)
    if channels is None:
        raise conversion_error(topic, msg, f"unsupported image encoding {msg.encoding!r} "
                                           f"(supported: {sorted(CHANNELS_OF_ENCODING)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise conversion_error(topic, msg, f"empty image {width}x{height}")
    if step < width * channels:
        raise conversion_error(topic, msg, f"step {step} is shorter than a row of {width} "
                                           f"{msg.encoding} pixels ({width * channels} bytes)")
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if raw.size != step * height:
        raise conversion_error(topic, msg, f"data length {raw.size} != step {step} x height "
                                           f"{height} for encoding {msg.encoding!r}")
    pixels = raw.reshape(height, step)[:, :width * channels].reshape(height, width, channels)
    if msg.encoding == "rgb8":
        return pixels
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_camera_image(msg: Any, calibration: Calibration, topic: str = "",
                          stamp_ns: int | None = None) -> CameraImage:
    """Raw ``Image`` + the camera's calibration -> :class:`CameraImage`.

    Raises:
        ConversionError: a malformed image, or one whose size disagrees with the calibration.
    """
    pixels = image_to_rgb(msg, topic)
    stamp = stamp_ns if stamp_ns is not None else stamp_to_ns(msg.header.stamp)
    try:
        return CameraImage(calibration.sensor_name, stamp, calibration, pixels=pixels)
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None


def rgb_to_image(factory: MessageFactory, pixels: np.ndarray, stamp_ns: int,
                 frame_id: str) -> Any:
    """(H, W, 3) uint8 RGB -> ``Image`` with encoding ``rgb8`` (one copy into the message)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be (H, W, 3) uint8, got {pixels.shape}")
    height, width = pixels.shape[:2]
    return factory.new("sensor_msgs/msg/Image", header=header_msg(factory, stamp_ns, frame_id),
                       height=height, width=width, encoding="rgb8", is_bigendian=0,
                       step=3 * width, data=factory.bytes_field(pixels.reshape(-1)))


def camera_image_to_image(factory: MessageFactory, image: CameraImage, frame_id: str) -> Any:
    """:class:`CameraImage` -> raw ``rgb8`` ``Image`` (decodes an encoded image)."""
    return rgb_to_image(factory, image.image, image.stamp_ns, frame_id)


# ------------------------------------------------------------------------------------------
# Compressed images
# ------------------------------------------------------------------------------------------

def image_format(data: bytes) -> str:
    """``"jpeg"``, ``"png"`` or ``""`` from the magic bytes."""
    if data[:3] == JPEG_MAGIC:
        return "jpeg"
    if data[:8] == PNG_MAGIC:
        return "png"
    return ""


def compressed_to_camera_image(msg: Any, calibration: Calibration, topic: str = "",
                               stamp_ns: int | None = None) -> CameraImage:
    """``CompressedImage`` (JPEG or PNG) -> :class:`CameraImage` holding the encoded bytes.

    The image header is read (not the pixels, which :class:`CameraImage` decodes when they are
    first used), so that bytes that are not an image, and an image whose size disagrees with
    the calibration (a forged header may claim billions of pixels), are refused here, per
    message.

    Raises:
        ConversionError: the bytes are neither JPEG nor PNG, their header cannot be read, or
            the size it gives is not the calibration's.
    """
    data = msg.data.tobytes() if isinstance(msg.data, np.ndarray) else bytes(msg.data)
    if not image_format(data):
        raise conversion_error(topic, msg, f"compressed image is neither JPEG nor PNG "
                                           f"(format {msg.format!r}, {len(data)} bytes)")
    width, height = _header_size(data, topic, msg)
    if (width, height) != (calibration.width, calibration.height):
        raise conversion_error(topic, msg, f"compressed image is {width}x{height} (WxH) but "
                                           f"the calibration of {calibration.sensor_name} says "
                                           f"{calibration.width}x{calibration.height}")
    stamp = stamp_ns if stamp_ns is not None else stamp_to_ns(msg.header.stamp)
    return CameraImage(calibration.sensor_name, stamp, calibration, encoded=data)


def _header_size(data: bytes, topic: str, msg: Any) -> tuple[int, int]:
    """``(width, height)`` from a JPEG / PNG header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise conversion_error(topic, msg, f"compressed image header cannot be read: "
                                           f"{type(exc).__name__}: {exc}") from None


def camera_image_to_compressed(factory: MessageFactory, image: CameraImage, frame_id: str,
                               fmt: str = "jpeg", jpeg_quality: int = 90) -> Any:
    """:class:`CameraImage` -> ``CompressedImage``. Encoded bytes of the requested format are
    passed through unchanged; otherwise the pixels are encoded with Pillow."""
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"format must be 'jpeg' or 'png', got {fmt!r}")
    if image.encoded is not None and image_format(image.encoded) == fmt:
        data = image.encoded
    else:
        data = encode_rgb(image.image, fmt, jpeg_quality)
    return factory.new("sensor_msgs/msg/CompressedImage",
                       header=header_msg(factory, image.stamp_ns, frame_id), format=fmt,
                       data=factory.bytes_field(np.frombuffer(data, np.uint8)))


def encode_rgb(pixels: np.ndarray, fmt: str, jpeg_quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG or PNG bytes."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    if fmt == "jpeg":
        PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------
# CameraInfo
# ------------------------------------------------------------------------------------------

def camera_info_to_calibration(msg: Any, sensor_name: str, T_vehicle_optical: np.ndarray,
                               topic: str = "") -> Calibration:
    """``CameraInfo`` + the vehicle <- optical-frame transform -> camera :class:`Calibration`.

    Raises:
        ConversionError: unsupported distortion model, wrong number of coefficients, or an
            invalid K.
    """
    model = msg.distortion_model
    if model not in DISTORTION_MODELS:
        raise conversion_error(topic, msg, f"unsupported distortion model {model!r} "
                                           f"(supported: plumb_bob)")
    coefficients = np.asarray(msg.d, dtype=np.float64)
    if coefficients.size == 0:
        coefficients = np.zeros(5)
    if coefficients.size != 5:
        raise conversion_error(topic, msg, f"plumb_bob needs 5 distortion coefficients, got "
                                           f"{coefficients.size}")
    try:
        return Calibration(sensor_name, np.asarray(T_vehicle_optical, np.float64),
                           K=np.asarray(msg.k, np.float64).reshape(3, 3),
                           distortion=coefficients, width=int(msg.width),
                           height=int(msg.height), camera_convention=CameraConvention.OPTICAL)
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None


def calibration_to_camera_info(factory: MessageFactory, calibration: Calibration,
                               stamp_ns: int, frame_id: str) -> Any:
    """Camera :class:`Calibration` -> ``CameraInfo`` (plumb_bob, R = I, P = [K | 0])."""
    K = calibration.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return factory.new("sensor_msgs/msg/CameraInfo",
                       header=header_msg(factory, stamp_ns, frame_id),
                       height=calibration.height, width=calibration.width,
                       distortion_model="plumb_bob",
                       d=np.asarray(calibration.distortion, np.float64),
                       k=K.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1),
                       p=P.reshape(-1))
