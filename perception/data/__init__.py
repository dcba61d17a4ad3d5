"""Data sources: Waymo, nuScenes, KITTI, rosbag2 and the built-in simulator, all yielding SensorFrame."""
