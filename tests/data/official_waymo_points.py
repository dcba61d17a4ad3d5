"""Decode a Waymo TFRecord with the official utils (needs TensorFlow); run as a subprocess.

Usage: ``python official_waymo_points.py SEGMENT.tfrecord OUT.npz``. For every record and
both returns it stores ``points`` (N, 6) float32 = (range, intensity, elongation, x, y, z),
concatenated in the official order (lasers sorted by name), and ``laser`` (N,) with the
laser name of each point, under keys ``r{record}_ret{return}_points`` / ``..._laser``.
Also stores ``seconds`` (decode wall time per record, both returns).
"""

import sys
import time

import numpy as np
import tensorflow as tf
from waymo_open_dataset import dataset_pb2
from waymo_open_dataset.utils import frame_utils

# frame_utils passes bytearray to ParseFromString, which the protobuf 4.25 (upb) runtime that
# this wheel resolves to refuses; a module-level alias makes the unchanged official code work.
frame_utils.bytearray = bytes


def main(src: str, out: str) -> None:
    arrays = {}
    seconds = []
    for i, data in enumerate(tf.data.TFRecordDataset(src, compression_type="")):
        frame = dataset_pb2.Frame()
        frame.ParseFromString(data.numpy())
        t0 = time.perf_counter()
        parsed = frame_utils.parse_range_image_and_camera_projection(frame)
        range_images, camera_projections, _, top_pose = parsed
        for ret in (0, 1):
            points, _ = frame_utils.convert_range_image_to_point_cloud(
                frame, range_images, camera_projections, top_pose, ri_index=ret,
                keep_polar_features=True)
            names = sorted(c.name for c in frame.context.laser_calibrations)
            arrays[f"r{i}_ret{ret}_points"] = np.concatenate(points).astype(np.float32)
            arrays[f"r{i}_ret{ret}_laser"] = np.concatenate(
                [np.full(len(p), n, np.int8) for p, n in zip(points, names)])
        seconds.append(time.perf_counter() - t0)
    arrays["seconds"] = np.asarray(seconds)
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
