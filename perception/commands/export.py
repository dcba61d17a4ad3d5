"""``perception export WEIGHTS_OR_CONFIG OUT_DIR [--opset 17] [--fp16]``: the dense parts of a
detector as ONNX files plus ``export.json`` (docs/export.md).

WEIGHTS_OR_CONFIG is a checkpoint or weights file, ``shipped`` for the shipped model, or an
experiment YAML: its trained ``train.out_dir/checkpoints/last.pt`` when there is one, else a
randomly initialised network of that config (to check a deployment path before training).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("perception.export")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a detector's dense parts as ONNX files with "
                                      "export.json", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="WEIGHTS_OR_CONFIG",
                   help="checkpoint or weights file, experiment YAML, or 'shipped'")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output directory")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset, 17 to 21 (default: 17, perception.export.DEFAULT_OPSET)")
    p.add_argument("--fp16", action="store_true",
                   help="float16 graphs (inputs and outputs float16, for GPU runtimes)")
    p.set_defaults(func=run)


def _load(model: str):
    """(detector, weights path or None, model card or None, sweeps, scans)."""
    from ..models.checkpoint import read_detector
    from ..models.shipped import DEFAULT_MODEL, hashed_card, shipped_weights_path

    if model == "shipped":
        path = shipped_weights_path(verify=True)
        card = hashed_card(DEFAULT_MODEL)
        loaded = read_detector(path)
        return loaded.model, path, card, loaded.lidar_sweeps, loaded.radar_scans
    path = Path(model)
    if path.suffix in (".yaml", ".yml"):
        from ..models.detector import build_detector
        from ..train.config import load_experiment

        config = load_experiment(path)
        trained = Path(config.train.out_dir) / "checkpoints" / "last.pt"
        if not trained.is_file():
            log.warning("%s: no trained checkpoint at %s; exporting a randomly initialised "
                        "network (for checking a deployment path only)", path, trained)
            sweeps = config.data.lidar_sweeps if config.model.lidar is not None else 1
            scans = config.data.radar_scans if config.model.radar is not None else 1
            return build_detector(config.model).eval(), None, None, sweeps, scans
        path = trained
    loaded = read_detector(path)
    return loaded.model, path, None, loaded.lidar_sweeps, loaded.radar_scans


def run(args: argparse.Namespace) -> int:
    from ..export import DEFAULT_OPSET, export_onnx

    model, weights, card, sweeps, scans = _load(args.model)
    result = export_onnx(model, args.out_dir, opset=args.opset or DEFAULT_OPSET, fp16=args.fp16,
                         weights_path=weights, model_card=card, lidar_sweeps=sweeps,
                         radar_scans=scans)
    manifest = result.manifest
    print(f"wrote {len(manifest['graphs'])} ONNX graphs (opset {manifest['opset']}, "
          f"{manifest['dtype']}) and export.json to {result.out_dir}")
    for name, graph in manifest["graphs"].items():
        ins = ", ".join(f"{i['name']}{i['shape']}" for i in graph["inputs"])
        outs = ", ".join(f"{o['name']}{o['shape']}" for o in graph["outputs"])
        print(f"  {graph['file']}: {ins} -> {outs}")
    if manifest["torch_parts"]:
        print(f"  {manifest['torch_parts']['file']}: "
              f"{', '.join(manifest['torch_parts']['modules'])} (run in torch)")
    return 0
