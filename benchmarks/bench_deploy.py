"""Per-image time of the exported test-time model: ONNX Runtime against eager PyTorch.

The hourglass example's test-time model (``examples/deploy/export.py``: the network,
flip test, shift test as trained, ``ae.MultiScaleFlip``'s aggregation) runs on
held-out synthetic images in eager PyTorch and in ONNX Runtime, batch by batch and
alternating between the two, so that both see the same load on a shared machine;
then ``ae.decode`` (with the example's settings) runs on each one's maps. The maps
are checked to agree within 1e-4 before anything is timed. Reported: the median
over repeats of the milliseconds per image.

Usage::

    python benchmarks/bench_deploy.py --checkpoint runs/tiny/checkpoint.pt --threads 2
    python benchmarks/bench_deploy.py --model deploy/model.onnx   # an export.py output
    python benchmarks/bench_deploy.py --smoke                    # CI: a few images

Without ``--checkpoint`` the network is export.py's fresh tiny hourglass (seed 0);
without ``--model`` the model is exported to a temporary folder first (a minute).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "benchmarks", ROOT / "examples" / "deploy", ROOT / "examples" / "hourglass"):
    sys.path.insert(0, str(folder))

from bench_decode import cpu_description, table  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="train.py checkpoint (default: a fresh tiny hourglass)")
    p.add_argument("--model", type=Path, help="model.onnx exported from the same network")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="4 images, batch 2, one repeat")
    args = p.parse_args(argv)
    if args.smoke:
        args.images, args.batch_size, args.repeats = 4, 2, 1

    import onnxruntime as ort
    import torch
    from data.synthetic import SyntheticPeople
    from export import build, build_test_time_model, export
    from infer import load_session
    from pipeline import decode_batch, to_input

    import associative_embedding as ae

    torch.set_num_threads(args.threads)
    network, config, settings = build(args.checkpoint)
    model = build_test_time_model(network, config, settings)
    tmp = None
    if args.model is None:
        tmp = tempfile.TemporaryDirectory()
        args.model = Path(tmp.name) / "model.onnx"
        multiple = config.stem_stride * 2**config.depth
        meta = {
            "input_size": config.input_size,
            "size_multiple": multiple,
            "decode": {"refine": True, "adjust": True},
            "subpixel": settings["subpixel"],
        }
        meta["decode"]["detection_threshold"] = settings["detection_threshold"]
        example = torch.rand(2, 3, config.input_size, config.input_size)
        export(model, args.model, example, multiple, meta)
    session, meta = load_session(args.model, args.threads)

    ds = SyntheticPeople(seed=1, size=config.input_size)
    images = [ds.scene(i, silhouettes=False)[0] for i in range(args.images)]
    batches = [
        to_input(images[i : i + args.batch_size], config.input_size)[0]
        for i in range(0, args.images, args.batch_size)
    ]

    def eager(x):
        with torch.no_grad():
            t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            hm, tg = model(t)
        return hm.numpy(), tg.numpy()

    def onnx(x):
        return tuple(session.run(["heatmaps", "tags"], {"images": x}))

    # agreement first (and the warm-up of both runtimes and of the decoder)
    ae.warmup()
    for x in batches[:2]:
        (he, te), (ho, to) = eager(x), onnx(x)
        worst = max(float(np.abs(he - ho).max()), float(np.abs(te - to).max()))
        if worst > 1e-4:
            raise SystemExit(f"ONNX Runtime and eager PyTorch differ by {worst:.3g} > 1e-4")
        decode_batch(he, te, meta)

    runners = {"eager PyTorch": eager, "ONNX Runtime": onnx}
    network_ms: dict[str, list[float]] = {name: [] for name in runners}
    decode_ms: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        spent = {name: [0.0, 0.0] for name in runners}
        for x in batches:
            for name, run in runners.items():
                t0 = time.perf_counter()
                hm, tg = run(x)
                t1 = time.perf_counter()
                decode_batch(hm, tg, meta)
                t2 = time.perf_counter()
                spent[name][0] += t1 - t0
                spent[name][1] += t2 - t1
        for name in runners:
            network_ms[name].append(1e3 * spent[name][0] / args.images)
            decode_ms[name].append(1e3 * spent[name][1] / args.images)

    print(
        f"# bench_deploy: torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"python {platform.python_version()}, {args.threads} thread(s), "
        f"{args.images} images of {config.input_size}x{config.input_size}, batches of "
        f"{args.batch_size}, median of {args.repeats}"
    )
    print(f"# {cpu_description()}")
    print(
        f"# test-time model: flip, shift test {settings['shift_test']}, maps at "
        f"{'input' if settings['project'] else 'output'} resolution; checkpoint "
        f"{args.checkpoint or 'none (fresh tiny hourglass)'}"
    )
    rows = []
    summary = {}
    for name in runners:
        net, dec = statistics.median(network_ms[name]), statistics.median(decode_ms[name])
        summary[name] = (net, dec)
        rows.append((name, f"{net:.2f}", f"{dec:.2f}", f"{net + dec:.2f}"))
    table("ms per image", ("runtime", "network", "decode", "total"), rows)
    if tmp is not None:
        tmp.cleanup()
    return summary


if __name__ == "__main__":
    main()
