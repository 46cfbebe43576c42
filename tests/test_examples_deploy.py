"""The deploy example (examples/deploy): the exported test-time model and torch-free inference.

``export.py`` must build what ``examples/hourglass/evaluate.py`` computes, and
``infer.py`` must run without torch and score what ``evaluate.py`` scores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_no_torch import BLOCK_TORCH

ROOT = Path(__file__).resolve().parents[1]
HG = ROOT / "examples" / "hourglass"
DEPLOY = ROOT / "examples" / "deploy"
for folder in (DEPLOY, HG):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import evaluate as hg_eval  # noqa: E402
import export as deploy_export  # noqa: E402
import pipeline as deploy_pipeline  # noqa: E402
from model import PoseNet  # noqa: E402
from presets import PRESETS  # noqa: E402

# a narrow network: the tests check plumbing, not accuracy
SMALL = ["--set", "inp_dim=16", "increase=8", "eval_every=1000"]
ONNX = ("onnx", "onnxscript", "onnxruntime")


def _small_tiny(seed=0):
    torch.manual_seed(seed)
    config = PRESETS["tiny"].network.replace(inp_dim=16, increase=8)
    model = PoseNet(config).to(memory_format=torch.channels_last).eval()
    # random BatchNorm statistics, so that the maps are not flat
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model, config


def _images(n, side, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize(
    ("project", "shift_test", "flip"),
    [(True, True, True), (True, False, True), (False, False, True), (True, True, False)],
)
def test_test_time_model_equals_network_maps(project, shift_test, flip):
    """The exported module computes evaluate.network_maps's heatmaps and tags."""
    model, config = _small_tiny()
    settings = {"project": project, "shift_test": shift_test}
    tt = deploy_export.build_test_time_model(model, config, settings, flip=flip)
    assert isinstance(tt, deploy_export.ShiftTest) == shift_test
    images = _images(3, config.input_size)
    ref_h, ref_t, factors, map_stride = hg_eval.network_maps(
        model, config, images, flip=flip, project=project, shift_test=shift_test
    )
    x, r = deploy_pipeline.to_input(images, config.input_size)
    with torch.no_grad():
        heatmaps, tags = tt(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
    np.testing.assert_array_equal(r, factors)
    assert map_stride == config.input_size / heatmaps.shape[-1]
    assert heatmaps.shape == ref_h.shape
    assert tags.shape == ref_t.shape
    torch.testing.assert_close(heatmaps, ref_h, rtol=0, atol=1e-5)
    torch.testing.assert_close(tags, ref_t, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (0, 1), (1, 1), (2, 3)])
def test_shift_image_back_equals_evaluate_shift_image(dx, dy):
    m = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(dx + 10 * dy))
    expected = hg_eval.shift_image(m, -dx, -dy)
    assert torch.equal(deploy_export._shift_image_back(m, dx, dy), expected)
    assert torch.equal(deploy_export.ShiftTest.shift_in(m, dx, dy), hg_eval.shift_image(m, dx, dy))


@pytest.mark.parametrize("shape", [(96, 96), (50, 80), (120, 64), (7, 200)])
def test_letterbox_equals_evaluate_letterbox(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours, r = deploy_pipeline.letterbox(image, 96)
    theirs, r_ref = hg_eval.letterbox(image, 96)
    np.testing.assert_array_equal(ours, theirs)
    assert r == r_ref


def test_pipeline_imports_no_torch():
    code = BLOCK_TORCH + (
        f"import sys; sys.path.insert(0, {str(DEPLOY)!r})\n"
        "import pipeline, infer\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(args: list[str], timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ONNX),
    reason="onnx, onnxscript and onnxruntime (extra onnx) are not all installed",
)
def test_checkpoint_to_onnx_to_torch_free_inference(tmp_path):
    """train.py checkpoint -> export.py -> infer.py without torch; AP as evaluate.py's."""
    ckpt_dir = tmp_path / "run"
    _run(
        [
            *(str(HG / "train.py"), "--preset", "tiny", "--output", str(ckpt_dir)),
            *("--steps", "2", "--minutes", "0", "--batch-size", "2", "--no-progress"),
            *("--threads", "1", "--no-final-eval", *SMALL),
        ]
    )
    checkpoint = ckpt_dir / "checkpoint.pt"
    out = tmp_path / "deploy"
    # a low threshold: an untrained network's people, to compare the two paths on
    threshold = ["--detection-threshold", "0.05"]
    log = _run(
        [
            *(str(DEPLOY / "export.py"), "--checkpoint", str(checkpoint), "--output", str(out)),
            *("--num-images", "6", "--batch-size", "4", "--threads", "1", *threshold),
        ]
    )
    assert "exported" in log
    assert (out / "model.onnx").exists()
    assert len(list((out / "images").glob("*.png"))) == 6
    gt = json.loads((out / "images" / "gt.json").read_text())
    assert len(gt["images"]) == 6
    eager = json.loads((out / "eager.json").read_text())
    assert eager["images"] == 6
    assert eager["network_ms"] > 0

    # infer.py in a process where import torch fails
    script = BLOCK_TORCH + (
        "import runpy, sys\n"
        f"sys.argv = ['infer.py', '--model', {str(out / 'model.onnx')!r}, '--images', "
        f"{str(out / 'images')!r}, '--output', {str(tmp_path / 'out')!r}, '--batch-size', '4', "
        "'--threads', '1', '--no-progress']\n"
        f"runpy.run_path({str(DEPLOY / 'infer.py')!r}, run_name='__main__')\n"
        "print('torch imported', 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stdout = proc.stdout
    assert "torch imported False" in stdout
    assert re.search(r"ONNX Runtime\s+[\d.]+\s+[\d.]+", stdout)
    assert re.search(r"eager torch\s+[\d.]+\s+[\d.]+", stdout)
    # a batch of 4 and a last batch of 2: the people equal eager PyTorch's
    match = re.search(r"decoded people vs eager PyTorch: equal: (\d+) people", stdout)
    assert match, stdout
    assert int(match.group(1)) > 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results) == int(match.group(1))
    assert len(list((tmp_path / "out" / "pictures").glob("*.png"))) == 6
    ap_onnx = float(re.search(r"^AP ([\d.]+)$", stdout, re.M).group(1))

    ev = _run(
        [
            *(str(HG / "evaluate.py"), "--checkpoint", str(checkpoint), "--num-images", "6"),
            *("--batch-size", "4", "--device", "cpu", *threshold),
        ]
    )
    ap_eval = float(re.search(r"^AP ([\d.]+)$", ev, re.M).group(1))
    assert abs(ap_onnx - ap_eval) <= 0.002
