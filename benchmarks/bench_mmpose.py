"""Time mmpose's ``AssociativeEmbeddingHead.predict`` with mmpose's codec and with ours.

The head is built from the settings of the config mmpose 1.3.2 ships and installs
(``ae_hrnet-w32_8xb24-300e_coco-512x512.py``, read from the installed package): flip
test, maps restored to the 512 x 512 input size before decoding (``restore_heatmap_size``),
``decode_topk=30``, ``decode_center_shift=0.5``, ``decode_max_instances=30``. Once with
its ``AssociativeEmbedding`` codec, once with ``FastAssociativeEmbedding`` (default
grouping ``"mmpose-1.x"``); both heads share their weights.

The features are the backbone's output at stride 4 (128 x 128) for COCO-like scenes of
stick figures (``benchmarks/scenes.py``): the head's final 1x1 layer is set to copy
feature k to heatmap k and feature 17 + k to tag k (so ``in_channels`` is 34 here, 32
in the config, which changes nothing but that layer), and the flipped features are the
mirrored scene with left and right joints swapped, as a backbone would give.

Two columns per codec, per batch:

- decode: ``head.decode`` on the flip-aggregated, restored maps (heatmaps B x 17 x 512 x
  512, tags B x 34 x 512 x 512), i.e. the codec's ``batch_decode``;
- predict: all of ``head.predict`` (forward of both flips, flip back, resizing to the
  input size, decode).

Both heads are checked to return the same people (keypoints, keypoint scores, instance
scores, mmpose's people sorted by score) on every timed batch.

Usage::

    python benchmarks/bench_mmpose.py           # batches of 1 and 4, 10 people (a minute)
    python benchmarks/bench_mmpose.py --smoke   # seconds, for CI

Needs ``mmpose.models`` (mmcv with its compiled ops); without it the script prints why
and exits 0. Times are medians; a ratio compares two numbers of the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenes import make_scene

#: the config mmpose 1.3.2 ships inside its package (mmpose/.mim/configs/...)
SHIPPED = "body_2d_keypoint/associative_embedding/coco/ae_hrnet-w32_8xb24-300e_coco-512x512.py"
#: mmpose's COCO metainfo flip_indices
FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def cpu_name():
    """``lscpu``'s model name."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields.get("Model name", "unknown").strip()


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def load():
    """(mmpose modules, None) or (None, the reason they are missing)."""
    try:
        import mmpose
        import mmpose.models  # needs mmcv's compiled ops
        from mmengine.config import Config

        import associative_embedding.mmpose as ours
    except ImportError as err:
        return None, f"mmpose.models not importable ({err}); nothing to time"
    return (mmpose, Config, ours), None


def build_heads(Config):
    """mmpose's head from the shipped settings, with mmpose's codec and with ours."""
    import mmpose
    from mmpose.registry import MODELS

    cfg = Config.fromfile(str(Path(mmpose.__file__).parent / ".mim" / "configs" / SHIPPED))
    head_cfg = cfg.model.head.to_dict()
    head_cfg["in_channels"] = 34
    heads = []
    for codec in ("AssociativeEmbedding", "FastAssociativeEmbedding"):
        head_cfg["decoder"]["type"] = codec
        head = MODELS.build(head_cfg).eval()
        with torch.no_grad():
            head.final_layer.weight.zero_()
            head.final_layer.bias.zero_()
            for k in range(34):
                head.final_layer.weight[k, k] = 1.0
        heads.append(head)
    return heads, cfg.model.test_cfg.to_dict()


def features(seed, batch, people):
    """Original and flipped stride-4 features (B, 34, 128, 128) of ``batch`` scenes."""
    rng = np.random.default_rng(seed)
    scenes = [make_scene(rng, people, 128, 1) for _ in range(batch)]
    feats = np.stack([np.concatenate([h, t[:, 0]]) for h, t in scenes])
    # no peaks on the outermost pixels: the resize to the input size repeats them, and
    # mmpose's torch.topk orders equal values arbitrarily (the comparison would see it)
    feats[..., [0, -1], :] = 0
    feats[..., [0, -1]] = 0
    flipped = feats[..., ::-1].copy()
    flipped[:, :17] = flipped[:, FLIP]
    flipped[:, 17:] = flipped[:, [17 + k for k in FLIP]]
    return [(torch.from_numpy(feats),), (torch.from_numpy(flipped),)]


def samples(batch):
    from mmpose.structures import PoseDataSample

    out = []
    for _ in range(batch):
        s = PoseDataSample()
        s.set_metainfo(dict(img_shape=(512, 512), flip_indices=FLIP, input_size=(512, 512)))
        out.append(s)
    return out


def same_people(a, b):
    """Raise unless two heads' predictions hold the same people (b's sorted by score)."""
    for pa, pb in zip(a, b, strict=True):
        order = np.argsort(-pb.bbox_scores, kind="stable")
        for name in ("keypoints", "keypoint_scores", "bbox_scores"):
            x, y = getattr(pa, name), getattr(pb, name)[order]
            if x.shape != y.shape or not np.array_equal(x, y):
                raise AssertionError(f"the two codecs' {name} differ")


def row(heads, test_cfg, batch, people, repeats, seed):
    feats = features(seed, batch, people)
    data = samples(batch)
    theirs = heads[0]
    with torch.no_grad():
        preds = [h.predict(feats, data, test_cfg=test_cfg) for h in heads]
        same_people(preds[1], preds[0])
        found = statistics.mean(len(p.bbox_scores) for p in preds[1])
        _, fields = theirs.predict(feats, data, test_cfg=dict(test_cfg, output_heatmaps=True))
        maps = (
            torch.stack([f.heatmaps for f in fields]),
            torch.stack([f.tags for f in fields]),
        )
        times = []
        for head in heads:
            times.append(median_ms(lambda head=head: head.decode(maps), repeats))
            times.append(
                median_ms(lambda head=head: head.predict(feats, data, test_cfg=test_cfg), repeats)
            )
    mm_dec, mm_pred, our_dec, our_pred = times
    return (
        f"{batch}",
        f"{people} ({found:.0f})",
        f"{mm_dec:.0f}",
        f"{our_dec:.1f}",
        f"{mm_dec / our_dec:.0f}x",
        f"{mm_pred:.0f}",
        f"{our_pred:.0f}",
        f"{mm_pred / our_pred:.1f}x",
    )


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="one tiny batch, for CI")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    mods, why = load()
    if mods is None:
        print(f"bench_mmpose: skipped: {why}")
        return
    mmpose, Config, _ = mods
    torch.manual_seed(0)
    print(
        f"CPU: {cpu_name()}; torch threads {torch.get_num_threads()}; mmpose {mmpose.__version__}"
    )
    heads, test_cfg = build_heads(Config)
    # the first decode compiles (or loads) the numba kernels: not timed
    row(heads, test_cfg, 1, 2, 1, seed=99)
    cases = [(1, 3)] if args.smoke else [(1, 10), (4, 10)]
    repeats = 1 if args.smoke else args.repeats
    rows = [row(heads, test_cfg, b, p, repeats, seed=i) for i, (b, p) in enumerate(cases)]
    print(
        "head.predict per batch, 512x512 input, flip test, maps restored to 512x512 "
        f"(median of {repeats}; ms)"
    )
    print(
        table(
            (
                "batch",
                "people (found)",
                "decode mmpose",
                "decode ours",
                "decode speed-up",
                "predict mmpose",
                "predict ours",
                "predict speed-up",
            ),
            rows,
        )
    )
    print("the same people from both codecs in every batch")


if __name__ == "__main__":
    main()
