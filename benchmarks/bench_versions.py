"""Time ``ae.decode`` of two source trees of this package against each other, in one run.

For a change to the decoder's code that must keep its results and its speed (a
refactor): each tree runs in its own processes (``PYTHONPATH=<tree>/src``), the
processes alternate (A, B, A, B, ...) so that a shared machine's load falls on
both, and every process first checks that its people equal those the other tree
decoded (keypoints, scores and tags, bit for bit) before timing.

Scenes come from ``benchmarks/scenes.py``: 17x128x128 with D=1 and 17x256x256 with
D=2 (flip), 10 people, one image per call, one thread, for each preset.

Usage::

    python benchmarks/bench_versions.py --baseline ../main-before/src     # this tree = B
    python benchmarks/bench_versions.py --baseline OLD/src --rounds 5 --repeats 200
    python benchmarks/bench_versions.py --baseline OLD/src --smoke           # seconds

Times are medians over images of the median over repeats (ms), the median
over rounds; the ratio is B / A (below 1: this tree is faster). The last column
compares the fastest calls instead (per image the fastest of its repeats, the
median over images, the fastest round): on a shared machine other jobs only
add time, so it is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRESETS = ("higherhrnet", "mmpose-1.x", "crowd")
SCENES = ((128, 1), (256, 2))

CHILD = r"""
import json, statistics, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])  # benchmarks/, for scenes
from scenes import make_batch
import associative_embedding as ae
args = json.loads(sys.argv[2])
out = {"timings": {}, "people": {}}
for size, dim in args["scenes"]:
    heat, tags = make_batch(args["seed"] + size, args["images"], 10, size, dim)
    for preset in args["presets"]:
        config = ae.DecodeConfig() if preset == "defaults" else ae.DecodeConfig.preset(preset)
        per_image, people = [], []
        for i in range(args["images"]):
            h, t = heat[i : i + 1], tags[i : i + 1]
            (poses,) = ae.decode(h, t, config, num_threads=1)
            people.append([poses.keypoints.tolist(), poses.scores.tolist(), poses.tags.tolist()])
            times = []
            for _ in range(args["repeats"]):
                t0 = time.perf_counter()
                ae.decode(h, t, config, num_threads=1)
                times.append(time.perf_counter() - t0)
            per_image.append((statistics.median(times), min(times)))
        key = f"{size}x{size} D={dim} {preset}"
        out["timings"][key] = [1000 * statistics.median(t[0] for t in per_image),
                               1000 * statistics.median(t[1] for t in per_image)]
        out["people"][key] = people
print(json.dumps(out))
"""


def run_tree(src: Path, cache: Path, payload: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), NUMBA_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "benchmarks"), json.dumps(payload)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other tree's src/")
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree")
    parser.add_argument("--repeats", type=int, default=100, help="calls per image")
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--presets",
        default=",".join(PRESETS),
        help="comma-separated presets, or defaults for DecodeConfig() (a preset whose meaning "
        "changed between the trees decodes different people)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run, for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.repeats, args.images = 1, 3, 1
    trees = {"A (baseline)": args.baseline.resolve(), "B (this tree)": ROOT / "src"}
    payload = {
        "scenes": SCENES,
        "presets": args.presets.split(","),
        "seed": args.seed,
        "images": args.images,
        "repeats": args.repeats,
    }
    times: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    people: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        caches = {name: Path(tmp) / str(i) for i, name in enumerate(trees)}
        for _ in range(args.rounds):
            for name, src in trees.items():
                result = run_tree(src, caches[name], payload)
                for key, ms in result["timings"].items():
                    times[name].setdefault(key, []).append(ms)
                people.setdefault(name, result["people"])
    a_name, b_name = trees
    same = {key: people[a_name][key] == people[b_name][key] for key in people[a_name]}
    print(f"CPU: {cpu_name()}; NUMBA_CPU_NAME={os.environ.get('NUMBA_CPU_NAME', '(native)')}")
    print(f"A = {trees[a_name]}\nB = {trees[b_name]}")
    print(f"{args.rounds} processes per tree, alternating; {args.repeats} calls per image\n")
    print("| scene, preset | same people | A ms | B ms | B / A | B / A, fastest calls |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key in times[a_name]:
        a = statistics.median(t[0] for t in times[a_name][key])
        b = statistics.median(t[0] for t in times[b_name][key])
        a_min = min(t[1] for t in times[a_name][key])
        b_min = min(t[1] for t in times[b_name][key])
        print(
            f"| {key} | {'yes' if same[key] else 'NO'} | {a:.3f} | {b:.3f} | {b / a:.3f} "
            f"| {b_min / a_min:.3f} |"
        )
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
