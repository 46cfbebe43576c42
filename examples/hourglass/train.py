"""Train the stacked hourglass with associative embedding, end to end.

Demo (no GPU, no data; trains the ``tiny`` preset on synthetic crowds within a time
budget, evaluates on held-out synthetic images and ends by printing ``AP <value>``)::

    python examples/hourglass/train.py --preset tiny --data synthetic --output DIR

COCO (pycocotools; person_keypoints_*.json + images folder)::

    torchrun --nproc_per_node 8 examples/hourglass/train.py --preset paper --data coco \\
        --train-json annotations/person_keypoints_train2017.json --train-images train2017 \\
        --val-json annotations/person_keypoints_val2017.json --val-images val2017 --output DIR

Loss per stack (intermediate supervision, averaged over stacks as pose-ae-train
does): ``heatmap_weight * ae.HeatmapLoss + tag_weight * (pull + push)`` with
``ae.AssociativeEmbeddingLoss`` and targets from ``ae.render_heatmaps``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bookkeeping import (
    Logger,
    Sampler,
    WeightAverage,
    save_checkpoint,
    setup_distributed,
    write_curve,
)
from data import collate
from model import HourglassConfig, PoseNet, split_outputs
from options import build_parser, parse_args, resolve

import associative_embedding as ae

__all__ = ["WeightAverage", "build_parser", "main", "parse_args", "resolve"]


# --------------------------------------------------------------------------- training


def compute_loss(outputs, batch, config, criteria, args, device):
    """Loss summed over the parts, averaged over stacks; returns (total, parts dict)."""
    heatmap_loss, tag_loss = criteria
    out_size = (outputs.shape[-2], outputs.shape[-1])
    keypoints = batch["keypoints"].to(device)
    # continuous input pixels -> continuous output pixels (pixel (i, j) covers [j, j+1))
    kp_out = ae.scale_keypoints(keypoints, (config.input_size,) * 2, out_size)
    # "reference": peak at the pixel that contains the joint; "exact": the Gaussian at the
    # joint's sub-pixel position (pixel centres at +0.5, the library's convention)
    target = ae.render_heatmaps(kp_out, out_size, sigma=args.sigma, method=args.render)
    mask = batch["mask"].to(device) if batch["mask"] is not None else None
    if args.positive_weight:
        # weighted MSE: pixels under a target Gaussian count (1 + w * target) times
        weight = 1 + args.positive_weight * target
        mask = weight if mask is None else weight * mask[:, None]
    hm_sum = pull_sum = push_sum = 0.0
    nstack = outputs.shape[1]
    # unbind, not outputs[:, s]: its gradient is one stack, not a zero-filled copy per stack
    for out in outputs.float().unbind(1):
        hm, tg = split_outputs(out, config.num_joints, config.tag_dim)
        hm_sum = hm_sum + heatmap_loss(hm, target, mask)
        # tags are read at the pixel that contains the joint (the loss's default)
        pull, push = tag_loss(tg, kp_out)
        pull_sum, push_sum = pull_sum + pull, push_sum + push
    hm_l, pull_l, push_l = hm_sum / nstack, pull_sum / nstack, push_sum / nstack
    total = args.heatmap_weight * hm_l + args.tag_weight * (pull_l + push_l)
    return total, {"heatmap": hm_l.detach(), "pull": pull_l.detach(), "push": push_l.detach()}


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX instructions).

    oneDNN's own test (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also says yes on
    AVX-512 CPUs without those instructions, where it emulates bf16 (converting to and
    from float32 around float32 arithmetic) and trains slower than in float32.
    """
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """Autocast dtype for training: "none", "bf16" or "fp16".

    ``auto`` picks bf16 on CUDA when supported (else fp16 with a gradient scaler), and
    bf16 on a CPU that computes it natively (:func:`cpu_bf16_supported`; 1.8x faster
    steps on an AVX512-BF16 core); other CPUs train in float32, since emulated bf16 is
    slower than float32.
    Evaluation always runs in float32 on the CPU.
    """
    if device.type == "cuda":
        if amp == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return amp
    if amp == "fp16":
        raise SystemExit("--amp fp16 needs CUDA; use bf16 or none on the CPU")
    if amp == "auto":
        return "bf16" if cpu_bf16_supported() else "none"
    return amp


