"""The instance-segmentation example (examples/instances) in a tiny configuration.

The script runs the way a user runs it (a subprocess from the repository root); its data,
baseline and scoring functions are imported from the example folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "instances"


def _import(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"instances_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLE))
    return module


def test_shapes_touch_and_stay_visible():
    shapes = _import("shapes")
    rng = np.random.default_rng(0)
    images, labels = shapes.make_batch(rng, 30, size=48)
    assert images.shape == (30, 3, 48, 48)
    assert labels.shape == (30, 48, 48)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    from scipy import ndimage

    merged = sum(ndimage.label(lab > 0)[1] < lab.max() for lab in labels)
    assert merged >= 10  # touching shapes are the rule: connected components merge them
    for lab in labels:
        ids = np.unique(lab[lab > 0])
        assert np.array_equal(ids, np.arange(1, lab.max() + 1))


def test_mask_ap_of_ground_truth_is_one_and_of_merged_is_lower():
    train = _import("train")
    lab = np.zeros((1, 20, 20), np.int64)
    lab[0, 2:8, 2:8] = 1
    lab[0, 2:8, 8:14] = 2
    perfect = train.mask_ap(lab, [(lab[0], np.array([0.9, 0.8]))])
    assert perfect["AP"] == pytest.approx(1.0)
    merged = train.mask_ap(lab, train.connected_components((lab > 0).astype(float), 1))
    assert merged["AP"] < 0.1  # one merged mask: IoU 0.5 with either shape, no match above


@pytest.mark.slow
def test_train_script_tiny_run(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    args = ["--output", str(tmp_path), "--steps", "4", "--batch-size", "4", "--size", "32",
            "--widths", "8", "16", "--val-images", "8", "--threads", "1"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"connected components mask AP \d\.\d+", lines[-2])
    assert re.fullmatch(r"mask AP \d\.\d+", lines[-1])
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["steps"] == 4
    assert f"{result['associative_embedding']['AP']:.3f}" == lines[-1].split()[-1]
    assert (tmp_path / "labels.png").stat().st_size > 0
    assert (tmp_path / "log.csv").read_text().startswith("step,seconds")
