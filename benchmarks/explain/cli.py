"""The benchmark's options and entry point."""

from __future__ import annotations

import argparse
import warnings

import torch

from advxai.batching import CPU_CANDIDATES

from .settings import CPU_DEFAULTS, GPU_DEFAULTS, MODELS, PGD_LOOP_IMAGES
from .stages import LIME_SHAPE_SAMPLES


def fast_arithmetics(text: str) -> list[str]:
    """``--arithmetic``: the comma-separated fast ``image.arithmetic`` names."""
    from advxai.constants import ARITHMETICS

    names = [name for name in text.split(",") if name]
    for name in names:
        if name == "exact" or name not in ARITHMETICS:
            raise argparse.ArgumentTypeError(f"{name!r} is not a fast arithmetic; use {list(ARITHMETICS[1:])}")
    return names


def batch_sizes(text: str) -> list[int]:
    """``--sweep-batches``: comma-separated positive batch sizes."""
    try:
        sizes = [int(size) for size in text.split(",") if size]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of batch sizes") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from . import __doc__ as overview

    parser = argparse.ArgumentParser(description=overview, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    parser.add_argument("--images", type=int, help="images explained by the engine (CPU 2, GPU 32)")
    parser.add_argument(
        "--reference-images",
        type=int,
        help="images the reference explains at once (CPU 2, GPU 32, the authors' batch; halved where "
        "the device runs out of memory, and the output says so)",
    )
    parser.add_argument("--noise", type=int, help="NoiseTunnel samples J (CPU and GPU 25)")
    parser.add_argument("--ig-steps", type=int, help="IG steps of the first run setting (CPU 2, GPU 50)")
    parser.add_argument("--lime-samples", type=int, help="LIME samples of the first run setting (CPU 32, GPU 512)")
    parser.add_argument("--pgd-steps", type=int, help="PGD steps (CPU 5, GPU 100)")
    parser.add_argument(
        "--pgd-images", type=int, help="images the batched attack is timed on (default: one engine batch)"
    )
    parser.add_argument(
        "--pgd-loop-images",
        type=int,
        default=PGD_LOOP_IMAGES,
        help=f"images the batch-1 captum loop is timed on, the first of those (default {PGD_LOOP_IMAGES})",
    )
    parser.add_argument("--batch-size", type=int, help="engine batch size (default: the fastest measured)")
    parser.add_argument(
        "--max-pass-batch", type=int, help="largest batch timed for the model's passes (CPU 32, GPU 128)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="alternating rounds of every comparison (engine, passes, label flip and reference; PGD; "
        "LIME at captum's shape: at least 3); the fastest of each side is kept",
    )
    parser.add_argument(
        "--lime-shape-samples",
        type=int,
        default=LIME_SHAPE_SAMPLES,
        help=f"LIME samples of the comparison at captum's pass shape, at least (default {LIME_SHAPE_SAMPLES}; "
        "fewer passes let the machine's noise decide its sign)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--labelflip-sweep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the label-flip stage at every k the paper sweeps (default), or at k = 3 only (a quicker CPU run)",
    )
    parser.add_argument(
        "--sweep-batches",
        default=[],
        type=batch_sizes,
        help="comma-separated engine batch sizes: every family timed again at each, against the same reference "
        "(one SWEEP line each: is any family slower than captum at any batch_size the config allows?)",
    )
    parser.add_argument(
        "--arithmetic",
        default="",
        type=fast_arithmetics,
        help="comma-separated fast arithmetics (tf32, bf16) to compare with exact float32: one FAST line each",
    )
    args = parser.parse_args(argv)
    defaults = GPU_DEFAULTS if args.device == "cuda" else CPU_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.max_pass_batch is None:
        args.max_pass_batch = 128 if args.device == "cuda" else max(CPU_CANDIDATES)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # captum repeats these on every call; they say nothing about speed or results
    warnings.filterwarnings("ignore", message=".*(gradient_mask|Setting backward hooks|non-full backward hook).*")
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    from advxai.runtime import use_device

    from .run import bench_model

    device = use_device(args.device)  # exact float32 on CUDA, as in the workflow's jobs
    torch.manual_seed(args.seed)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
    )
    summaries = []
    for name in args.models.split(","):
        lines = bench_model(name, args, device)
        print("\n".join(lines), flush=True)  # as soon as a model is done; all of them again at the end
        summaries += lines
    print()
    for line in summaries:
        print(line)
