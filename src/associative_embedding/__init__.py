"""Associative embedding: joint detection and grouping with per-pixel tags.

A vectorised grouping loss for :mod:`torch` and a numba-compiled decoder that
turns detection heatmaps and tag maps into people, after Newell, Huang & Deng,
"Associative Embedding: End-to-End Learning for Joint Detection and Grouping",
NIPS 2017.

The public names are imported lazily: ``import associative_embedding`` does not
import torch or compile any numba kernel until a name that needs it is used.
Decoding, evaluation and drawing work where torch is not installed; a name that
needs torch then raises an :class:`ImportError` saying so.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("associative-embedding")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# public name -> submodule that defines it
_LAZY: dict[str, str] = {
    # aggregation.py: a submodule must not share a public function's name, because
    # importing it binds the package attribute of that name to the module
    "aggregate": "aggregation",
    "flip_maps": "aggregation",
    # multiscale.py: scales + flip + aggregation as one exportable torch Module
    "MultiScaleFlip": "multiscale",
    # loss.py
    "AssociativeEmbeddingLoss": "loss",
    "HeatmapLoss": "loss",
    "PullPush": "loss",
    "grouping_loss": "loss",
    "heatmap_loss": "loss",
    # instance_loss.py / instance_decoding.py: pixels grouped into instances
    "InstanceGroupingLoss": "instance_loss",
    "instance_grouping_loss": "instance_loss",
    "Instances": "instance_decoding",
    "decode_instances": "instance_decoding",
    # targets.py
    "joint_indices": "targets",
    "pad_keypoints": "targets",
    "default_sigma": "targets",
    "render_heatmaps": "targets",
    "scale_keypoints": "targets",
    # decoding.py (not decode.py, for the reason above)
    "DecodeConfig": "config",
    "Person": "poses",
    "Poses": "poses",
    "decode": "decoding",
    "warmup": "decoding",
    # plot.py (extra "plot": matplotlib)
    "draw_poses": "plot",
    "plot_tags": "plot",
    "show_maps": "plot",
    # coco.py (extra "coco": pycocotools)
    "coco_ignore_mask": "coco",
    "evaluate_keypoints": "coco",
    "to_coco_results": "coco",
    # mpii.py (numpy only)
    "MPIIResult": "mpii",
    "evaluate_mpii": "mpii",
    # single_person.py
    "PersonCrops": "single_person",
    "crop_people": "single_person",
    "merge_single_person": "single_person",
    "person_crops": "single_person",
    # skeletons.py
    "AIC_KEYPOINTS": "skeletons",
    "COCO_KEYPOINTS": "skeletons",
    "CROWDPOSE_KEYPOINTS": "skeletons",
    "MPII_KEYPOINTS": "skeletons",
    "Skeleton": "skeletons",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'associative_embedding' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    except ImportError as error:
        if (error.name or "").partition(".")[0] != "torch":
            raise
        raise ImportError(
            f"associative_embedding.{name} needs PyTorch, which could not be imported "
            f"({error}). Install torch (pip install torch) to use it. Decoding "
            "(decode, decode_instances, Poses), evaluation (evaluate_keypoints, "
            "evaluate_mpii) and drawing (draw_poses) work without torch.",
            name=error.name,
        ) from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - static analysers see the real names
    # ruff: noqa: F401
    from .aggregation import aggregate, flip_maps
    from .coco import coco_ignore_mask, evaluate_keypoints, to_coco_results
    from .config import DecodeConfig
    from .decoding import decode, warmup
    from .instance_decoding import Instances, decode_instances
    from .instance_loss import InstanceGroupingLoss, instance_grouping_loss
    from .loss import AssociativeEmbeddingLoss, HeatmapLoss, PullPush, grouping_loss, heatmap_loss
    from .mpii import MPIIResult, evaluate_mpii
    from .multiscale import MultiScaleFlip
    from .plot import draw_poses, plot_tags, show_maps
    from .poses import Person, Poses
    from .single_person import PersonCrops, crop_people, merge_single_person, person_crops
    from .skeletons import (
        AIC_KEYPOINTS,
        COCO_KEYPOINTS,
        CROWDPOSE_KEYPOINTS,
        MPII_KEYPOINTS,
        Skeleton,
    )
    from .targets import (
        default_sigma,
        joint_indices,
        pad_keypoints,
        render_heatmaps,
        scale_keypoints,
    )
