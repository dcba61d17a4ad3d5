"""``perception train CONFIG``: train a detector from ``configs/models/<name>.yaml``.

``--nproc-per-node N`` (N > 1) relaunches this command under ``torchrun`` (``python -m
torch.distributed.run``) with N processes on this node: nccl on GPUs, gloo on the CPU.
Multi-node jobs call torchrun directly, e.g.
``torchrun --nnodes 2 --node-rank R --master-addr HOST --nproc-per-node 8 -m perception.cli
train CONFIG``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("perception.train")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector (torchrun DDP with --nproc-per-node)",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, metavar="CONFIG", help="experiment YAML")
    p.add_argument("--out", type=Path, metavar="DIR", help="output directory (default: "
                   "train.out_dir of the config)")
    p.add_argument("--resume", type=Path, metavar="CKPT", help="resume from a checkpoint")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--max-steps-per-epoch", type=int, help="override "
                   "train.max_steps_per_epoch")
    p.add_argument("--seed", type=int, help="override train.seed (to measure how far the "
                   "same config moves between runs)")
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="processes on this node (> 1: relaunch under torchrun)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    p.add_argument("--prepare-data", action="store_true",
                   help="only generate and cache the training and validation frames, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.nproc_per_node < 1:
        raise ConfigError(f"--nproc-per-node: expected >= 1, got {args.nproc_per_node}")
    if not args.config.is_file():
        raise ConfigError(f"{args.config}: config file not found")
    if args.prepare_data:
        return _prepare_data(args)
    if args.nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        return _relaunch_under_torchrun(args)
    return _train(args)


def _prepare_data(args: argparse.Namespace) -> int:
    """Read every item once (the simulator source caches what it generates): the frame and
    the earlier frames its extra radar scans and lidar sweeps come from, which would otherwise
    be generated in the first epoch and the first evaluation, by every run at once."""
    from tqdm import tqdm

    from ..train.config import load_experiment
    from ..train.data import build_dataset

    config = load_experiment(args.config)
    for split in ("train", "val"):
        dataset = build_dataset(config.data, split)
        for i in tqdm(range(len(dataset)), desc=f"{split} frames", dynamic_ncols=True):
            dataset[i]
        print(f"{split}: {len(dataset)} frames ready")
    return 0


def _relaunch_under_torchrun(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={args.nproc_per_node}", "-m", "perception.cli", "train",
            str(args.config), "--nproc-per-node", str(args.nproc_per_node)]
    for flag, value in (("--out", args.out), ("--resume", args.resume),
                        ("--epochs", args.epochs),
                        ("--max-steps-per-epoch", args.max_steps_per_epoch),
                        ("--seed", args.seed)):
        if value is not None:
            argv += [flag, str(value)]
    if args.cpu:
        argv.append("--cpu")
    log.info("relaunching: %s", " ".join(argv))
    return subprocess.call(argv)


def _train(args: argparse.Namespace) -> int:
    from ..train.config import load_experiment
    from ..train.ddp import cleanup, init_distributed
    from ..train.trainer import Trainer

    config = load_experiment(args.config)
    train = config.train
    if args.epochs is not None:
        train = dataclasses.replace(train, epochs=args.epochs)
    if args.max_steps_per_epoch is not None:
        train = dataclasses.replace(train, max_steps_per_epoch=args.max_steps_per_epoch)
    if args.seed is not None:
        train = dataclasses.replace(train, seed=args.seed)
    if args.out is not None:
        train = dataclasses.replace(train, out_dir=str(args.out))
    config = dataclasses.replace(config, train=train)
    info = init_distributed(prefer_cuda=not args.cpu)
    try:
        trainer = Trainer(config, info=info)
        result = trainer.fit(resume=args.resume)
    except BaseException:
        cleanup(synchronize=False)
        raise
    cleanup()
    if info.is_main:
        print(f"trained {len(result.epochs)} epoch(s); checkpoint: {result.checkpoint}")
        if result.metrics:
            for name in ("VEHICLE_LEVEL_1", "PEDESTRIAN_LEVEL_1", "CYCLIST_LEVEL_1"):
                m = result.metrics.get(name)
                if m:
                    print(f"{name}: AP {m['AP']:.4f} APH {m['APH']:.4f}")
    return 0
