"""Presets' training defaults and the command line of ``train.py``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from model import PRESETS, HourglassConfig

DESCRIPTION = "Train the stacked hourglass with associative embedding, end to end."


@dataclass(frozen=True)
class TrainDefaults:
    """Optimisation defaults of a preset (command-line flags override them)."""

    batch_size: int
    lr: float
    lr_final: float
    lr_drop: float  # "step" schedule: fraction of the run after which lr = lr_final
    lr_schedule: str  # "step" (pose-ae-train: lr, then lr_final) or "cosine" (lr -> lr_final)
    warmup_steps: int
    beta2: float  # Adam's (AdamW's) second-moment decay (PyTorch's default 0.999)
    ema: float  # decay of the weights' exponential moving average used for evaluation (0: off)
    tag_weight: float
    push: str  # "exp" (pose-ae-train, HigherHRNet) or "margin" (HigherHRNet 'max', CornerNet)
    heatmap_weight: float
    positive_weight: float
    train_people: int  # synthetic training scenes show 1 to this many people (held-out: 1-4)
    sigma: float | None  # heatmap Gaussian sigma in output pixels; None: library default
    render: str  # ae.render_heatmaps method: "reference" (pose-ae-train) or "exact" (sub-pixel)
    project: bool  # decode at input resolution (maps upsampled), HigherHRNet's PROJECT2IMAGE
    detection_threshold: float  # ae.decode's detection threshold (library default 0.1)
    subpixel: str  # "quarter" (ae.decode's adjust, the references) or "dark" (Poses.refine_dark)
    shift_test: bool  # average the maps of the input shifted by 1 px (evaluate.network_maps)
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
        beta2=0.999,
        ema=0.0,
        tag_weight=1e-3,
        push="exp",
        heatmap_weight=1.0,
        positive_weight=0.0,
        train_people=4,
        sigma=None,
        render="reference",
        project=False,
        detection_threshold=0.1,
        subpixel="quarter",
        shift_test=False,
        minutes=None,
        steps=250_000,
        eval_every=60.0,
        eval_images=200,
        final_eval_images=500,
    ),
    # Reasons for each departure: examples/hourglass/README.md ("The tiny preset").
    "tiny": TrainDefaults(
        batch_size=4,
        lr=3e-3,
        lr_final=2e-4,
        lr_drop=0.8,
        lr_schedule="step",
        warmup_steps=50,
        beta2=0.99,
        ema=0.0,
        tag_weight=1e-1,
        push="margin",
        heatmap_weight=1.0,
        positive_weight=16.0,
        train_people=6,
        sigma=2.0,
        render="exact",
        project=True,
        detection_threshold=0.6,
        subpixel="dark",
        shift_test=True,
        minutes=14.0,
        steps=None,
        eval_every=2.0,
        eval_images=64,
        final_eval_images=300,
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--data", choices=("synthetic", "coco", "mpii"), default="synthetic")
    p.add_argument("--output", type=Path, required=True, help="folder for logs, checkpoints, PNGs")
    p.add_argument("--train-json"), p.add_argument("--train-images")
    p.add_argument("--val-json"), p.add_argument("--val-images")
    add_mpii_arguments(p)
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
    g.add_argument(
        "--beta2", type=float, help="Adam's second-moment decay (paper preset 0.999, tiny 0.99)"
    )
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
    g = p.add_argument_group("synthetic data (--data synthetic)")
    g.add_argument(
        "--train-people",
        type=int,
        help="training scenes show 1 to this many people (held-out scenes: 1 to 4)",
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
    g.add_argument("--head-dim", type=int, help="width of the upsampling head (0: --inp-dim)")
    g.add_argument(
        "--head-interpolation",
        choices=("nearest", "bilinear"),
        help="how the upsampling head enlarges the hourglasses' features",
    )
    g.add_argument("--stem-channels", type=int, nargs=2, help="widths of the stem's two convs")
    g.add_argument("--tag-dim", type=int)
    g.add_argument("--bn", choices=("on", "off"))
    g.add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="identity shortcuts around the convs whose widths match (tiny: on, paper: off)",
    )
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
    g.add_argument(
        "--shift-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also decode the maps of the input shifted by one pixel right, down and both, "
        "shifted back and averaged (needs --project; default: the preset's choice)",
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


def add_mpii_arguments(p: argparse.ArgumentParser) -> None:
    """The MPII files (``--data mpii``), shared by train.py and evaluate.py."""
    g = p.add_argument_group("MPII (--data mpii; 16 joints, ae.MPII_KEYPOINTS)")
    g.add_argument("--mpii-annotations", help="mpii_human_pose_v1_u12_1.mat")
    g.add_argument("--mpii-groups", help="groups_v12.mat (the multi-person test groups)")
    g.add_argument("--mpii-images", help="the images folder")
    g.add_argument(
        "--mpii-eval-split",
        choices=("test", "train"),
        default="test",
        help="split whose multi-person groups are scored (the released file has no test "
        "joints: score a train subset locally, the test set on the benchmark's server)",
    )


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
            "head_dim",
            "head_interpolation",
            "tag_dim",
            "residual",
        )
        if getattr(args, k) is not None
    }
    if args.stem_channels is not None:
        overrides["stem_channels"] = tuple(args.stem_channels)
    if args.bn is not None:
        overrides["bn"] = args.bn == "on"
    if args.data == "mpii":
        overrides["num_joints"] = 16
    return config.replace(**overrides), args
