"""One DDP training step per rank (run by tests/train/test_ddp.py under torchrun).

Usage: ``python -m torch.distributed.run --standalone --nproc-per-node 2 ddp_step.py OUT``.
Each rank seeds differently (so the initial weights differ until DDP broadcasts rank 0's),
trains on its own shard of frames, and writes its parameters to ``OUT/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from perception.data.sim import Simulator
from perception.models.config import (
    BackboneConfig,
    GridConfig,
    HeadConfig,
    LidarConfig,
    ModelConfig,
    RadarConfig,
)
from perception.train.config import AugmentConfig, ExperimentConfig, TrainConfig
from perception.train.data import FrameDataset
from perception.train.ddp import cleanup, init_distributed
from perception.train.trainer import Trainer


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = init_distributed(prefer_cuda=False)
    assert info.world_size == 2 and info.backend == "gloo", info
    frames = list(Simulator("tiny", seed=0).frames(4))
    model = ModelConfig(
        grid=GridConfig(point_range_m=(-25.6, -25.6, -3.0, 25.6, 25.6, 3.0),
                        cell_size_m=(0.8, 0.8)),
        lidar=LidarConfig(pillar_channels=(16,)), radar=RadarConfig(pillar_channels=(8,)),
        backbone=BackboneConfig(layer_nums=(1,), layer_strides=(1,), channels=(16,),
                                upsample_channels=(16,)),
        head=HeadConfig(head_channels=16))
    config = ExperimentConfig(model=model, augment=AugmentConfig(enabled=True),
                              train=TrainConfig(out_dir=str(out), epochs=1, batch_size=1,
                                                lr=0.01, tensorboard=False, progress=False,
                                                eval_every_epochs=0))
    trainer = Trainer(config, info=info, train_set=FrameDataset(lambda i: frames[i], 4))
    # Drop radar on rank 1 only: DDP must cope with a branch unused by one rank.
    batches = iter(trainer.loader)
    for _ in range(2):
        batch = next(batches)
        if info.rank == 1:
            batch = batch.without({"radar"})
        trainer.train_step(batch)
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save({"params": state, "seen": batch.stamps_ns}, out / f"rank{info.rank}.pt")
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