def learning_rate(args, step: int, progress: float) -> float:
    """Learning rate at ``step``; ``progress`` in [0, 1] is the fraction of the budget used."""
    if args.lr_schedule == "cosine":
        cos = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        lr = args.lr_final + (args.lr - args.lr_final) * cos
    else:
        lr = args.lr if progress < args.lr_drop else args.lr_final
    if args.warmup_steps and step < args.warmup_steps:
        lr *= (step + 1) / args.warmup_steps
    return lr


def make_loader(args, config, rank, world, start_index, device):
    if args.data == "synthetic":
        from data.synthetic import SyntheticPeople

        # training images come from seed 1000 + args.seed; held-out sets use seeds 1, 2 and
        # the generator's 1 to 4 people, training scenes 1 to args.train_people
        if args.train_people < 1:
            raise SystemExit(f"train_people must be at least 1, got {args.train_people}")
        dataset = SyntheticPeople(
            seed=1000 + args.seed, size=config.input_size, max_people=args.train_people
        )
        sampler = Sampler(len(dataset), rank, world, start_index, None)
    elif args.data == "mpii":
        from data.mpii import MPIIKeypoints, load_annotations

        if not (args.mpii_annotations and args.mpii_images):
            raise SystemExit("--data mpii needs --mpii-annotations and --mpii-images")
        images = [im for im in load_annotations(args.mpii_annotations) if im.train]
        dataset = MPIIKeypoints(
            images, args.mpii_images, config.input_size, train=True, seed=args.seed
        )
        sampler = Sampler(len(dataset), rank, world, start_index, args.seed)
    else:
        from data.coco import CocoKeypoints

        if not (args.train_json and args.train_images):
            raise SystemExit("--data coco needs --train-json and --train-images")
        dataset = CocoKeypoints(
            args.train_json,
            args.train_images,
            config.input_size,
            config.output_size,
            train=True,
            seed=args.seed,
        )
        sampler = Sampler(len(dataset), rank, world, start_index, args.seed)
    workers = args.workers
    if workers is None:
        workers = 4 if device.type == "cuda" else 0
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


@dataclass
class Run:
    """Everything one training process holds: settings, model, optimiser, progress."""

    args: argparse.Namespace
    config: HourglassConfig
    rank: int
    world: int
    device: torch.device
    amp: str
    output: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    ema: WeightAverage | None
    state: dict
    train_model: torch.nn.Module | None = None
    criteria: tuple = ()
    logger: Logger | None = None
    progress_bar: object = None
    started: float = 0.0  # time.time() when this process began training
    seconds_before: float = 0.0  # training seconds of earlier (resumed) runs

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.output / "checkpoint.pt"

    def elapsed(self) -> float:
        """Training seconds so far, resumed runs included."""
        return self.seconds_before + time.time() - self.started

    def eval_model(self) -> torch.nn.Module:
        """The weights to evaluate: the moving average when there is one."""
        return self.ema.model(self.model) if self.ema is not None else self.model

    def say(self, msg: str) -> None:
        """Print ``msg`` without breaking the progress bar."""
        if self.progress_bar is not None:
            self.progress_bar.write(msg)
        else:
            print(msg, flush=True)

    def save(self) -> None:
        """Write ``checkpoint.pt`` (weights, optimiser, average, progress, settings)."""
        save_checkpoint(
            self.checkpoint_path,
            self.model,
            self.optimizer,
            self.scaler,
            self.state,
            self.config,
            self.args,
            self.ema,
        )


