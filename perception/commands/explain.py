"""``perception explain [CONFIG_OR_WEIGHTS] [--frames N]``: what each sensor contributed to
each detection, over simulated frames (docs/explain.md).

CONFIG_OR_WEIGHTS is a checkpoint or weights file, or an experiment YAML whose
``train.out_dir/checkpoints/last.pt`` is used; without it, the shipped model. Prints the
per-class, per-range summary of the Shapley shares and writes one picture per frame
(``explain_<k>.png``, heat map per sensor and the shares of the top detections) and
``explain_summary.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import ConfigError

DEFAULT_OUT = Path("outputs/explain")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="per-modality contributions (Shapley shares) and heat "
                                       "maps of a fusion detector's detections",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", type=Path, metavar="CONFIG_OR_WEIGHTS",
                   help="checkpoint, weights file or experiment YAML (default: the shipped "
                        "model)")
    p.add_argument("--frames", type=int, default=10, help="simulated frames (default: 10)")
    p.add_argument("--preset", default="nuscenes_like", help="simulator preset")
    p.add_argument("--seed", type=int, default=2024, help="scenario seed")
    p.add_argument("--pictures", type=int, default=3, metavar="N",
                   help="pictures of the N frames with the most detections (default: 3)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"output directory (default: {DEFAULT_OUT})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def weights_path(model: Path | None) -> Path | None:
    """The file to load for CONFIG_OR_WEIGHTS (None: the shipped model)."""
    if model is None:
        return None
    if model.suffix in (".yaml", ".yml"):
        from ..train.config import load_experiment

        config = load_experiment(model)
        path = Path(config.train.out_dir) / "checkpoints" / "last.pt"
        if not path.is_file():
            raise ConfigError(f"{model}: no trained checkpoint at {path}; train it with "
                              f"`perception train {model}` or give a weights file")
        return path
    return model


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.sim import Simulator
    from ..explain import explain_frame, format_summary, summarize
    from ..pipeline import Pipeline
    from ..viz.explain import plot_explanation

    if args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    pipeline = Pipeline.from_checkpoint(weights_path(args.model), track=False)
    sim = Simulator(args.preset, seed=args.seed)
    step = max(1, int(round(sim.lidar.cfg.rate_hz / 10.0)))
    explanations = []
    frames = (sim.frame(k * step) for k in range(args.frames))
    for output in tqdm(pipeline.run(frames), total=args.frames, unit="frame",
                       desc="detect + explain", disable=args.no_progress):
        explanations.append(explain_frame(pipeline.detector, output.model_input))
    rows = summarize(explanations)
    print(format_summary(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    busiest = sorted(range(len(explanations)), key=lambda i: -len(explanations[i].detections))
    grid = pipeline.detector.config.grid.point_range_m
    for k in sorted(busiest[:max(0, args.pictures)]):
        path = plot_explanation(args.out / f"explain_{k:03d}.png", explanations[k], grid,
                                title=f"frame {k}")
        print(f"frame {k}: {len(explanations[k].detections)} detections -> {path}")
    summary = [{**asdict(r), "object_class": r.object_class.name,
                "mean_share": {m.value: v for m, v in r.mean_share.items()}} for r in rows]
    write_text_atomic(args.out / "explain_summary.json", json.dumps(summary, indent=2))
    return 0
