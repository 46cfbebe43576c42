"""The one boundary from DecodeConfig to the kernels' records (``_decode/options.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from associative_embedding import DecodeConfig
from associative_embedding._decode import options

K, H, W = 17, 24, 20

# for each field: (a base config's changes, the value to try on top of it)
ALTERNATIVES = {
    "max_people": ({}, 5),
    "detection_threshold": ({}, 0.3),
    "tag_threshold": ({}, 2.0),
    "nms_kernel": ({}, 3),
    "matching": ({}, "greedy"),
    "use_detection_value": ({}, False),
    "tag_distance": ({}, "rms"),
    "joint_order": ({}, tuple(reversed(range(K)))),
    "adjust": ({}, False),
    "adjust_rule": ({}, "mmpose"),
    "center_shift": ({}, 0.0),
    "refine": ({}, False),
    "refine_mode": ({}, "mmpose"),
    "match_people": ({}, "all"),
    "ignore_too_much": ({}, True),
    "max_instances": ({}, 3),
    "max_instances_mode": ({"max_instances": 3}, "matching"),
    "tag_cost": ({}, "tiebreak"),
    "regroup": ({}, 2),
    "spatial_weight": ({}, 1.0),
    "spatial_gate": ({}, 0.5),
    "spatial_limbs": ({}, ((0, 1),)),
    "refine_window": ({}, 1.0),
    "refine_tag_gate": ({}, True),
    "refine_exclusive": ({}, True),
    "min_score": ({}, 0.1),
    "pose_nms": ({}, 0.5),
}


def _flat(config: DecodeConfig) -> dict[str, object]:
    """Every value the kernels receive from ``config``, by the table's target names."""
    opts = options.build(config, K, H, W, np.dtype(np.float32))
    out: dict[str, object] = {}
    for name, value in opts._asdict().items():
        if hasattr(value, "_asdict"):
            out.update({f"{name}.{f}": v for f, v in value._asdict().items()})
        else:
            out[name] = value
    out["order"] = options.joint_order(config, K)
    out["capacity"] = options.capacity(config, K, opts.max_candidates)
    return out


def _changed(a: dict[str, object], b: dict[str, object]) -> set[str]:
    return {n for n in a if not np.array_equal(np.asarray(a[n]), np.asarray(b[n]))}


def test_every_config_field_is_in_the_table():
    fields = [f.name for f in dataclasses.fields(DecodeConfig)]
    assert sorted(options.TABLE) == sorted(fields)
    assert sorted(ALTERNATIVES) == sorted(fields)


@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_a_field_sets_exactly_the_record_fields_the_table_lists(name):
    base_changes, value = ALTERNATIVES[name]
    base = DecodeConfig.preset("higherhrnet", **base_changes)
    assert getattr(base, name) != value
    changed = _changed(_flat(base), _flat(dataclasses.replace(base, **{name: value})))
    assert changed, f"{name} reaches no record"
    assert changed <= set(options.TABLE[name].targets), (name, changed)


def test_the_table_names_real_record_fields():
    known = set(_flat(DecodeConfig.preset("higherhrnet")))
    for name, field in options.TABLE.items():
        assert set(field.targets) <= known, name


def test_the_crowd_path_is_derived_from_the_table():
    selectors = {
        n
        for n, f in options.TABLE.items()
        if f.crowd_off not in (options.BOTH, options.WITH_REGROUP)
    }
    assert selectors == {
        "tag_cost",
        "regroup",
        "spatial_gate",
        "refine_window",
        "refine_tag_gate",
        "refine_exclusive",
        "min_score",
        "pose_nms",
    }
    for name, (base_changes, value) in ALTERNATIVES.items():
        base = DecodeConfig.preset("higherhrnet", **base_changes)
        assert not options.uses_crowd(base)
        assert options.uses_crowd(dataclasses.replace(base, **{name: value})) == (name in selectors)
    assert not options.uses_crowd(DecodeConfig.preset("mmpose-1.x"))
    assert options.uses_crowd(DecodeConfig.preset("crowd"))


def test_kernel_path_compiles_only_the_search_a_config_runs():
    """The defaults' kernel holds the crowd search only; the whole-map search has its own kernel."""
    from associative_embedding._decode import compile_ahead, pipeline

    def path(config):
        return options.kernel_path(config, options.build(config, 17, 16, 16, np.dtype("float32")))

    for name in ("higherhrnet", "pose-ae-train", "mmpose-0.x", "mmpose-1.x"):
        assert path(DecodeConfig.preset(name)) == "references"
    assert path(DecodeConfig()) == "crowd"
    assert path(DecodeConfig(refine=False, refine_window=None, refine_exclusive=False)) == "crowd"
    whole_map = DecodeConfig(refine_window=None, refine_exclusive=False, spatial_gate=None)
    assert path(whole_map) == "crowd-whole-map"
    assert path(dataclasses.replace(whole_map, refine_tag_gate=True)) == "crowd"
    assert set(options.KERNEL_PATHS) == {
        "references",
        "crowd",
        "crowd-whole-map",
    }
    assert compile_ahead.batch_kernel("crowd") is pipeline.decode_range_crowd
    assert compile_ahead.batch_kernel("crowd-whole-map") is pipeline.decode_range_crowd_whole_map


def test_the_references_kernel_is_called_without_the_crowd_record():
    """numba unboxes every field of the record at each call: the references' kernels,
    which never read the crowd record, get None in its place; the crowd kernels get it."""
    from associative_embedding._decode.plan import Plan

    ref = Plan(DecodeConfig.preset("higherhrnet"), (1, K, H, W), 1, np.dtype(np.float32), 1)
    assert ref.opts.crowd is None
    full = options.build(DecodeConfig.preset("higherhrnet"), K, H, W, np.dtype(np.float32))
    assert ref.opts.group == full.group and ref.opts.refine == full.refine
    crowd = Plan(DecodeConfig(), (1, K, H, W), 1, np.dtype(np.float32), 1)
    assert isinstance(crowd.opts.crowd, options.CrowdOptions)
    assert options.kernel_record(crowd.opts, "crowd") is crowd.opts
