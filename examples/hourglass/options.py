"""The command line of ``train.py``: the flags a user needs; the presets hold the rest."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from model import HourglassConfig
from presets import PRESETS, Training, apply_overrides

DESCRIPTION = "Train the stacked hourglass with associative embedding, end to end."

#: settings a dedicated flag overrides (``None``: the preset's value)
FLAG_SETTINGS = ("batch_size", "lr", "minutes", "steps")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``train.py``."""
    p = argparse.ArgumentParser(
        description=DESCRIPTION,
        epilog="Every other setting (network widths, loss, schedule, test-time options) is "
        "a field of the preset in presets.py; --set KEY=VALUE overrides one.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--data", choices=("synthetic", "coco", "mpii"), default="synthetic")
    p.add_argument("--output", type=Path, required=True, help="folder for logs, checkpoints, PNGs")
    g = p.add_argument_group("COCO (--data coco)")
    g.add_argument("--train-json", help="person_keypoints_train2017.json")
    g.add_argument("--train-images", help="the training images folder")
    g.add_argument("--val-json", help="person_keypoints_val2017.json")
    g.add_argument("--val-images", help="the validation images folder")
    add_mpii_arguments(p)
    g = p.add_argument_group("budget and optimisation (defaults from the preset)")
    g.add_argument("--minutes", type=float, help="wall-clock budget for training (0: none)")
    g.add_argument("--steps", type=int, help="maximum optimiser steps (0: none)")
    g.add_argument("--batch-size", type=int, help="images per step and process")
    g.add_argument("--lr", type=float, help="learning rate before the drop")
    g.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override a field of the preset (presets.py), e.g. --set inp_dim=128 push=exp",
    )
    g = p.add_argument_group("system")
    g.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    g.add_argument(
        "--amp",
        choices=("auto", "none", "bf16", "fp16"),
        default="auto",
        help="autocast dtype (auto: bf16 if supported, on CUDA else fp16; on a CPU bf16 only "
        "where it runs natively, else float32)",
    )
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
    g.add_argument("--no-final-eval", action="store_true", help="stop after training")
    g.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


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
    """The network config and the settings: the preset, then ``--set``, then the flags.

    The settings are the command line's namespace with every :class:`presets.Training`
    field added (checkpoints store them under ``"args"``).
    """
    preset = apply_overrides(PRESETS[args.preset], args.overrides)
    flags = {k: getattr(args, k) for k in FLAG_SETTINGS}
    for f in dataclasses.fields(Training):
        setattr(args, f.name, getattr(preset.training, f.name))
    for k, v in flags.items():
        if v is not None:
            setattr(args, k, v)
    if args.minutes == 0:
        args.minutes = None
    if args.steps == 0:
        args.steps = None
    config = preset.network
    if args.data == "mpii":
        config = config.replace(num_joints=16)
    return config, args
