"""Decoding, evaluation and drawing in a process where ``import torch`` fails.

A deployment install (``pip install --no-deps associative-embedding`` plus numpy,
scipy, numba and the extras it uses) has no torch: these tests run the torch-free
part of the API in a subprocess whose import system refuses torch, and check that
the names that need torch say so.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

# installed first in every subprocess: any import of torch or a torch submodule fails
# as it does where torch is not installed
BLOCK_TORCH = """
import importlib.abc, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
for _name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
    del sys.modules[_name]
"""


def run_without_torch(code: str) -> str:
    """Run ``code`` in a fresh interpreter with torch blocked; return its stdout."""
    script = BLOCK_TORCH + textwrap.dedent(code)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out.stdout


def test_the_blocker_blocks():
    out = run_without_torch(
        """
        try:
            import torch
        except ImportError as e:
            print("blocked", e.name)
        """
    )
    assert out.split() == ["blocked", "torch"]


@pytest.mark.slow
def test_decode_and_decode_instances_without_torch():
    out = run_without_torch(
        """
        import sys
        import numpy as np
        import associative_embedding as ae

        # two people, 17 joints each, far apart in the image and in tag space
        heatmaps = np.zeros((2, 17, 32, 32), np.float32)
        tags = np.zeros((2, 17, 32, 32), np.float32)
        for b in range(2):
            for p, (x0, tag) in enumerate([(4, 0.0), (20, 5.0)]):
                for k in range(17):
                    y, x = 2 + k, x0 + (k % 3)
                    heatmaps[b, k, y, x] = 0.9
                    tags[b, k, y, x] = tag
        poses = ae.decode(heatmaps, tags)
        assert isinstance(poses[0], ae.Poses)
        print("people", [len(p) for p in poses])
        print("tags", sorted(round(float(t), 3) for t in poses[0].tags[:, 0]))
        moved = poses[0].refine_dark(heatmaps[0])
        print("dark", moved.keypoints.shape)
        both = ae.Poses.concatenate(poses)
        print("concatenated", len(both))

        fg = np.zeros((1, 16, 16), np.float32)
        inst_tags = np.zeros((1, 1, 16, 16), np.float32)
        fg[0, 2:6, 2:6] = 1.0
        fg[0, 10:14, 10:14] = 1.0
        inst_tags[0, 0, 10:14, 10:14] = 4.0
        instances = ae.decode_instances(fg, inst_tags)
        print("instances", len(instances[0].scores))
        print("torch loaded", any(m.startswith("torch") for m in sys.modules))
        """
    )
    assert "people [2, 2]" in out
    assert "tags [0.0, 5.0]" in out
    assert "dark (2, 17, 3)" in out
    assert "concatenated 4" in out
    assert "instances 2" in out
    assert "torch loaded False" in out


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("pycocotools") is None, reason="pycocotools (extra coco) missing"
)
def test_coco_evaluation_without_torch():
    out = run_without_torch(
        """
        import numpy as np
        import associative_embedding as ae

        kp = np.zeros((1, 17, 3))
        kp[0, :, 0] = np.linspace(10, 40, 17)
        kp[0, :, 1] = np.linspace(5, 60, 17)
        kp[0, :, 2] = 2
        gt = {
            "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [{
                "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 900.0,
                "bbox": [10.0, 5.0, 30.0, 55.0], "keypoints": kp.reshape(-1).tolist(),
                "num_keypoints": 17,
            }],
            "categories": [{"id": 1, "name": "person",
                            "keypoints": list(ae.COCO_KEYPOINTS.keypoints)}],
        }
        pred = kp.copy()
        pred[..., 2] = 0.9
        poses = ae.Poses(keypoints=pred, scores=np.array([0.9]), tags=np.zeros((1, 1)))
        results = ae.to_coco_results(poses, 1)
        stats = ae.evaluate_keypoints(gt, results)
        print("AP", round(stats["AP"], 3))
        """
    )
    assert "AP 1.0" in out


@pytest.mark.slow
def test_mpii_evaluation_without_torch():
    out = run_without_torch(
        """
        import numpy as np
        import associative_embedding as ae

        rng = np.random.default_rng(0)
        people = np.concatenate([rng.uniform(0, 100, (2, 16, 2)), np.ones((2, 16, 1))], -1)
        heads = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 0.0, 60.0, 10.0]])
        result = ae.evaluate_mpii([{"keypoints": people, "head_boxes": heads}], [people])
        print("Total", result.columns["Total"])
        """
    )
    assert "Total 100.0" in out


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib (extra plot) missing"
)
def test_draw_poses_without_torch():
    out = run_without_torch(
        """
        import matplotlib
        matplotlib.use("Agg")
        import numpy as np
        import associative_embedding as ae

        person = np.full((1, 17, 3), np.nan)
        person[0, :, 2] = 0.0
        person[0, 5:7] = [[20.5, 20.5, 0.9], [40.5, 20.5, 0.8]]
        image = np.zeros((64, 64, 3), np.uint8)
        ax = ae.draw_poses(image, person, person_threshold=0.0)  # a two-joint sketch
        print("limbs", len(ax.collections[0].get_segments()))
        """
    )
    assert "limbs 1" in out


@pytest.mark.parametrize(
    "name", ["AssociativeEmbeddingLoss", "grouping_loss", "aggregate", "MultiScaleFlip"]
)
def test_names_that_need_torch_say_so(name):
    out = run_without_torch(
        f"""
        import associative_embedding as ae
        try:
            ae.{name}
        except ImportError as e:
            print(type(e).__name__, "|", e.name, "|", e)
        """
    )
    kind, module, message = (part.strip() for part in out.split("|", 2))
    assert kind == "ImportError"
    assert module == "torch"
    assert f"associative_embedding.{name} needs PyTorch" in message
    assert "Decoding" in message


def test_other_import_errors_are_not_rewritten(monkeypatch):
    import associative_embedding as ae

    monkeypatch.setitem(ae._LAZY, "_missing_for_test", "no_such_submodule")
    with pytest.raises(ModuleNotFoundError, match="no_such_submodule") as info:
        ae._missing_for_test
    assert "needs PyTorch" not in str(info.value)