def create_run(argv=None) -> Run:
    """Parse the command line, join the process group and build model and optimiser."""
    config, args = resolve(parse_args(argv))
    rank, world, device = setup_distributed(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)
    output = Path(args.output)
    if rank == 0:
        output.mkdir(parents=True, exist_ok=True)
    amp = resolve_amp(args.amp, device)
    model = PoseNet(config).to(device).to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return Run(
        args=args,
        config=config,
        rank=rank,
        world=world,
        device=device,
        amp=amp,
        output=output,
        model=model,
        # fused: one kernel for all parameters (3x faster than the per-tensor loop on a CPU)
        optimizer=opt_cls(
            model.parameters(),
            lr=args.lr,
            betas=(0.9, args.beta2),
            weight_decay=args.weight_decay,
            fused=True,
        ),
        scaler=torch.amp.GradScaler("cuda") if amp == "fp16" else None,
        # every rank holds the same weights: rank 0 alone keeps the average it evaluates
        ema=WeightAverage(model, args.ema) if args.ema and rank == 0 else None,
        state={"step": 0, "images": 0, "train_seconds": 0.0, "curve": []},
    )


def resume(run: Run) -> None:
    """Load weights, optimiser, scaler, average and progress from ``--resume``."""
    args = run.args
    if not args.resume:
        return
    path = run.checkpoint_path if args.resume == "auto" else Path(args.resume)
    if not path.exists():
        if args.resume != "auto":
            raise SystemExit(f"--resume: no checkpoint at {path}")
        return
    ck = torch.load(path, map_location="cpu", weights_only=False)
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    if run.scaler is not None and ck.get("scaler"):
        run.scaler.load_state_dict(ck["scaler"])
    if run.ema is not None and ck.get("ema") is not None:
        run.ema.state = {k: v.to(run.device) for k, v in ck["ema"].items()}
        run.ema.updates = ck.get("ema_updates", 0)
    run.state = ck["state"]
    if run.is_main:
        print(f"resumed from {path} at step {run.state['step']}")


def prepare_training(run: Run) -> torch.utils.data.DataLoader:
    """Compile/DDP-wrap the model, build losses, loader, log and progress bar."""
    args = run.args
    run.train_model = run.model
    if args.compile:
        run.train_model = torch.compile(run.train_model)
    if run.world > 1:
        run.train_model = torch.nn.parallel.DistributedDataParallel(
            run.train_model, device_ids=[run.device.index] if run.device.type == "cuda" else None
        )
    run.criteria = (ae.HeatmapLoss(), ae.AssociativeEmbeddingLoss(push=args.push))
    loader = make_loader(args, run.config, run.rank, run.world, run.state["images"], run.device)
    if run.is_main:
        run.logger = Logger(run.output, args.tensorboard, bool(args.resume))
        if not args.no_progress:
            run.progress_bar = make_progress_bar(args, run.state["step"])
    run.seconds_before, run.started = run.state["train_seconds"], time.time()
    if run.is_main:
        n_params = sum(p.numel() for p in run.model.parameters())
        budget = f"{args.minutes:g} min" if args.minutes else f"{args.steps} steps"
        print(
            f"preset {args.preset}: {n_params / 1e6:.2f} M parameters, input "
            f"{run.config.input_size}, output {run.config.output_size}, {run.world} "
            f"process(es) on {run.device}, amp {run.amp}, batch {args.batch_size}/process, "
            f"budget {budget}",
            flush=True,
        )
    return loader


