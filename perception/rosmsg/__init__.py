"""ROS 2 messages <-> the typed data model, without ROS.

Every function here works on message *objects* by their attributes (duck typing), so the same
code serves rclpy messages in the nodes (:mod:`ros_nodes.conversions`) and the message
objects ``rosbags`` deserialises from a bag (:mod:`perception.replay`). Nothing here imports
rclpy or a message package.

* Decoding (message -> data model) takes any object with the message's fields.
* Encoding (data model -> message) builds messages through a :class:`MessageFactory`
  (:mod:`.factory`), which knows the concrete classes: rclpy's generated classes in the nodes,
  a ``rosbags`` typestore in replay and the bag converters.

One module per message family: :mod:`.stamps`, :mod:`.pointcloud2`, :mod:`.image`,
:mod:`.tf`, :mod:`.detections`, :mod:`.markers`. Malformed messages raise
:class:`perception.errors.ConversionError` naming the topic and the message stamp.
:mod:`.topics` holds our default topic names and frame ids, shared by the nodes and replay.
"""

from .factory import MessageFactory

__all__ = ["MessageFactory"]
