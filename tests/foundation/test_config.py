"""Config loading: base inheritance, unknown keys, wrong types, ranges, messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from perception.config import from_dict, load_config, to_dict
from perception.errors import ConfigError


class Fusion(str, enum.Enum):
    CONCAT = "concat"
    GATED = "gated"


@dataclass(frozen=True)
class Grid:
    voxel_size_m: tuple[float, float, float] = field(default=(0.1, 0.1, 0.2),
                                                     metadata={"gt": 0})
    point_range_m: tuple[float, ...] = field(default=(-50, -50, -3, 50, 50, 3),
                                             metadata={"min_len": 6, "max_len": 6})

    def validate(self) -> None:
        if any(hi <= lo for lo, hi in zip(self.point_range_m[:3], self.point_range_m[3:])):
            raise ValueError("point_range_m: each max must exceed its min")


@dataclass(frozen=True)
class Model:
    grid: Grid = field(default_factory=Grid)
    fusion: Fusion = Fusion.CONCAT
    head: Literal["centerpoint", "anchor"] = "centerpoint"
    classes: list[str] = field(default_factory=lambda: ["vehicle"])
    dropout: float = field(default=0.0, metadata={"ge": 0.0, "lt": 1.0})
    epochs: int = field(default=1, metadata={"ge": 1})
    name: str | None = None
    weights: dict[str, float] = field(default_factory=dict)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_full_roundtrip(tmp_path):
    cfg = load_config(write(tmp_path, "m.yaml", "epochs: 3\nfusion: gated\n"), Model)
    assert cfg.epochs == 3 and cfg.fusion is Fusion.GATED and cfg.grid == Grid()
    assert from_dict(Model, to_dict(cfg)) == cfg


def test_base_inheritance_merges_mappings(tmp_path):
    write(tmp_path, "base.yaml", "grid:\n  voxel_size_m: [0.2, 0.2, 0.4]\nepochs: 5\n"
                                 "classes: [vehicle, pedestrian]\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\ngrid:\n  point_range_m: "
                                          "[-10, -10, -1, 10, 10, 1]\nclasses: [cyclist]\n")
    cfg = load_config(child, Model)
    assert cfg.grid.voxel_size_m == (0.2, 0.2, 0.4)          # from the base
    assert cfg.grid.point_range_m == (-10, -10, -1, 10, 10, 1)  # merged from the child
    assert cfg.classes == ["cyclist"] and cfg.epochs == 5     # lists replace, scalars inherit


def test_base_of_base_is_refused(tmp_path):
    write(tmp_path, "a.yaml", "epochs: 2\n")
    write(tmp_path, "b.yaml", "base: a.yaml\n")
    child = write(tmp_path, "c.yaml", "base: b.yaml\n")
    with pytest.raises(ConfigError, match="b.yaml: base: a base config may not have a base"):
        load_config(child, Model)


def test_missing_base_names_both_files(tmp_path):
    child = write(tmp_path, "c.yaml", "base: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found \(base of .*c.yaml"):
        load_config(child, Model)


@pytest.mark.parametrize("text, match", [
    ("epochz: 3", r"epochz: unknown key; did you mean 'epochs'\?"),
    ("grid:\n  voxel_sise_m: [1, 1, 1]", r"grid.voxel_sise_m: unknown key; did you mean"),
    ("epochs: three", r"epochs: expected int, got str 'three'"),
    ("epochs: 2.5", r"epochs: expected int, got float 2.5"),
    ("epochs: true", r"epochs: expected int, got bool True"),
    ("epochs: 0", r"epochs: value 0 out of range: expected >= 1"),
    ("dropout: 1.0", r"dropout: value 1.0 out of range: expected < 1.0"),
    ("grid:\n  voxel_size_m: [0.1, 0, 0.2]", r"grid.voxel_size_m\[1\]: value 0.0 out of range"),
    ("grid:\n  voxel_size_m: [0.1, 0.2]", r"grid.voxel_size_m: expected 3 items"),
    ("grid:\n  point_range_m: [1, 2, 3]", r"grid.point_range_m: expected at least 6 items"),
    ("grid:\n  point_range_m: [0, 0, 0, -1, 1, 1]", r"grid: point_range_m: each max"),
    ("fusion: average", r"fusion: expected one of \['concat', 'gated'\]"),
    ("head: yolo", r"head: expected one of \['centerpoint', 'anchor'\]"),
    ("classes: vehicle", r"classes: expected a list"),
    ("classes: [vehicle, 3]", r"classes\[1\]: expected str, got int 3"),
    ("name: 5", r"name: expected str"),
    ("weights: {a: x}", r"weights.a: expected float"),
    ("grid: 3", r"grid: expected a mapping \(Grid\)"),
])
def test_errors_name_file_key_and_expectation(tmp_path, text, match):
    path = write(tmp_path, "bad.yaml", text + "\n")
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path, Model)
    assert str(info.value).startswith(str(path))


def test_required_key_missing():
    @dataclass
    class Needs:
        size_m: float

    with pytest.raises(ConfigError, match="size_m: required key is missing"):
        from_dict(Needs, {}, source="x.yaml")


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "a.yaml", "a: [1, 2\n"), Model)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "b.yaml", "- 1\n- 2\n"), Model)
    assert load_config(write(tmp_path, "empty.yaml", ""), Model) == Model()
