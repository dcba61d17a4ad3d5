"""ROS 2 nodes, message conversions, launch files and parameter files of fusion_perception."""
