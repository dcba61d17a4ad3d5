"""Named simulator presets: an explicit mapping from preset name to a YAML file in configs/sim.

* ``waymo_like``: 64-beam TOP lidar (non-uniform inclinations, 2650 azimuth steps, 75 m),
  5 cameras (FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT) and 5 radars.
* ``nuscenes_like``: 32-beam 20 Hz lidar, 6 surround cameras at 12 Hz, 5 radars at 13 Hz.
* ``vlp16``: 16-beam lidar, one front camera and one front radar.
* ``tiny``: a small, fast rig and scenario for tests and smoke runs.
"""

from __future__ import annotations

from pathlib import Path

from ...config import config_dir, from_dict, load_config
from ...errors import ConfigError
from .settings import SimConfig, check_sim_config

CONFIG_DIR = config_dir() / "sim"

PRESET_FILES: dict[str, str] = {
    "waymo_like": "waymo_like.yaml",
    "nuscenes_like": "nuscenes_like.yaml",
    "vlp16": "vlp16.yaml",
    "tiny": "tiny.yaml",
}


def preset_path(name: str) -> Path:
    """Path of the YAML file of preset ``name``; ConfigError for an unknown name."""
    if name not in PRESET_FILES:
        raise ConfigError(f"unknown simulator preset {name!r}; known presets: "
                          f"{sorted(PRESET_FILES)} (or pass a path to a .yaml file)")
    return CONFIG_DIR / PRESET_FILES[name]


def load_sim_config(path: str | Path) -> SimConfig:
    """Load and fully validate a simulator YAML file (one ``base:`` level allowed)."""
    cfg = load_config(path, SimConfig)
    return check_sim_config(cfg, source=str(path))


def sim_config_from_dict(data: dict, source: str = "<dict>") -> SimConfig:
    """Validate a plain mapping (same layout as the YAML files) into a :class:`SimConfig`."""
    return check_sim_config(from_dict(SimConfig, data, source=source), source=source)


def resolve_config(config_or_preset: str | Path | SimConfig) -> SimConfig:
    """A :class:`SimConfig` from a preset name, a YAML path or a config object."""
    if isinstance(config_or_preset, SimConfig):
        return check_sim_config(config_or_preset)
    if isinstance(config_or_preset, Path) or str(config_or_preset).endswith((".yaml", ".yml")):
        return load_sim_config(config_or_preset)
    if isinstance(config_or_preset, str):
        return load_sim_config(preset_path(config_or_preset))
    raise ConfigError(f"expected a preset name, a .yaml path or a SimConfig, got "
                      f"{type(config_or_preset).__name__}")
