"""Training: targets, losses, the (torchrun DDP) trainer and checkpoints."""
