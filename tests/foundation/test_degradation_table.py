"""The graceful-degradation table: shares of the best specialist from hand-made metrics with
known values, the count of rows at 90 %, and the errors for missing inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.degradation_table import main

ROWS = ("all", "without_lidar", "without_camera", "without_radar", "only_lidar",
        "only_camera", "only_radar")


def _row(v: float, p: float, c: float) -> dict:
    out = {}
    for name, ap in (("VEHICLE", v), ("PEDESTRIAN", p), ("CYCLIST", c)):
        out[f"{name}_LEVEL_1"] = {"AP": ap, "APH": ap / 2}
        out[f"{name}_LEVEL_2"] = {"AP": ap / 2, "APH": ap / 4}
    return out


def _write(folder: Path, rows: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(rows))
    return folder


def _specialists(tmp_path: Path) -> list[str]:
    refs = {"lidar": (0.4, 0.5, 0.6), "camera": (0.1, 0.1, 0.0), "radar": (0.05, 0.2, 0.1)}
    return [f"--specialist={s}={_write(tmp_path / s, {'all': _row(*ap)})}"
            for s, ap in refs.items()]


def test_shares_and_the_count_of_rows_at_90_percent(tmp_path, capsys):
    fused = {row: _row(0.5, 0.6, 0.7) for row in ROWS}
    fused["only_camera"] = _row(0.095, 0.2, 0.0)    # 95 % / 200 % / ref 0: meets the bar
    fused["only_radar"] = _row(0.05, 0.17, 0.5)     # pedestrians at 85 %: misses
    fused["without_lidar"] = _row(0.2, 0.3, 0.2)    # camera+radar: best of 0.1/0.2/0.1
    model = _write(tmp_path / "fused", fused)
    assert main(_specialists(tmp_path) + ["--model", str(model)]) == 0
    lines = {line.split(" | ")[0][2:]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["camera"].endswith("0.095 / 0.200 / 0.000 (**95 % / 200 % / ref 0**) |")
    assert lines["radar"].endswith("0.050 / 0.170 / 0.500 (100 % / 85 % / 500 %) |")
    assert "| 0.100 / 0.200 / 0.100 |" in lines["camera+radar"]
    assert lines["camera+radar"].endswith("(**200 % / 150 % / 200 %**) |")
    assert lines["camera+lidar+radar"].endswith("(**125 % / 120 % / 117 %**) |")
    assert lines["rows >= 90 %"].endswith("| 6 of 7 |")


def test_missing_inputs_are_reported(tmp_path, capsys):
    only_all = _write(tmp_path / "fused", {"all": _row(0.5, 0.6, 0.7)})
    specialists = _specialists(tmp_path)
    assert main(specialists + ["--model", str(only_all)]) == 1
    assert "--single" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(specialists[:2] + ["--model", str(only_all)])
    with pytest.raises(SystemExit):
        main(["--specialist", "sonar=x", "--model", str(only_all)])