def make_progress_bar(args, initial_step: int):
    """A tqdm bar over the steps, or None without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(
        total=args.steps if args.steps else None,
        initial=initial_step,
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
        file=sys.stdout,
    )


def budget_used(run: Run) -> tuple[float, bool]:
    """Fraction of the time or step budget spent, and whether to stop (rank 0 decides)."""
    args = run.args
    progress = 0.0
    if args.minutes:
        progress = max(progress, run.elapsed() / (args.minutes * 60))
    if args.steps:
        progress = max(progress, run.state["step"] / args.steps)
    stop = torch.tensor([1.0 if progress >= 1.0 else 0.0])
    if run.world > 1:
        # every rank leaves the loop at the same step
        stop = stop.to(run.device)
        torch.distributed.broadcast(stop, 0)
    return progress, stop.item() > 0


def train_step(run: Run, batch: dict, lr: float) -> tuple[torch.Tensor, dict]:
    """One optimiser step on ``batch`` at learning rate ``lr``; returns (loss, parts)."""
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    images = batch["images"].to(run.device, non_blocking=True).permute(0, 3, 1, 2)
    images = images.float().div_(255).contiguous(memory_format=torch.channels_last)
    ctx = (
        torch.autocast(
            run.device.type, dtype=torch.bfloat16 if run.amp == "bf16" else torch.float16
        )
        if run.amp != "none"
        else contextlib.nullcontext()
    )
    with ctx:
        outputs = run.train_model(images)
    loss, parts = compute_loss(outputs, batch, run.config, run.criteria, run.args, run.device)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    if run.ema is not None:
        run.ema.update(run.model)
    run.state["step"] += 1
    run.state["images"] += run.args.batch_size * run.world
    return loss, parts


def log_step(run: Run, lr: float, loss: torch.Tensor, parts: dict, images_per_s: float) -> None:
    """One CSV/TensorBoard row and the progress bar's figures."""
    vals = {k: float(v) for k, v in parts.items()}
    run.logger.log(
        {
            "step": run.state["step"],
            "images": run.state["images"],
            "minutes": round(run.elapsed() / 60, 3),
            "lr": lr,
            "loss": float(loss.detach()),
            **vals,
            "images_per_s": round(images_per_s, 2),
        }
    )
    if run.progress_bar is not None:
        run.progress_bar.set_postfix(
            loss=f"{float(loss.detach()):.4f}",
            hm=f"{vals['heatmap']:.2e}",
            pull=f"{vals['pull']:.3f}",
            push=f"{vals['push']:.3f}",
            img_s=f"{images_per_s:.1f}",
            refresh=False,
        )


def curve_point(run: Run, stats: dict, minutes: float) -> None:
    """Add an (elapsed minutes, AP) point to the AP-vs-time curve and redraw it."""
    run.state["curve"].append(
        {
            "minutes": round(minutes, 3),
            "step": run.state["step"],
            "images": run.state["images"],
            **{k: round(stats[k], 4) for k in ("AP", "AP50", "AP75")},
        }
    )
    write_curve(run.output, run.state["curve"])


def held_out_evaluation(run: Run) -> None:
    """AP on held-out synthetic images (seed 2) during training, for the AP curve."""
    from evaluate import evaluate_synthetic

    t = time.time()
    # without the shift test: its four passes would take their time from training
    options = {**test_options(run.args, run.device, run.amp), "shift_test": False}
    stats = evaluate_synthetic(
        run.eval_model(), run.config, seed=2, num_images=run.args.eval_images, **options
    )
    curve_point(run, stats, run.elapsed() / 60)
    row = run.state["curve"][-1]
    run.say(
        f"[{row['minutes']:.1f} min, step {row['step']}] held-out AP {row['AP']:.3f} "
        f"(AP50 {row['AP50']:.3f}, AP75 {row['AP75']:.3f}; {time.time() - t:.1f} s)"
    )


def train(run: Run, loader) -> None:
    """The training loop: steps until the budget is spent, logging, evaluating, saving."""
    args = run.args
    run.model.train()
    last_eval = last_ckpt = window_t = time.time()
    window_n = 0
    for batch in loader:
        progress, stop = budget_used(run)
        if stop:
            break
        lr = learning_rate(args, run.state["step"], progress)
        loss, parts = train_step(run, batch, lr)
        window_n += args.batch_size * run.world
        step = run.state["step"]
        if run.is_main and (step % args.log_every == 0 or step == 1):
            now = time.time()
            log_step(run, lr, loss, parts, window_n / max(now - window_t, 1e-9))
            window_t, window_n = now, 0
        if run.progress_bar is not None:
            run.progress_bar.update(1)
        if not run.is_main:
            continue
        if (
            args.data == "synthetic"
            and args.eval_every
            and time.time() - last_eval > args.eval_every * 60
        ):
            held_out_evaluation(run)
            last_eval = time.time()
        if time.time() - last_ckpt > args.checkpoint_every * 60:
            run.state["train_seconds"] = run.elapsed()
            run.save()
            last_ckpt = time.time()
    run.state["train_seconds"] = run.elapsed()
    if run.progress_bar is not None:
        run.progress_bar.close()


