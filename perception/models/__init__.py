"""Detector models: lidar, camera and radar encoders, fuser, BEV backbone, heads.

Assembled explicitly in ``detector.py``: encoders -> fuser -> BEV backbone -> CenterPoint head.
"""
