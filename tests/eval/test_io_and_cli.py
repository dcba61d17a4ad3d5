"""Objects proto and .npz box-table I/O, the report, and the ``perception eval`` command."""

import json

import numpy as np
import pytest
from eval_cases import VEH, box, det, gt, key, synthetic_set, synthetic_tracks

from perception.cli import main
from perception.errors import DataError
from perception.eval import box_table
from perception.eval.detection import evaluate_detection, evaluate_waymo
from perception.eval.waymo_objects import (
    read_ground_truth,
    read_predictions,
    write_ground_truth,
    write_predictions,
)

pytest.importorskip("waymo_open_dataset.protos.metrics_pb2")

TOP_KEYS = {f"{c}_LEVEL_{lv}" for c in ("VEHICLE", "PEDESTRIAN", "CYCLIST") for lv in (1, 2)}


def test_objects_round_trip(tmp_path):
    gts, preds = synthetic_set(3, 12, salt=4.0, fp_per_frame=3)
    write_ground_truth(tmp_path / "gt.bin", gts)
    write_predictions(tmp_path / "pred.bin", preds)
    g = read_ground_truth(tmp_path / "gt.bin")
    p = read_predictions(tmp_path / "pred.bin")
    assert sorted(g.frames) == sorted(gts) and sorted(p.frames) == sorted(preds)
    k = sorted(gts)[0]
    np.testing.assert_allclose(g.frames[k].boxes, gts[k].boxes, atol=1e-6)
    assert (g.frames[k].num_points == gts[k].num_points).all()
    assert (g.frames[k].levels() == gts[k].levels()).all()
    np.testing.assert_allclose(p.frames[k].scores, preds[k].scores, atol=1e-7)
    assert p.track_ids is None
    assert evaluate_waymo(tmp_path / "gt.bin", tmp_path / "pred.bin") == evaluate_waymo(gts,
                                                                                        preds)


def test_track_ids_round_trip(tmp_path):
    gts, preds, ids = synthetic_tracks(3, 4, salt=1.0)
    write_predictions(tmp_path / "p.bin", preds, track_ids=ids)
    p = read_predictions(tmp_path / "p.bin")
    k = sorted(preds)[1]
    # ids come back as int64 in first-seen order; the original names are kept.
    assert [p.id_names[i] for i in p.track_ids[k]] == [str(i) for i in ids[k]]


def test_real_fixture_is_read(fixture_file):
    g = read_ground_truth(fixture_file("waymo_metrics_gt"))
    p = read_predictions(fixture_file("waymo_metrics_pred"))
    assert len(g.frames) == 20 and sum(len(b) for b in g.frames.values()) == 1010
    assert sum(len(d) for d in p.frames.values()) == 2263


def test_real_fixture_matches_the_official_numbers(fixture_file):
    # Official values from tests/eval/official_eval.py (waymo-open-dataset-tf-2-12-0 1.6.7).
    out = evaluate_waymo(fixture_file("waymo_metrics_gt"), fixture_file("waymo_metrics_pred"))
    assert out["VEHICLE_LEVEL_1"]["AP"] == pytest.approx(0.2096817, abs=1e-6)
    assert out["VEHICLE_LEVEL_1"]["APH"] == pytest.approx(0.1635396, abs=1e-6)
    assert out["PEDESTRIAN_LEVEL_2"]["AP"] == pytest.approx(0.1251360, abs=1e-6)
    assert out["PEDESTRIAN_LEVEL_2"]["APH"] == pytest.approx(0.0953438, abs=1e-6)
    assert out["counts"]["gt_dropped_zero_points"] == 105