def finish(run: Run, t_start: float) -> dict:
    """Save, evaluate (rank 0) and leave the process group; returns the summary."""
    state = run.state
    result: dict = {
        "steps": state["step"],
        "images": state["images"],
        "train_minutes": round(state["train_seconds"] / 60, 2),
    }
    if run.is_main:
        run.save()
        run.logger.close()
        print(
            f"trained {state['step']} steps ({state['images']} images) in "
            f"{state['train_seconds'] / 60:.1f} min",
            flush=True,
        )
        if not run.args.no_final_eval:
            result.update(final_evaluation(run))
        (run.output / "summary.json").write_text(json.dumps(result, indent=2))
        print(f"total wall time {(time.time() - t_start) / 60:.1f} min")
        if "AP" in result:
            print(f"AP {result['AP']:.4f}", flush=True)
    if run.world > 1:
        # every rank leaves together: a rank that tears gloo down while its peer is still
        # saving or evaluating aborts ("terminate called without an active exception")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


def main(argv=None) -> dict:
    """Train as the command line says, then evaluate; returns the summary dict.

    The steps: :func:`create_run` (settings, process group, model, optimiser),
    :func:`resume`, :func:`prepare_training` (wrappers, losses, data, log),
    :func:`train` (the loop) and :func:`finish` (checkpoint, final evaluation).
    """
    t_start = time.time()
    run = create_run(argv)
    resume(run)
    loader = prepare_training(run)
    train(run, loader)
    return finish(run, t_start)


def test_options(args, device, amp: str) -> dict:
    """Test-time options of the preset (or the command line) for ``evaluate.predict``."""
    return {
        "device": device,
        "amp": amp,
        "project": args.project,
        "decode_options": {"detection_threshold": args.detection_threshold},
        "subpixel": args.subpixel,
        "shift_test": args.shift_test,
    }


def final_evaluation(run: Run) -> dict:
    """AP of the final weights: held-out synthetic images (seed 1), COCO val or MPII groups."""
    from evaluate import evaluate_coco, evaluate_synthetic

    args, options = run.args, test_options(run.args, run.device, run.amp)
    model = run.eval_model()
    t = time.time()
    if args.data == "synthetic":
        gt_stats = evaluate_synthetic(
            model,
            run.config,
            seed=1,
            num_images=min(100, args.final_eval_images),
            gt_heatmaps=True,
            **options,
            render=args.render,
            sigma=args.sigma,
        )
        print(f"ground-truth heatmaps + predicted tags (grouping alone): AP {gt_stats['AP']:.4f}")
        stats = evaluate_synthetic(
            model,
            run.config,
            seed=1,
            num_images=args.final_eval_images,
            output=run.output,
            verbose=True,
            **options,
        )
        curve_point(run, stats, (run.state["train_seconds"] + time.time() - t) / 60)
        print("AP vs time (held-out synthetic):")
        for c in run.state["curve"]:
            print(f"  {c['minutes']:6.2f} min  step {c['step']:6d}  AP {c['AP']:.3f}")
        out = {f"gt_heatmaps_{k}": v for k, v in gt_stats.items()}
    elif args.data == "mpii":
        from evaluate import evaluate_mpii_groups

        if not (args.mpii_annotations and args.mpii_groups and args.mpii_images):
            print("no --mpii-groups: skipping the MPII evaluation")
            return {}
        stats = evaluate_mpii_groups(model, run.config, args, **options)
        out = {}
    else:
        if not (args.val_json and args.val_images):
            print("no --val-json/--val-images: skipping the COCO evaluation")
            return {}
        stats = evaluate_coco(
            model,
            run.config,
            args.val_json,
            args.val_images,
            output=run.output,
            verbose=True,
            **options,
        )
        out = {}
    print(f"evaluation took {time.time() - t:.1f} s")
    out.update(stats)
    return out


if __name__ == "__main__":
    main()
