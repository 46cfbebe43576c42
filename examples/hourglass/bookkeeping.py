"""What a training process keeps besides the model: processes, data order, weight
average, log, checkpoints and the AP curve."""

from __future__ import annotations

import copy
import csv
import os
import sys
from pathlib import Path

import numpy as np
import torch


def setup_distributed(device_arg: str | None):
    """Initialise torch.distributed under torchrun; return (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_arg is None else device_arg.startswith("cuda")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, device


class Sampler(torch.utils.data.Sampler):
    """Endless (or epoch-cycling) index stream, strided over ranks, resumable."""

    def __init__(self, length: int, rank: int, world: int, start: int, shuffle_seed: int | None):
        self.length, self.rank, self.world, self.start = length, rank, world, start
        self.shuffle_seed = shuffle_seed

    def __iter__(self):
        i = self.start + self.rank
        while True:
            if self.shuffle_seed is None:
                yield i
            else:
                epoch, j = divmod(i, self.length)
                perm = np.random.default_rng([self.shuffle_seed, epoch]).permutation(self.length)
                yield int(perm[j])
            i += self.world


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers.

    ``decay`` ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates, so
    the average does not remember the random initialisation; integer buffers (BatchNorm's
    step counters) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].lerp_(v.detach(), 1.0 - d)
            else:
                self.state[k].copy_(v)

    def model(self, like: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``like`` holding the averaged weights (for evaluation)."""
        averaged = copy.deepcopy(like)
        averaged.load_state_dict(self.state)
        return averaged


class Logger:
    """CSV log (always) and TensorBoard (optional)."""

    def __init__(self, output: Path, tensorboard: bool, resume: bool):
        self.path = output / "log.csv"
        self.fields = [
            "step",
            "images",
            "minutes",
            "lr",
            "loss",
            "heatmap",
            "pull",
            "push",
            "images_per_s",
        ]
        new = not (resume and self.path.exists())
        self.file = open(self.path, "w" if new else "a", newline="")  # noqa: SIM115
        self.writer = csv.DictWriter(self.file, self.fields)
        if new:
            self.writer.writeheader()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(output / "tensorboard"))
            except ImportError:
                print("tensorboard is not installed: CSV log only", file=sys.stderr)

    def log(self, row: dict) -> None:
        self.writer.writerow({k: row.get(k) for k in self.fields})
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step",) and v is not None:
                    self.tb.add_scalar(f"train/{k}", v, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def save_checkpoint(
    path: Path, model, optimizer, scaler, state: dict, config, args, ema=None
) -> None:
    raw = getattr(model, "module", model)
    raw = getattr(raw, "_orig_mod", raw)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": raw.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "ema": ema.state if ema is not None else None,
            "ema_updates": ema.updates if ema is not None else 0,
            "state": state,
            "config": config.to_dict(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        },
        tmp,
    )
    os.replace(tmp, path)


def write_curve(output: Path, curve: list[dict]) -> None:
    """AP vs time as CSV and PNG."""
    if not curve:
        return
    with open(output / "ap_curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(curve[0]))
        w.writeheader()
        w.writerows(curve)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    t = [c["minutes"] for c in curve]
    for key, style in (("AP", "o-"), ("AP50", "s--"), ("AP75", "^--")):
        ax.plot(t, [c[key] for c in curve], style, label=key, ms=4)
    ax.set_xlabel("wall-clock minutes")
    ax.set_ylabel("COCO OKS AP (held-out synthetic)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output / "ap_curve.png")
    plt.close(fig)
