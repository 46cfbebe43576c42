"""The public API inventory: adding or removing a public name must be deliberate."""

from __future__ import annotations

import subprocess
import sys

import pytest

import associative_embedding as ae

PUBLIC = {
    "AIC_KEYPOINTS",
    "AssociativeEmbeddingLoss",
    "COCO_KEYPOINTS",
    "CROWDPOSE_KEYPOINTS",
    "DecodeConfig",
    "HeatmapLoss",
    "InstanceGroupingLoss",
    "Instances",
    "MPII_KEYPOINTS",
    "MultiScaleFlip",
    "Person",
    "MPIIResult",
    "PersonCrops",
    "Poses",
    "PullPush",
    "Skeleton",
    "__version__",
    "aggregate",
    "coco_ignore_mask",
    "decode",
    "default_sigma",
    "decode_instances",
    "crop_people",
    "draw_poses",
    "evaluate_keypoints",
    "evaluate_mpii",
    "flip_maps",
    "grouping_loss",
    "heatmap_loss",
    "instance_grouping_loss",
    "joint_indices",
    "merge_single_person",
    "pad_keypoints",
    "person_crops",
    "plot_tags",
    "render_heatmaps",
    "scale_keypoints",
    "warmup",
    "show_maps",
    "to_coco_results",
}


def test_all_is_the_inventory():
    assert set(ae.__all__) == PUBLIC
    assert list(ae.__all__) == sorted(ae.__all__)


def test_every_public_name_resolves_and_is_documented():
    for name in ae.__all__:
        obj = getattr(ae, name)
        if name == "__version__":
            assert isinstance(obj, str)
        elif callable(obj) and not isinstance(obj, ae.Skeleton):
            assert obj.__doc__, f"{name} has no docstring"


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        ae.no_such_name


def test_import_is_lazy():
    code = (
        "import sys, associative_embedding; print('torch' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