def test_garbage_and_bad_objects_give_data_errors(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xff\xff\xff not a proto")
    with pytest.raises(DataError, match="bad.bin"):
        read_ground_truth(bad)
    with pytest.raises(DataError, match="cannot read"):
        read_ground_truth(tmp_path / "missing.bin")
    from waymo_open_dataset.protos import metrics_pb2
    objects = metrics_pb2.Objects()
    o = objects.objects.add()
    o.object.box.length, o.object.box.width, o.object.box.height = 1, 1, float("nan")
    o.object.type = 1
    o.context_name, o.frame_timestamp_micros = "s", 5
    (tmp_path / "nan.bin").write_bytes(objects.SerializeToString())
    with pytest.raises(DataError, match="non-finite"):
        read_ground_truth(tmp_path / "nan.bin")
    o.object.box.height = -1.0
    (tmp_path / "size.bin").write_bytes(objects.SerializeToString())
    with pytest.raises(DataError, match="non-positive size"):
        read_predictions(tmp_path / "size.bin")


def test_box_table_round_trip(tmp_path):
    gts, preds, ids = synthetic_tracks(3, 6, salt=2.0)
    box_table.save_ground_truth_table(tmp_path / "gt.npz", gts)
    box_table.save_prediction_table(tmp_path / "pred.npz", preds, track_ids=ids)
    g = box_table.load_ground_truth_table(tmp_path / "gt.npz")
    p = box_table.load_prediction_table(tmp_path / "pred.npz")
    a = evaluate_detection(g.frames, p.frames).to_json()
    b = evaluate_detection(gts, preds).to_json()
    assert a == b
    k = sorted(ids)[0]
    assert (p.track_ids[k] == ids[k]).all()
    with pytest.raises(DataError, match="scores"):
        box_table.load_prediction_table(tmp_path / "gt.npz")


def test_cli_writes_table_json_and_plots(tmp_path, capsys):
    gts, preds, ids = synthetic_tracks(5, 6, salt=3.0, drop_every=4)
    write_ground_truth(tmp_path / "gt.bin", gts)
    write_predictions(tmp_path / "pred.bin", preds, track_ids=ids)
    out = tmp_path / "report"
    rc = main(["eval", "--gt", str(tmp_path / "gt.bin"), "--pred", str(tmp_path / "pred.bin"),
               "--format", "waymo", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "VEHICLE" in printed and "MOTA" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert TOP_KEYS <= set(metrics)
    assert set(metrics["VEHICLE_LEVEL_1"]) == {"AP", "APH"}
    assert metrics["tracking"]["VEHICLE_LEVEL_2"]["num_misses"] > 0
    for cls in ("VEHICLE", "PEDESTRIAN", "CYCLIST"):
        assert (out / f"pr_{cls}.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_ours_format_without_ids_has_no_tracking(tmp_path, capsys):
    k = key(0)
    box_table.save_ground_truth_table(tmp_path / "gt.npz", {k: gt([box(10)], [VEH])})
    box_table.save_prediction_table(tmp_path / "p.npz", {k: det(k, [box(10)], [VEH], [0.9])})
    rc = main(["eval", "--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "p.npz"),
               "--out", str(tmp_path / "o"), "--no-plots"])
    assert rc == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["VEHICLE_LEVEL_1"]["AP"] == pytest.approx(1.0)
    assert "tracking" not in metrics and "MOTA" not in capsys.readouterr().out


def test_tables_are_written_atomically_with_the_npz_suffix(tmp_path):
    k = key(0)
    box_table.save_prediction_table(tmp_path / "p", {k: det(k, [box(10)], [VEH], [0.9])})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p.npz"]  # no temporary left
    assert len(box_table.load_prediction_table(tmp_path / "p.npz").frames) == 1


def test_cli_errors(tmp_path, capsys):
    assert main(["eval"]) == 1
    assert "both --gt GT and --pred PRED" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "model.yaml"), str(tmp_path / "model.ckpt")]) == 1
    assert "config file not found" in capsys.readouterr().err
    assert main(["eval", "model.yaml", "model.ckpt", "--gt", "g.npz"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["eval", "--gt", str(tmp_path / "none.bin"), "--pred",
                 str(tmp_path / "none.bin")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_cli_skips_tracking_with_a_warning_on_duplicate_gt_ids(tmp_path, caplog):
    k = key(0)
    write_ground_truth(tmp_path / "gt.bin", {k: gt([box(10), box(30)], [VEH, VEH],
                                                   ids=["a", "a"], num_points=[50, 50])})
    write_predictions(tmp_path / "p.bin", {k: det(k, [box(10)], [VEH], [0.9])},
                      track_ids={k: np.array([4])})
    rc = main(["eval", "--gt", str(tmp_path / "gt.bin"), "--pred", str(tmp_path / "p.bin"),
               "--out", str(tmp_path / "o"), "--no-plots"])
    assert rc == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["VEHICLE_LEVEL_2"]["AP"] == pytest.approx(0.5, abs=1e-6)
    assert "tracking" not in metrics
    assert "tracking metrics skipped" in caplog.text


def test_ground_truth_without_ids_reads_ids_as_none(tmp_path):
    k = key(0)
    write_ground_truth(tmp_path / "gt.bin", {k: gt([box(10)], [VEH], num_points=[9])})
    assert read_ground_truth(tmp_path / "gt.bin").frames[k].ids is None
