"""Train the stacked hourglass with associative embedding, end to end.

Demo (no GPU, no data; trains the ``tiny`` preset on synthetic crowds within a time
budget, evaluates on held-out synthetic images and ends by printing ``AP <value>``)::

    python examples/hourglass/train.py --preset tiny --data synthetic --output DIR

COCO (pycocotools; person_keypoints_*.json + images folder)::

    torchrun --nproc_per_node 8 examples/hourglass/train.py --preset paper --data coco \\
        --train-json annotations/person_keypoints_train2017.json --train-images train2017 \\
        --val-json annotations/person_keypoints_val2017.json --val-images val2017 --output DIR

Loss per stack (intermediate supervision, averaged over stacks as pose-ae-train
does): ``heatmap_weight * ae.HeatmapLoss + tag_weight * (pull + push)`` with
``ae.AssociativeEmbeddingLoss`` and targets from ``ae.render_heatmaps``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from data import collate
from model import PRESETS, HourglassConfig, PoseNet, split_outputs

import associative_embedding as ae


@dataclass(frozen=True)
class TrainDefaults:
    """Optimisation defaults of a preset (command-line flags override them)."""

    batch_size: int
    lr: float
    lr_final: float
    lr_drop: float  # "step" schedule: fraction of the run after which lr = lr_final
    lr_schedule: str  # "step" (pose-ae-train: lr, then lr_final) or "cosine" (lr -> lr_final)
    warmup_steps: int
    ema: float  # decay of the weights' exponential moving average used for evaluation (0: off)
    tag_weight: float
    push: str  # "exp" (pose-ae-train, HigherHRNet) or "margin" (HigherHRNet 'max', CornerNet)
    heatmap_weight: float
    positive_weight: float
    sigma: float | None  # heatmap Gaussian sigma in output pixels; None: library default
    render: str  # ae.render_heatmaps method: "reference" (pose-ae-train) or "exact" (sub-pixel)
    project: bool  # decode at input resolution (maps upsampled), HigherHRNet's PROJECT2IMAGE
    detection_threshold: float  # ae.decode's detection threshold (library default 0.1)
    subpixel: str  # "quarter" (ae.decode's adjust, the references) or "dark" (Poses.refine_dark)
    minutes: float | None  # time budget (training + periodic evaluation)
    steps: int | None
    eval_every: float  # minutes between held-out evaluations (synthetic)
    eval_images: int
    final_eval_images: int


TRAIN_DEFAULTS: dict[str, TrainDefaults] = {
    # pose-ae-train: Adam 2e-4, batch 32, 1e-3 x (pull + push), lr 1e-5 late in training
    "paper": TrainDefaults(
        batch_size=32,
        lr=2e-4,
        lr_final=1e-5,
        lr_drop=0.8,
        lr_schedule="step",
        warmup_steps=0,
        ema=0.0,
        tag_weight=1e-3,
        push="exp",
        heatmap_weight=1.0,
        positive_weight=0.0,
        sigma=None,
        render="reference",
        project=False,
        detection_threshold=0.1,
        subpixel="quarter",
        minutes=None,
        steps=250_000,
        eval_every=60.0,
        eval_images=200,
        final_eval_images=500,
    ),
    # Reasons for each departure: examples/hourglass/README.md ("The tiny preset").
    "tiny": TrainDefaults(
        batch_size=8,
        lr=3e-3,
        lr_final=2e-4,
        lr_drop=0.8,
        lr_schedule="step",
        warmup_steps=50,
        ema=0.0,
        tag_weight=1e-1,
        push="margin",
        heatmap_weight=1.0,
        positive_weight=16.0,
        sigma=2.0,
        render="exact",
        project=True,
        detection_threshold=0.6,
        subpixel="dark",
        minutes=14.0,
        steps=None,
        eval_every=2.0,
        eval_images=64,
        final_eval_images=300,
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--data", choices=("synthetic", "coco"), default="synthetic")
    p.add_argument("--output", type=Path, required=True, help="folder for logs, checkpoints, PNGs")
    p.add_argument("--train-json"), p.add_argument("--train-images")
    p.add_argument("--val-json"), p.add_argument("--val-images")
    g = p.add_argument_group("schedule (defaults from the preset)")
    g.add_argument("--minutes", type=float, help="wall-clock budget for training (0: none)")
    g.add_argument("--steps", type=int, help="maximum optimiser steps")
    g.add_argument("--batch-size", type=int, help="images per step and process")
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-final", type=float)
    g.add_argument("--lr-drop", type=float, help="fraction of the run after which lr = lr-final")
    g.add_argument(
        "--lr-schedule",
        choices=("step", "cosine"),
        help="step: lr until --lr-drop, then --lr-final; cosine: lr decays to --lr-final",
    )
    g.add_argument("--warmup-steps", type=int)
    g.add_argument(
        "--ema",
        type=float,
        help="evaluate an exponential moving average of the weights with this decay (0: off)",
    )
    g.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g = p.add_argument_group("loss")
    g.add_argument("--tag-weight", type=float, help="weight of pull + push (paper 1e-3)")
    g.add_argument("--push", choices=("exp", "margin"), help="push penalty of the grouping loss")
    g.add_argument("--heatmap-weight", type=float)
    g.add_argument("--sigma", type=float, help="heatmap sigma in output pixels")
    g.add_argument(
        "--render",
        choices=("reference", "exact"),
        help="heatmap targets at the truncated pixel (reference) or sub-pixel (exact)",
    )
    g.add_argument(
        "--positive-weight", type=float, help="heatmap MSE weight 1 + w * target (0: plain MSE)"
    )
    g = p.add_argument_group("model overrides")
    g.add_argument("--input-size", type=int)
    g.add_argument("--nstack", type=int)
    g.add_argument("--inp-dim", type=int)
    g.add_argument("--increase", type=int)
    g.add_argument("--depth", type=int)
    g.add_argument("--stem-stride", type=int, choices=(2, 4))
    g.add_argument(
        "--head-upsample",
        type=int,
        choices=(1, 2),
        help="2: hourglasses at 1/4 and a final head predicting at 1/2 (needs --stem-stride 4)",
    )
    g.add_argument("--tag-dim", type=int)
    g.add_argument("--bn", choices=("on", "off"))
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-every", type=float, help="minutes between held-out evaluations")
    g.add_argument("--eval-images", type=int, help="held-out images per periodic evaluation")
    g.add_argument("--final-eval-images", type=int, help="held-out images for the final AP")
    g.add_argument(
        "--project",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode at input resolution (default: the preset's choice)",
    )
    g.add_argument("--detection-threshold", type=float, help="decoder detection threshold")
    g.add_argument(
        "--subpixel",
        choices=("quarter", "dark"),
        help="sub-pixel placement of decoded joints: the references' quarter-pixel rule or "
        "DARK (Poses.refine_dark)",
    )
    g.add_argument("--no-final-eval", action="store_true")
    g = p.add_argument_group("system")
    g.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    g.add_argument(
        "--amp",
        choices=("auto", "none", "bf16", "fp16"),
        default="auto",
        help="autocast dtype (auto: bf16 if supported, on CUDA else fp16; on a CPU bf16 only "
        "where it runs natively, else float32)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from a checkpoint (default: OUTPUT/checkpoint.pt)",
    )
    g.add_argument("--checkpoint-every", type=float, default=5.0, help="minutes")
    g.add_argument("--log-every", type=int, default=10, help="steps between log rows")
    g.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[HourglassConfig, argparse.Namespace]:
    """Fill unset flags from the preset; return the network config and the settings."""
    d = TRAIN_DEFAULTS[args.preset]
    for f in d.__dataclass_fields__:
        if getattr(args, f, None) is None:
            setattr(args, f, getattr(d, f))
    if args.minutes == 0:
        args.minutes = None
    config = PRESETS[args.preset]
    overrides = {
        k: getattr(args, k)
        for k in (
            "input_size",
            "nstack",
            "inp_dim",
            "increase",
            "depth",
            "stem_stride",
            "head_upsample",
            "tag_dim",
        )
        if getattr(args, k) is not None
    }
    if args.bn is not None:
        overrides["bn"] = args.bn == "on"
    return config.replace(**overrides), args


# --------------------------------------------------------------------------- distributed


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


# --------------------------------------------------------------------------- training


def compute_loss(outputs, batch, config, criteria, args, device):
    """Loss summed over the parts, averaged over stacks; returns (total, parts dict)."""
    heatmap_loss, tag_loss = criteria
    out_size = (outputs.shape[-2], outputs.shape[-1])
    keypoints = batch["keypoints"].to(device)
    # continuous input pixels -> continuous output pixels (pixel (i, j) covers [j, j+1))
    kp_out = ae.scale_keypoints(keypoints, (config.input_size,) * 2, out_size)
    # "reference": peak at the pixel that contains the joint; "exact": the Gaussian at the
    # joint's sub-pixel position (pixel centres at +0.5, the library's convention)
    target = ae.render_heatmaps(kp_out, out_size, sigma=args.sigma, method=args.render)
    mask = batch["mask"].to(device) if batch["mask"] is not None else None
    if args.positive_weight:
        # weighted MSE: pixels under a target Gaussian count (1 + w * target) times
        weight = 1 + args.positive_weight * target
        mask = weight if mask is None else weight * mask[:, None]
    hm_sum = pull_sum = push_sum = 0.0
    nstack = outputs.shape[1]
    for s in range(nstack):
        hm, tg = split_outputs(outputs[:, s].float(), config.num_joints, config.tag_dim)
        hm_sum = hm_sum + heatmap_loss(hm, target, mask)
        # tags are read at the pixel that contains the joint (the loss's default)
        pull, push = tag_loss(tg, kp_out)
        pull_sum, push_sum = pull_sum + pull, push_sum + push
    hm_l, pull_l, push_l = hm_sum / nstack, pull_sum / nstack, push_sum / nstack
    total = args.heatmap_weight * hm_l + args.tag_weight * (pull_l + push_l)
    return total, {"heatmap": hm_l.detach(), "pull": pull_l.detach(), "push": push_l.detach()}


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """Autocast dtype for training: "none", "bf16" or "fp16".

    ``auto`` picks bf16 on CUDA when supported (else fp16 with a gradient scaler), and
    bf16 on a CPU that computes it natively (1.8x faster steps on an AVX512-BF16 core;
    emulated bf16 would be slower than float32, so other CPUs train in float32).
    Evaluation always runs in float32 on the CPU.
    """
    if device.type == "cuda":
        if amp == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return amp
    if amp == "fp16":
        raise SystemExit("--amp fp16 needs CUDA; use bf16 or none on the CPU")
    if amp == "auto":
        return "bf16" if cpu_bf16_supported() else "none"
    return amp


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


def learning_rate(args, step: int, progress: float) -> float:
    """Learning rate at ``step``; ``progress`` in [0, 1] is the fraction of the budget used."""
    if args.lr_schedule == "cosine":
        cos = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        lr = args.lr_final + (args.lr - args.lr_final) * cos
    else:
        lr = args.lr if progress < args.lr_drop else args.lr_final
    if args.warmup_steps and step < args.warmup_steps:
        lr *= (step + 1) / args.warmup_steps
    return lr


def make_loader(args, config, rank, world, start_index, device):
    if args.data == "synthetic":
        from data.synthetic import SyntheticPeople

        # training images come from seed 1000 + args.seed; held-out sets use seeds 1, 2
        dataset = SyntheticPeople(seed=1000 + args.seed, size=config.input_size)
        sampler = Sampler(len(dataset), rank, world, start_index, None)
    else:
        from data.coco import CocoKeypoints

        if not (args.train_json and args.train_images):
            raise SystemExit("--data coco needs --train-json and --train-images")
        dataset = CocoKeypoints(
            args.train_json,
            args.train_images,
            config.input_size,
            config.output_size,
            train=True,
            seed=args.seed,
        )
        sampler = Sampler(len(dataset), rank, world, start_index, args.seed)
    workers = args.workers
    if workers is None:
        workers = 4 if device.type == "cuda" else 0
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


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


def main(argv=None) -> dict:
    t_start = time.time()
    args = parse_args(argv)
    config, args = resolve(args)
    rank, world, device = setup_distributed(args.device)
    is_main = rank == 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)
    output = Path(args.output)
    if is_main:
        output.mkdir(parents=True, exist_ok=True)
    amp = resolve_amp(args.amp, device)

    model = PoseNet(config).to(device).to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    state = {"step": 0, "images": 0, "train_seconds": 0.0, "curve": []}
    # every rank holds the same weights: rank 0 alone keeps the average it evaluates
    ema = WeightAverage(model, args.ema) if args.ema and is_main else None

    ckpt_path = output / "checkpoint.pt"
    if args.resume:
        path = ckpt_path if args.resume == "auto" else Path(args.resume)
        if path.exists():
            ck = torch.load(path, map_location="cpu", weights_only=False)
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            if scaler is not None and ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
            if ema is not None and ck.get("ema") is not None:
                ema.state = {k: v.to(device) for k, v in ck["ema"].items()}
                ema.updates = ck.get("ema_updates", 0)
            state = ck["state"]
            if is_main:
                print(f"resumed from {path} at step {state['step']}")
        elif args.resume != "auto":
            raise SystemExit(f"--resume: no checkpoint at {path}")

    train_model = model
    if args.compile:
        train_model = torch.compile(train_model)
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None
        )
    criteria = (ae.HeatmapLoss(), ae.AssociativeEmbeddingLoss(push=args.push))
    loader = make_loader(args, config, rank, world, state["images"] * 1, device)
    logger = Logger(output, args.tensorboard, bool(args.resume)) if is_main else None

    progress_bar = None
    if is_main and not args.no_progress:
        try:
            from tqdm import tqdm

            total = args.steps if args.steps else None
            progress_bar = tqdm(
                total=total,
                initial=state["step"],
                unit="step",
                dynamic_ncols=True,
                mininterval=1.0,
                file=sys.stdout,
            )
        except ImportError:
            progress_bar = None

    budget = args.minutes * 60 if args.minutes else None
    elapsed0 = state["train_seconds"]
    t0 = time.time()
    last_eval = last_ckpt = t0
    n_params = sum(p.numel() for p in model.parameters())
    if is_main:
        print(
            f"preset {args.preset}: {n_params / 1e6:.2f} M parameters, input {config.input_size}, "
            f"output {config.output_size}, {world} process(es) on {device}, amp {amp}, "
            f"batch {args.batch_size}/process, budget "
            f"{f'{args.minutes:g} min' if budget else f'{args.steps} steps'}",
            flush=True,
        )

    def elapsed() -> float:
        return elapsed0 + time.time() - t0

    def eval_model() -> torch.nn.Module:
        return ema.model(model) if ema is not None else model

    def run_eval():
        from evaluate import evaluate_synthetic

        t = time.time()
        stats = evaluate_synthetic(
            eval_model(),
            config,
            seed=2,
            num_images=args.eval_images,
            **test_options(args, device, amp),
        )
        row = {
            "minutes": round(elapsed() / 60, 3),
            "step": state["step"],
            "images": state["images"],
            **{k: round(stats[k], 4) for k in ("AP", "AP50", "AP75")},
        }
        state["curve"].append(row)
        write_curve(output, state["curve"])
        msg = (
            f"[{row['minutes']:.1f} min, step {row['step']}] held-out AP {row['AP']:.3f} "
            f"(AP50 {row['AP50']:.3f}, AP75 {row['AP75']:.3f}; {time.time() - t:.1f} s)"
        )
        if progress_bar is not None:
            progress_bar.write(msg)
        else:
            print(msg, flush=True)

    model.train()
    window_t, window_n = time.time(), 0
    for batch in loader:
        progress = 0.0
        if budget:
            progress = max(progress, elapsed() / budget)
        if args.steps:
            progress = max(progress, state["step"] / args.steps)
        stop = torch.tensor([1.0 if progress >= 1.0 else 0.0])
        if world > 1:
            stop = stop.to(device)
            torch.distributed.broadcast(stop, 0)
        if stop.item() > 0:
            break
        lr = learning_rate(args, state["step"], progress)
        for g in optimizer.param_groups:
            g["lr"] = lr
        images = batch["images"].to(device, non_blocking=True).permute(0, 3, 1, 2)
        images = images.float().div_(255).contiguous(memory_format=torch.channels_last)
        ctx = (
            torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
            if amp != "none"
            else contextlib.nullcontext()
        )
        with ctx:
            outputs = train_model(images)
        loss, parts = compute_loss(outputs, batch, config, criteria, args, device)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if ema is not None:
            ema.update(model)
        state["step"] += 1
        state["images"] += args.batch_size * world
        window_n += args.batch_size * world
        if is_main and (state["step"] % args.log_every == 0 or state["step"] == 1):
            now = time.time()
            ips = window_n / max(now - window_t, 1e-9)
            window_t, window_n = now, 0
            vals = {k: float(v) for k, v in parts.items()}
            row = {
                "step": state["step"],
                "images": state["images"],
                "minutes": round(elapsed() / 60, 3),
                "lr": lr,
                "loss": float(loss.detach()),
                **vals,
                "images_per_s": round(ips, 2),
            }
            logger.log(row)
            if progress_bar is not None:
                progress_bar.set_postfix(
                    loss=f"{float(loss.detach()):.4f}",
                    hm=f"{vals['heatmap']:.2e}",
                    pull=f"{vals['pull']:.3f}",
                    push=f"{vals['push']:.3f}",
                    img_s=f"{ips:.1f}",
                    refresh=False,
                )
        if progress_bar is not None:
            progress_bar.update(1)
        if (
            is_main
            and args.data == "synthetic"
            and args.eval_every
            and (time.time() - last_eval > args.eval_every * 60)
        ):
            run_eval()
            last_eval = time.time()
        if is_main and time.time() - last_ckpt > args.checkpoint_every * 60:
            state["train_seconds"] = elapsed()
            save_checkpoint(ckpt_path, model, optimizer, scaler, state, config, args, ema)
            last_ckpt = time.time()

    state["train_seconds"] = elapsed()
    if progress_bar is not None:
        progress_bar.close()
    result: dict = {
        "steps": state["step"],
        "images": state["images"],
        "train_minutes": round(state["train_seconds"] / 60, 2),
    }
    if is_main:
        save_checkpoint(ckpt_path, model, optimizer, scaler, state, config, args, ema)
        logger.close()
        print(
            f"trained {state['step']} steps ({state['images']} images) in "
            f"{state['train_seconds'] / 60:.1f} min",
            flush=True,
        )
        if not args.no_final_eval:
            result.update(final_evaluation(eval_model(), config, args, device, amp, output, state))
        (output / "summary.json").write_text(json.dumps(result, indent=2))
        print(f"total wall time {(time.time() - t_start) / 60:.1f} min")
        if "AP" in result:
            print(f"AP {result['AP']:.4f}", flush=True)
    if world > 1:
        # every rank leaves together: a rank that tears gloo down while its peer is still
        # saving or evaluating aborts ("terminate called without an active exception")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def test_options(args, device, amp: str) -> dict:
    """Test-time options of the preset (or the command line) for ``evaluate.predict``."""
    return {
        "device": device,
        "amp": amp,
        "project": args.project,
        "decode_options": {"detection_threshold": args.detection_threshold},
        "subpixel": args.subpixel,
    }


def final_evaluation(model, config, args, device, amp, output, state) -> dict:
    from evaluate import evaluate_synthetic

    t = time.time()
    if args.data == "synthetic":
        gt_stats = evaluate_synthetic(
            model,
            config,
            seed=1,
            num_images=min(100, args.final_eval_images),
            gt_heatmaps=True,
            **test_options(args, device, amp),
            render=args.render,
            sigma=args.sigma,
        )
        print(f"ground-truth heatmaps + predicted tags (grouping alone): AP {gt_stats['AP']:.4f}")
        stats = evaluate_synthetic(
            model,
            config,
            seed=1,
            num_images=args.final_eval_images,
            output=output,
            verbose=True,
            **test_options(args, device, amp),
        )
        state["curve"].append(
            {
                "minutes": round((state["train_seconds"] + time.time() - t) / 60, 3),
                "step": state["step"],
                "images": state["images"],
                **{k: round(stats[k], 4) for k in ("AP", "AP50", "AP75")},
            }
        )
        write_curve(output, state["curve"])
        print("AP vs time (held-out synthetic):")
        for c in state["curve"]:
            print(f"  {c['minutes']:6.2f} min  step {c['step']:6d}  AP {c['AP']:.3f}")
        out = {f"gt_heatmaps_{k}": v for k, v in gt_stats.items()}
    else:
        if not (args.val_json and args.val_images):
            print("no --val-json/--val-images: skipping the COCO evaluation")
            return {}
        from data.coco import evaluate_coco

        stats = evaluate_coco(
            model,
            config,
            args.val_json,
            args.val_images,
            output=output,
            verbose=True,
            **test_options(args, device, amp),
        )
        out = {}
    print(f"evaluation took {time.time() - t:.1f} s")
    out.update(stats)
    return out


if __name__ == "__main__":
    main()
