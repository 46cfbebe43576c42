"""The presets: every research setting of the example, in one table.

A preset is a network (:class:`model.HourglassConfig`) and its training and test
settings (:class:`Training`). ``train.py --preset NAME`` starts from one; a few
command-line flags (``--batch-size``, ``--lr``, ``--minutes``, ``--steps``) override
the common settings, and ``--set KEY=VALUE`` overrides any other field of either
dataclass, e.g. ``--set inp_dim=128 push=exp shift_test=false``.

- ``paper``: pose-ae-train's network and optimisation (Adam 2e-4, batches of 32,
  ``1e-3 * (pull + push)``, lr 1e-5 late in training) for COCO on GPUs.
- ``tiny``: trains on two CPU cores in 14 minutes on synthetic crowds. The reasons for
  each departure from ``paper`` are on the documentation's Experiments page.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from model import HourglassConfig

__all__ = ["PRESETS", "Preset", "Training", "apply_overrides", "parse_override"]


@dataclass(frozen=True)
class Training:
    """Optimisation, loss, data and test-time settings of a preset."""

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
    positive_weight: float  # heatmap MSE weight 1 + w * target (0: plain MSE)
    train_people: int  # synthetic training scenes show 1 to this many people (held-out: 1-4)
    sigma: float | None  # heatmap Gaussian sigma in output pixels; None: library default
    render: str  # ae.render_heatmaps method: "reference" (pose-ae-train) or "exact" (sub-pixel)
    project: bool  # decode at input resolution (maps upsampled), HigherHRNet's PROJECT2IMAGE
    detection_threshold: float  # ae.decode's detection threshold (library default 0.1)
    subpixel: str  # "quarter" (ae.decode's adjust, the references) or "dark" (Poses.refine_dark)
    shift_test: bool  # average the maps of the input shifted by 1 px (evaluate.network_maps)
    minutes: float | None  # time budget (training + periodic evaluation); None: none
    steps: int | None  # step budget; None: none
    eval_every: float  # minutes between held-out evaluations (synthetic; 0: none)
    eval_images: int  # held-out images per periodic evaluation
    final_eval_images: int  # held-out images for the final AP
    optimizer: str = "adam"  # "adam" or "adamw"
    weight_decay: float = 0.0
    compile: bool = False  # torch.compile the model
    checkpoint_every: float = 5.0  # minutes between checkpoints
    log_every: int = 10  # steps between rows of log.csv


@dataclass(frozen=True)
class Preset:
    """A network and how to train and test it."""

    network: HourglassConfig
    training: Training


PRESETS: dict[str, Preset] = {
    # pose-ae-train task/pose.py: 4 stacks, 256 features, +128 per level, no BN, 512 input,
    # 128 output; Adam 2e-4, batch 32, 1e-3 x (pull + push), lr 1e-5 late in training
    "paper": Preset(
        network=HourglassConfig(),
        training=Training(
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
    ),
    # two CPU cores, 14 minutes: one narrow hourglass at 1/4 with an upsampling head to
    # 1/2, two tag dimensions, identity shortcuts, BatchNorm; see the Experiments page
    "tiny": Preset(
        network=HourglassConfig(
            nstack=1,
            inp_dim=64,
            increase=32,
            depth=3,
            bn=True,
            stem_channels=(32, 64),
            stem_stride=4,
            head_upsample=2,
            input_size=96,
            tag_dim=2,
            residual=True,
            head_interpolation="bilinear",
        ),
        training=Training(
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
    ),
}

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _convert(key: str, text: str, kind) -> object:
    """``text`` as a value of the annotated type ``kind`` (bool, int, float, str, an
    optional of one of those, or a tuple of ints written ``a,b``)."""
    args = typing.get_args(kind)
    if type(None) in args:  # X | None
        if text.lower() == "none":
            return None
        (kind,) = (a for a in args if a is not type(None))
    try:
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if typing.get_origin(kind) is tuple:
            return tuple(int(v) for v in text.split(","))
        return kind(text)
    except ValueError:
        name = getattr(kind, "__name__", str(kind))
        raise SystemExit(f"--set {key}={text}: expected a value of type {name}") from None


def parse_override(item: str) -> tuple[str, object]:
    """``"key=value"`` as ``(key, value)`` converted to the field's type.

    ``key`` names a field of :class:`Training` or :class:`model.HourglassConfig`.
    """
    key, sep, text = item.partition("=")
    key = key.strip().replace("-", "_")
    hints = {
        **typing.get_type_hints(Training),
        **typing.get_type_hints(HourglassConfig),
    }
    if not sep or key not in hints:
        raise SystemExit(
            f"--set expects KEY=VALUE with KEY one of: {', '.join(sorted(hints))}; got {item!r}"
        )
    return key, _convert(key, text.strip(), hints[key])


def apply_overrides(preset: Preset, items: list[str]) -> Preset:
    """``preset`` with the ``--set`` overrides ``items`` (``"key=value"`` strings)."""
    network, training = {}, {}
    train_fields = {f.name for f in dataclasses.fields(Training)}
    for item in items:
        key, value = parse_override(item)
        (training if key in train_fields else network)[key] = value
    return Preset(
        network=preset.network.replace(**network),
        training=dataclasses.replace(preset.training, **training),
    )
