"""Conversions between ROS 2 messages and the typed data model (:mod:`perception.types`).

One module per message family: :mod:`.stamps`, :mod:`.pointcloud2`, :mod:`.image`, :mod:`.tf`,
:mod:`.detections`, :mod:`.markers`, and the node outputs of :mod:`.tracks`; each is a thin
rclpy layer over :mod:`perception.rosmsg`. Malformed messages raise
:class:`perception.errors.ConversionError` naming the topic and the message stamp.
"""
