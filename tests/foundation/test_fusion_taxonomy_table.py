"""The fusion-taxonomy table: cells from hand-made metrics with known values, missing levels,
bad files, and the driver script's budget check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.fusion_taxonomy_table import ap_change, load_metrics, main, tables
from perception.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def _row(v: float, p: float, c: float) -> dict:
    """AP as given at LEVEL_1, APH half of it, LEVEL_2 0.1 lower."""
    out = {}
    for name, ap in (("VEHICLE", v), ("PEDESTRIAN", p), ("CYCLIST", c)):
        out[f"{name}_LEVEL_1"] = {"AP": ap, "APH": ap / 2}
        out[f"{name}_LEVEL_2"] = {"AP": ap - 0.1, "APH": (ap - 0.1) / 2}
    return out


def _write(folder: Path, rows: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(rows))


def test_cells_hold_the_metrics_and_the_misalignment_change(tmp_path):
    _write(tmp_path / "sim_cpu_camera_lidar_radar", {
        "all": _row(0.5, 0.6, 0.7), "without_camera": _row(0.45, 0.55, 0.65),
        "only_radar": _row(0.1, 0.2, 0.3), "misaligned_all": _row(0.4, 0.6, 0.4)})
    metrics = {"sim_cpu_camera_lidar_radar": load_metrics(
        tmp_path / "sim_cpu_camera_lidar_radar" / "metrics.json")}
    text = tables(metrics, {"sim_cpu_camera_lidar_radar": (1_520_000, 0.231)}, "half")
    concat = [line for line in text.splitlines() if line.startswith("| intermediate: BEV concat")]
    main_row, subsets, misaligned, degraded = concat
    assert main_row.split(" | ")[1:8] == [
        "1.52 M", "231", "0.500 / 0.600 / 0.700", "0.250 / 0.300 / 0.350",
        "0.400 / 0.500 / 0.600", "0.200 / 0.250 / 0.300", "0.400 / 0.600 / 0.400 |"]
    cells = subsets.split(" | ")
    assert cells[2] == "0.450 / 0.550 / 0.650" and cells[3] == "-"
    assert cells[7].startswith("0.100 / 0.200 / 0.300")
    assert misaligned.split(" | ")[-1] == "0.400 / 0.600 / 0.400 (-0.100 / +0.000 / -0.300) |"
    assert degraded.startswith("| intermediate: BEV concat | 0 of 0 |")  # no specialists
    early = [line for line in text.splitlines() if line.startswith("| early")]
    assert all(set(line.split(" | ")[1:]) <= {"-", "- |", "0 of 0"} for line in early)


def test_ap_change_is_signed_per_class():
    assert ap_change(_row(0.6, 0.2, 0.3), _row(0.3, 0.3, 0.3)) == "+0.300 / -0.100 / +0.000"
    assert ap_change(None, _row(0.3, 0.3, 0.3)) == "-"


def test_bad_metrics_files_are_data_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        load_metrics(bad)
    bad.write_text(json.dumps({"without_camera": _row(0.1, 0.1, 0.1)}))
    with pytest.raises(DataError, match="no 'all' row"):
        load_metrics(bad)
    row = _row(0.1, 0.1, 0.1)
    del row["CYCLIST_LEVEL_2"]
    bad.write_text(json.dumps({"all": row}))
    with pytest.raises(DataError, match="CYCLIST LEVEL_2"):
        load_metrics(bad)


def test_main_writes_the_tables(tmp_path, capsys):
    _write(tmp_path / "eval" / "sim_cpu_late_nms", {"all": _row(0.3, 0.4, 0.5)})
    out = tmp_path / "table.md"
    assert main(["--eval-dir", str(tmp_path / "eval"), "--no-latency", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| late: NMS | - | - | 0.300 / 0.400 / 0.500 |" in text
    assert "sim_cpu_late: no" in capsys.readouterr().err
    assert main(["--eval-dir", str(tmp_path / "missing"), "--no-latency"]) == 2


def test_driver_refuses_an_unknown_budget():
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "fusion_taxonomy.sh")],
                            env={"BUDGET": "tiny", "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "BUDGET must be full or half" in result.stderr


def test_degradation_against_the_best_specialist_in_the_subset():
    from benchmarks.fusion_taxonomy_table import (LEVELS, degradation, degradation_cell,
                                                  subset_row)

    def degradation_cell_of(level, metrics):
        return degradation_cell(degradation(level, frozenset({"camera", "radar"}), metrics))

    concat = next(level for level in LEVELS if level.row == "sim_cpu_camera_lidar_radar")
    early = next(level for level in LEVELS if level.row == "sim_cpu_early_painting")
    assert subset_row(concat, frozenset({"camera"})) == "only_camera"
    assert subset_row(concat, frozenset({"camera", "radar"})) == "without_lidar"
    assert subset_row(early, frozenset({"lidar"})) == "without_camera"
    assert subset_row(early, frozenset({"radar"})) is None
    metrics = {
        "sim_cpu_camera": {"all": _row(0.2, 0.1, 0.4)},
        "sim_cpu_radar": {"all": _row(0.1, 0.3, 0.0)},
        "sim_cpu_lidar": None,
        "sim_cpu_camera_lidar_radar": {"all": _row(0.5, 0.5, 0.5),
                                       "without_lidar": _row(0.19, 0.3, 0.2)}}
    shares = degradation(concat, frozenset({"camera", "radar"}), metrics)
    # best in {camera, radar}: vehicle 0.2 (camera), pedestrian 0.3 (radar), cyclist 0.4
    assert [round(x, 3) for x in shares] == [0.95, 1.0, 0.5]
    assert degradation(concat, frozenset({"lidar"}), metrics) is None  # no lidar specialist
    text = tables(metrics, {})
    line = next(x for x in text.splitlines() if x.startswith("| intermediate: BEV concat | 0 of 1"))
    assert "95 % / 100 % / 50 %" in line
    metrics["sim_cpu_radar"] = {"all": _row(0.1, 0.3, 0.0)}
    metrics["sim_cpu_camera"]["all"] = _row(0.2, 0.1, 0.0)  # no specialist finds cyclists
    assert degradation_cell_of(concat, metrics) == "**95 % / 100 % / ref 0**"


def test_misaligned_columns_are_the_evaluator_rows():
    from benchmarks.fusion_taxonomy_table import MISALIGNED_ROWS
    from perception.train.misalign import STANDARD

    assert [key for _, key in MISALIGNED_ROWS] == [m.name for m in STANDARD]
