"""One torchrun worker for test_training: train a few DDP steps, then write a digest of its weights."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch.distributed as dist

from astra_ros.data.bags import read_bag
from astra_ros.model.config import AstraConfig
from astra_ros.training.trainer import Trainer, TrainSettings


def main() -> None:
    bag, run = sys.argv[1], Path(sys.argv[2])
    run.mkdir(parents=True, exist_ok=True)
    cfg = AstraConfig.preset("tiny")
    episodes, _ = read_bag(bag, size=cfg.image_size)
    trainer = Trainer(
        cfg, episodes, [], run, TrainSettings(batch_size=2, steps=3, device="cpu", precision="fp32"), {}
    )
    trainer.train()
    digest = hashlib.sha256()
    for key, value in sorted(trainer.model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    (run / f"rank{trainer.rank}.sha256").write_text(digest.hexdigest())
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
