"""``perception train`` argument and config errors: one line, exit code 1."""

from __future__ import annotations

from perception.cli import main


def test_train_missing_config(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err


def test_train_bad_config_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {lidar: {encoder: voxels}}\n")
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert "model.lidar.encoder" in err and str(path) in err


def test_train_bad_process_count(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text("model: {lidar: {}}\n")
    assert main(["train", str(path), "--nproc-per-node", "0"]) == 1
    assert "--nproc-per-node" in capsys.readouterr().err


def test_train_is_listed_in_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_prepare_data_caches_every_frame(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    cache = tmp_path / "cache"
    path.write_text("model: {lidar: {}}\n"
                    f"data: {{sim_preset: tiny, train_seeds: [0, 1], val_seeds: [9], "
                    f"frames_per_seed: 2, frame_stride: 3, cache_dir: {cache}}}\n")
    assert main(["train", str(path), "--prepare-data"]) == 0
    out = capsys.readouterr().out
    assert "train: 4 frames ready" in out and "val: 2 frames ready" in out
    names = sorted(str(p.relative_to(cache).as_posix()).split("/", 1)[1]
                   for p in cache.rglob("*.npz"))
    assert names == ["seed0/000000.npz", "seed0/000003.npz", "seed1/000000.npz",
                     "seed1/000003.npz", "seed9/000000.npz", "seed9/000003.npz"]


def test_prepare_data_caches_the_frames_of_extra_radar_scans(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    cache = tmp_path / "cache"
    path.write_text("model: {lidar: {}, radar: {}}\n"
                    f"data: {{sim_preset: tiny, train_seeds: [0], val_seeds: [9], "
                    f"frames_per_seed: 2, frame_stride: 3, radar_scans: 2, "
                    f"cache_dir: {cache}}}\n")
    assert main(["train", str(path), "--prepare-data"]) == 0
    assert "train: 2 frames ready" in capsys.readouterr().out
    names = sorted(str(p.relative_to(cache).as_posix()).split("/", 1)[1]
                   for p in cache.rglob("*.npz"))
    # frame 3's second radar scan is frame 2's, as a live stream delivers it
    assert names == ["seed0/000000.npz", "seed0/000002.npz", "seed0/000003.npz",
                     "seed9/000000.npz", "seed9/000002.npz", "seed9/000003.npz"]


def _tiny_experiment(tmp_path, cache, out_dir, pillar_channels=16, dropout=0.0):
    path = tmp_path / f"exp{pillar_channels}_{dropout}.yaml"
    path.write_text(
        "model:\n"
        "  grid: {point_range_m: [-25.6, -25.6, -3.0, 25.6, 25.6, 3.0], cell_size_m: [0.8, 0.8]}\n"
        f"  lidar: {{pillar_channels: [{pillar_channels}]}}\n"
        "  radar: {pillar_channels: [8]}\n"
        f"  fuser: {{out_channels: 16, modality_dropout: {dropout}}}\n"
        "  backbone: {layer_nums: [1, 1], layer_strides: [1, 2], channels: [16, 32],"
        " upsample_channels: [16, 16]}\n"
        "  head: {head_channels: 16}\n"
        f"data: {{sim_preset: tiny, train_seeds: [0], val_seeds: [9], frames_per_seed: 2,"
        f" cache_dir: {cache}}}\n"
        f"train: {{out_dir: {out_dir}, epochs: 1, eval_every_epochs: 0, tensorboard: false,"
        f" progress: false}}\n")
    return path


def test_eval_config_checkpoint_reports_every_ablation(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    config = _tiny_experiment(tmp_path, tmp_path / "cache", run)
    assert main(["train", str(config)]) == 0
    ckpt = run / "checkpoints" / "last.pt"
    assert main(["eval", str(config), str(ckpt), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "| all |" in out and "| without_lidar |" in out and "| without_radar |" in out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics) == {"all", "without_lidar", "without_radar"}
    for row in metrics.values():
        assert 0.0 <= row["VEHICLE_LEVEL_1"]["AP"] <= 1.0

    # Looser IoU thresholds can only match more: AP never drops.
    assert main(["eval", str(config), str(ckpt), "--no-ablations", "--iou", "0.1", "0.1", "0.1",
                 "--out", str(tmp_path / "loose")]) == 0
    loose = json.loads((tmp_path / "loose" / "metrics.json").read_text())
    assert set(loose) == {"all"}
    for key in ("VEHICLE_LEVEL_1", "PEDESTRIAN_LEVEL_1", "CYCLIST_LEVEL_1"):
        assert loose["all"][key]["AP"] >= metrics["all"][key]["AP"] - 1e-9
    assert main(["eval", str(config), str(ckpt), "--iou", "0", "0.5", "0.5"]) == 1
    assert "--iou" in capsys.readouterr().err

    # Training-only settings (modality dropout) may differ: the network is the same.
    relaxed = _tiny_experiment(tmp_path, tmp_path / "cache", run, dropout=0.4)
    assert main(["eval", str(relaxed), str(ckpt), "--no-ablations"]) == 0
    capsys.readouterr()

    # A config whose model differs from the checkpoint's is refused, not silently used.
    other = _tiny_experiment(tmp_path, tmp_path / "cache", run, pillar_channels=8)
    assert main(["eval", str(other), str(ckpt)]) == 1
    assert "differs" in capsys.readouterr().err
    assert main(["eval", str(config)]) == 1
    assert "CKPT" in capsys.readouterr().err


def test_seed_flag_overrides_the_training_seed(tmp_path):
    from perception.models.checkpoint import load_checkpoint_file

    run = tmp_path / "seeded"
    config = _tiny_experiment(tmp_path, tmp_path / "cache", tmp_path / "unused")
    assert main(["train", str(config), "--seed", "3", "--out", str(run),
                 "--max-steps-per-epoch", "1"]) == 0
    state = load_checkpoint_file(run / "checkpoints" / "last.pt")
    assert state["config"]["train"]["seed"] == 3
    assert not (tmp_path / "unused").exists()
