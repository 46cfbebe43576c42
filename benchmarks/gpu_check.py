"""One command that checks and times the library on a machine with one NVIDIA GPU.

Parts, each a row of the one table printed at the end:

1. ``pytest -m cuda``: the CUDA-marked tests;
2. the CUDA decode path (candidates found on the device) against the CPU path on a few
   hundred random scenes (``benchmarks/scenes.py``: sizes 64 and 128, D = 1 and 2, 1 to
   25 people): the same people, coordinates, scores and tags, bit for bit;
3. decode timings: a batch of 32 at 17x128x128, D=1, 10 people, through CUDA tensors
   and through numpy on the CPU (ms per image);
4. grouping-loss timings: forward + backward of ``ae.grouping_loss`` at B=32, K=17,
   128x128, D=1, 30 people, on the device and on the CPU;
5. a short training run of the hourglass example's ``paper`` preset (4 stacks, 512 input)
   with automatic mixed precision (bf16 where supported, else fp16 with a gradient
   scaler), on one fixed synthetic batch: images/s, peak device memory, and the share of a
   step taken by the loss (forward + backward of the example's ``compute_loss`` on the
   same outputs, timed alone, over the time of a whole step).

The whole run is sized to finish within 8 minutes on one GPU (the tests stop after 200 s,
the scene comparison after 90 s); the exit status is 1 if a part fails.
``--device cpu --smoke`` runs every part on the CPU with tiny sizes (a small hourglass
instead of ``paper``) in seconds: a check of this script, not of a GPU.

Usage::

    python benchmarks/gpu_check.py                       # on a CUDA machine, < 8 min
    python benchmarks/gpu_check.py --device cpu --smoke  # seconds, no GPU needed
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples" / "hourglass"))

from bench_loss import make_inputs  # noqa: E402
from scenes import make_batch  # noqa: E402

import associative_embedding as ae  # noqa: E402


class Sizes:
    """How much work each part does: the full check, or a seconds-long smoke run."""

    def __init__(self, smoke: bool):
        self.pytest_args = ["tests/test_decode.py"] if smoke else ["tests"]
        self.pytest_timeout = 120 if smoke else 200
        self.scene_batches = 2 if smoke else 40  # of 8 scenes each
        self.scene_seconds = 60 if smoke else 90  # stop comparing scenes after this
        self.decode_batch = 4 if smoke else 32
        self.decode_size = 64 if smoke else 128
        self.repeats = 2 if smoke else 10
        self.loss_batch = 4 if smoke else 32
        self.loss_size = 32 if smoke else 128
        self.preset = "tiny" if smoke else "paper"
        self.train_args = ["--set", "input_size=64", "--batch-size", "2"] if smoke else []
        self.train_steps = 2 if smoke else 20
        self.warmup_steps = 1 if smoke else 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- 1. the CUDA-marked tests ------------------------------------------------------------
def cuda_tests(sizes: Sizes):
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    try:
        out = subprocess.run(
            cmd + sizes.pytest_args,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=sizes.pytest_timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {sizes.pytest_timeout} s"
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else "no output"
    # 5: no test selected, which is not a failure of the tests
    return out.returncode in (0, 5), summary


# --- 2. CUDA path == CPU path ------------------------------------------------------------
def same_people(a, b) -> bool:
    return all(
        x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
        for x, y in zip(
            (a.keypoints, a.scores, a.tags), (b.keypoints, b.scores, b.tags), strict=True
        )
    )


def decode_equal(device, sizes: Sizes):
    rng = np.random.default_rng(0)
    scenes = people = differ = 0
    stop = time.perf_counter() + sizes.scene_seconds
    for i in range(sizes.scene_batches):
        if time.perf_counter() > stop:
            break
        size = int(rng.choice([64, 128]))
        dim = int(rng.choice([1, 2]))
        n_people = int(rng.integers(1, 26))
        heat, tags = make_batch(1000 + i, 8, n_people, size, dim)
        cpu = ae.decode(heat, tags)
        dev = ae.decode(torch.from_numpy(heat).to(device), torch.from_numpy(tags).to(device))
        for a, b in zip(cpu, dev, strict=True):
            scenes += 1
            people += len(a)
            differ += not same_people(a, b)
    detail = f"{scenes} scenes, {people} people; {differ} scene(s) differ"
    if scenes < 8 * sizes.scene_batches:
        detail += f" (stopped after {sizes.scene_seconds} s)"
    return differ == 0, detail


# --- 3. decode timings -------------------------------------------------------------------
def decode_timings(device, sizes: Sizes):
    b, s = sizes.decode_batch, sizes.decode_size
    heat, tags = make_batch(7, b, 10, s, 1)
    heat_d, tags_d = torch.from_numpy(heat).to(device), torch.from_numpy(tags).to(device)
    on_device = timed(lambda: ae.decode(heat_d, tags_d), device, sizes.repeats)
    on_cpu = timed(lambda: ae.decode(heat, tags), torch.device("cpu"), sizes.repeats)
    return True, (
        f"B={b}, 17x{s}x{s}, D=1, 10 people: {device.type} tensors "
        f"{1000 * on_device / b:.2f} ms/image, numpy {1000 * on_cpu / b:.2f} ms/image"
    )


# --- 4. loss timings ---------------------------------------------------------------------
def loss_timings(device, sizes: Sizes):
    b, s = sizes.loss_batch, sizes.loss_size
    tags, kp = make_inputs(b, 30, 30, 17, s, 1)

    def step(tags, kp):
        t = tags.detach().requires_grad_(True)
        pull, push = ae.grouping_loss(t, kp)
        (pull + push).backward()

    figures = []
    for dev in dict.fromkeys([device, torch.device("cpu")]):
        on_dev = (tags.to(dev), kp.to(dev))
        sec = timed(lambda on_dev=on_dev: step(*on_dev), dev, sizes.repeats)
        figures.append(f"{dev.type} {1000 * sec:.2f} ms")
    return True, f"B={b}, K=17, {s}x{s}, D=1, 30 people, fwd+bwd: " + ", ".join(figures)


# --- 5. a short training run -------------------------------------------------------------
def training(device, sizes: Sizes):
    import train as hourglass
    from data import collate
    from data.synthetic import SyntheticPeople
    from model import PoseNet
    from options import parse_args, resolve

    with tempfile.TemporaryDirectory() as out:
        argv = ["--preset", sizes.preset, "--output", out, *sizes.train_args]
        config, args = resolve(parse_args(argv))
    amp = hourglass.resolve_amp("auto", device)
    torch.manual_seed(0)
    model = PoseNet(config).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    criteria = (ae.HeatmapLoss(), ae.AssociativeEmbeddingLoss(push=args.push))
    data = SyntheticPeople(seed=1000, size=config.input_size)
    batch = collate([data[i] for i in range(args.batch_size)])
    images = batch["images"].to(device).permute(0, 3, 1, 2).float().div_(255)
    images = images.contiguous(memory_format=torch.channels_last)

    def autocast():
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype, enabled=amp != "none")

    def loss_of(outputs):
        return hourglass.compute_loss(outputs, batch, config, criteria, args, device)[0]

    def step():
        with autocast():
            outputs = model(images)
        loss = loss_of(outputs)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return outputs

    for _ in range(sizes.warmup_steps):
        outputs = step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(sizes.train_steps):
        outputs = step()
    sync(device)
    per_step = (time.perf_counter() - t0) / sizes.train_steps
    if device.type == "cuda":
        peak = f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB allocated"
    else:  # ru_maxrss is in KiB on Linux
        peak = f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB RSS"
    detached = outputs.detach()

    def loss_alone():
        out = detached.clone().requires_grad_(True)
        loss_of(out).backward()

    loss_share = timed(loss_alone, device, sizes.repeats) / per_step
    return True, (
        f"{sizes.preset} preset ({config.input_size} px, {config.nstack} "
        f"stack{'s' if config.nstack > 1 else ''}), amp {amp}, "
        f"batch {args.batch_size}: {args.batch_size / per_step:.1f} images/s, {peak}, "
        f"loss {100 * loss_share:.1f} % of a step"
    )


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores), torch {torch.__version__}"


def print_table(title, rows):
    header = ("part", "status", "seconds", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    print(f"\n{title}")
    for r in [header, *rows]:
        line = "  ".join(x.ljust(w) for x, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        print(line.rstrip())


PARTS = [
    ("pytest -m cuda", lambda device, sizes: cuda_tests(sizes)),
    ("decode: device == CPU", decode_equal),
    ("decode timing", decode_timings),
    ("loss timing", loss_timings),
    ("training (AMP)", training),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument(
        "--skip", action="append", default=[], choices=[name for name, _ in PARTS], help="a part"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu --smoke to check the script")
    sizes = Sizes(args.smoke)
    ae.warmup()
    rows, ok_all, start = [], True, time.perf_counter()
    for name, part in PARTS:
        if name in args.skip:
            rows.append((name, "skipped", "", ""))
            continue
        t0 = time.perf_counter()
        try:
            ok, detail = part(device, sizes)
        except Exception as err:  # a failing part is reported, the others still run
            ok, detail = False, f"{type(err).__name__}: {err}"
        ok_all &= ok
        rows.append((name, "ok" if ok else "FAILED", f"{time.perf_counter() - t0:.0f}", detail))
    rows.append(("total", "ok" if ok_all else "FAILED", f"{time.perf_counter() - start:.0f}", ""))
    print_table(f"GPU check on {describe(device)}" + (" (smoke)" if args.smoke else ""), rows)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
