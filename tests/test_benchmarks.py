"""The benchmarks' smoke modes and the helpers they check their baselines with."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import associative_embedding as ae

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def load(name: str):
    """Import ``benchmarks/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoke(script: str, *args: str) -> str:
    """Run a benchmark in a subprocess; return its output, failing on a non-zero status."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


# --- bench_decode: mmpose's layout and the comparison of people ----------------------------
def test_mmpose_inputs_put_tag_dimension_d_of_joint_k_in_channel_d_times_k_plus_k(rng):
    bench = load("bench_decode")
    tags = rng.standard_normal((2, 17, 2, 8, 9)).astype(np.float32)
    heat = rng.random((2, 17, 8, 9)).astype(np.float32)
    heat_t, flat = bench.Mmpose(lambda **kw: None, 8, 9).inputs(heat, tags)
    assert flat.shape == (2, 34, 8, 9)
    for k in range(17):
        for d in range(2):
            np.testing.assert_array_equal(flat[:, d * 17 + k].numpy(), tags[:, k, d])
    np.testing.assert_array_equal(heat_t.numpy(), heat)


def mmpose_style(poses, creation_order):
    """``poses`` as mmpose's batch_decode returns them: lists of one image, creation order."""
    kp = poses.keypoints[creation_order, :, :2]
    return [kp], [poses.keypoints[creation_order, :, 2]], [poses.scores[creation_order]]


def test_people_compare_equal_to_mmpose_in_creation_order_and_differences_are_caught(rng):
    bench = load("bench_decode")
    heat, tags = load("scenes").make_batch(3, 1, 6, 64, 1)
    (poses,) = ae.decode(heat, tags, ae.DecodeConfig.preset("mmpose-1.x"))
    assert len(poses) >= 2
    shuffled = rng.permutation(len(poses))
    bench.check_same_as_mmpose(poses, mmpose_style(poses, shuffled))  # order does not matter

    moved = mmpose_style(poses, shuffled)
    moved[0][0][0, 3, 0] += 0.25
    with pytest.raises(AssertionError, match="coordinates differ"):
        bench.check_same_as_mmpose(poses, moved)
    fewer = mmpose_style(poses, shuffled[1:])
    with pytest.raises(AssertionError, match="people"):
        bench.check_same_as_mmpose(poses, fewer)
    rescored = mmpose_style(poses, shuffled)
    rescored[1][0][0, 0] *= 0.5
    with pytest.raises(AssertionError, match="joint scores differ"):
        bench.check_same_as_mmpose(poses, rescored)


def test_without_mmpose_the_baseline_is_skipped_with_a_note(monkeypatch):
    bench = load("bench_decode")
    monkeypatch.setitem(sys.modules, "mmpose", None)  # makes "import mmpose" fail
    codec, note = bench.load_mmpose()
    assert codec is None
    assert "mmpose not installed" in note and "skipped" in note


def test_cpu_description_names_the_model_and_vector_flags():
    line = load("bench_decode").cpu_description()
    assert line.startswith("CPU: ")
    assert "flags: " in line or "lscpu unavailable" in line


# --- smoke runs --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "table_header"),
    [
        ("bench_loss.py", "| D | people | loop (ms) | vectorised (ms) | speed-up |"),
        ("bench_targets.py", "| method | B | people | map | loop | dense | library |"),
        ("bench_instances.py", "decode_instances, one image (ms)"),
        ("bench_grouping.py", "| higherhrnet | default |"),
    ],
)
def test_bench_smoke_prints_its_table(script, table_header):
    """Every benchmark's smoke mode runs here once (CI's slow lane), not again in .ci/run."""
    out = smoke(script, "--smoke")
    assert table_header in out, out[-2000:]
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if table_header in line)
    assert len(lines) > header + 1 and lines[header + 1].strip(), out[-2000:]


@pytest.mark.slow
def test_bench_decode_smoke_prints_every_table():
    out = smoke("bench_decode.py", "--smoke")
    for title in ("One image per call", "Per image, one thread", "one call per image", "Batch of"):
        assert title in out
    if importlib.util.find_spec("mmpose") is None:
        assert "mmpose not installed" in out
    else:  # the people were compared before the codec was timed
        assert "mmpose 1.3.2" in out and "skipped" not in out


@pytest.mark.slow
def test_bench_decode_smoke_without_mmpose():
    out = smoke("bench_decode.py", "--smoke", "--no-mmpose")
    assert "mmpose skipped (--no-mmpose)" in out
    row = next(line for line in out.splitlines() if line.startswith("17x64x64 D=1"))
    assert "skipped" in row


@pytest.mark.slow
def test_bench_first_call_smoke_loads_from_the_warm_cache():
    out = smoke("bench_first_call.py", "--smoke")
    row = next(line for line in out.splitlines() if "caller's cache, warm" in line)
    assert "loaded from" in row


@pytest.mark.slow
def test_gpu_check_runs_every_part_on_the_cpu():
    out = smoke("gpu_check.py", "--device", "cpu", "--smoke")
    assert "GPU check on CPU" in out
    for part in ("pytest -m cuda", "decode: device == CPU", "decode timing", "loss timing"):
        line = next(line for line in out.splitlines() if line.startswith(part))
        assert " ok " in line, line
    assert "0 scene(s) differ" in out
    training = next(line for line in out.splitlines() if line.startswith("training (AMP)"))
    assert " ok " in training and "images/s" in training and "% of a step" in training


def test_gpu_check_reports_a_failing_part_and_exits_1(monkeypatch, capsys):
    gpu_check = load("gpu_check")
    # the table's logic only: no compilation of every decoder kernel first
    monkeypatch.setattr(gpu_check.ae, "warmup", lambda: None)

    def broken(device, sizes):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(
        gpu_check, "PARTS", [("works", lambda device, sizes: (True, "fine")), ("broken", broken)]
    )
    assert gpu_check.main(["--device", "cpu", "--smoke"]) == 1
    rows = capsys.readouterr().out.splitlines()
    assert next(r for r in rows if r.startswith("works")).split()[1] == "ok"
    broken_row = next(r for r in rows if r.startswith("broken"))
    assert "FAILED" in broken_row and "RuntimeError: out of memory" in broken_row
    assert next(r for r in rows if r.startswith("total")).split()[1] == "FAILED"
