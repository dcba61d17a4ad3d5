"""``sync_node``: the perception input stage. Subscribes to the lidar, camera and radar topics,
``/tf_static`` and ``/ego/pose``, synchronises the sensors with :class:`perception.align.SensorSync`
(lidar sweep as the reference, ego-motion compensation) and publishes one
``fusion_perception_msgs/PerceptionStatus`` per frame on ``/perception/status``, plus
``/diagnostics`` (per-sensor rate, latency, dropped and malformed counts).

The detector and tracker nodes consume the same synchronised frames; the detector node
reads its sensors through the same :class:`ros_nodes.sensor_inputs.SensorInputs`.

Bad input never stops the node: a malformed message raises a typed error inside its callback,
which is logged (throttled), counted as ``malformed`` in the sensor's diagnostics, and the next
message is processed normally. Images that arrive before their ``CameraInfo`` and transform
are counted as ``dropped``.

Parameters: :class:`ros_nodes.params.SyncNodeParams` (``config/sync.param.yaml``).
"""

from __future__ import annotations

import time

from rclpy.node import Node
from std_msgs.msg import Header

from fusion_perception_msgs.msg import PerceptionStatus, SensorStatus
from perception.align import AlignedFrame, SensorSync

from . import topics
from .conversions.stamps import ns_to_stamp
from .node_base import Diagnostics, load_parameters, reliable_qos, run_node
from .params import SyncNodeParams
from .sensor_inputs import SensorInputs, input_sensors

NODE_NAME = "sync"


class SyncNode(Node):
    """See the module doc."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = load_parameters(self, SyncNodeParams)
        p = self.params
        self.sync = SensorSync(p.sync_config(), sequence_id=self.get_name())
        self.frames_out = 0
        self.diagnostics = Diagnostics(self, input_sensors(p), p.diagnostics_period_s)
        self.status_pub = self.create_publisher(PerceptionStatus, topics.PERCEPTION_STATUS,
                                                reliable_qos())
        self.inputs = SensorInputs(self, p, self.sync, self.diagnostics, self.publish_frames)

    # --------------------------------------------------------------------------------------
    # Output
    # --------------------------------------------------------------------------------------

    def publish_frames(self, frames: list[AlignedFrame]) -> None:
        for frame in frames:
            self.status_pub.publish(self.status(frame))
            self.frames_out += 1

    def status(self, aligned: AlignedFrame) -> PerceptionStatus:
        p = self.params
        frame = aligned.frame
        sensors = []
        for name in self.sync.stats:
            modality = (self.sync.modality_of[name].value if name in self.sync.modality_of
                        else "lidar")
            present = name in aligned.offsets_ns
            offset_ns = aligned.offsets_ns.get(name, 0)
            latency = self.diagnostics.health[name].latency_ms
            sensors.append(SensorStatus(
                name=name, modality=modality, present=present,
                stamp_ns=frame.stamp_ns + offset_ns if present else 0,
                offset_ms=offset_ns / 1e6, latency_ms=float(latency[-1]) if latency else 0.0))
        return PerceptionStatus(
            header=Header(stamp=ns_to_stamp(frame.stamp_ns), frame_id=p.vehicle_frame),
            modalities=sorted(m.value for m in aligned.modalities), sensors=sensors,
            motion_compensated=aligned.motion_compensated,
            sync_wait_ms=(aligned.emitted_arrival_ns - aligned.reference_arrival_ns) / 1e6,
            total_latency_ms=(time.time_ns() - frame.stamp_ns) / 1e6)


def main(argv: list[str] | None = None) -> int:
    return run_node(SyncNode, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
