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
