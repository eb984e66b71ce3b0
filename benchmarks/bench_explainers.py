"""Benchmark: the advxai explainer engine against the reference captum call pattern.

Explains the same images with Sal, Sal-SG, Sal-SG², Sal-VG and LIME (rectangles, 4×4), then
aggregates every map to segments:

* engine: ``explain_gradient_family`` (one plain pass + one set of J noisy passes for all three
  ensembles) and ``lime_coefficients`` (all items' samples batched through the model);
* reference (the authors' pattern, docs/method.md §7): ``Saliency``, three ``NoiseTunnel`` calls
  (smoothgrad, smoothgrad_sq, vargrad) and ``Lime`` per image with ``perturbations_per_eval=16``.

Random-weight torchvision model, no downloads. Run: ``python benchmarks/bench_explainers.py``.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
import torchvision
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import Lime, NoiseTunnel, Saliency
from captum.attr._core.lime import get_exp_kernel_similarity_function

from advxai.explainers import aggregate, explain_gradient_family, lime_coefficients


def rectangles(n_items: int, side: int, grid: int = 4) -> torch.Tensor:
    block = (torch.arange(side) // (side // grid)).clamp(max=grid - 1)
    return (block[:, None] * grid + block[None, :]).expand(n_items, side, side).clone()


def timed(label: str, work: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` runs (the least disturbed by other load on the machine)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    print(f"  {label:<34s} {min(times):8.2f} s  (min of {repeats}: {', '.join(f'{t:.2f}' for t in times)})")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--noise", type=int, default=8, help="NoiseTunnel samples J")
    parser.add_argument("--lime-samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="engine: examples per forward/backward")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (the minimum is reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.arch, weights=None).to(device).eval()
    inputs = torch.randn(args.images, 3, args.size, args.size, device=device)
    with torch.no_grad():
        targets = model(inputs).argmax(1)
    masks = rectangles(args.images, args.size).to(device)
    ids = list(range(args.images))
    print(f"{args.arch}, {args.images} images of {args.size} px, J={args.noise}, "
          f"LIME {args.lime_samples} samples, device {device}, torch threads {torch.get_num_threads()}")

    def engine_gradients() -> None:
        explain_gradient_family(
            model, inputs, targets, ids, "sal", explainers=["sal", "sal-sg", "sal-sg2", "sal-vg"],
            masks={"rect": masks}, n_segments={"rect": 16}, n_noise=args.noise, seed=0, batch_size=args.batch_size,
        )

    def engine_lime() -> None:
        lime_coefficients(model, inputs, targets, masks, 16, ids=ids, n_samples=args.lime_samples, seed=0,
                          batch_size=args.batch_size)

    def captum_gradients() -> None:
        maps = [Saliency(model).attribute(inputs, target=targets, abs=False)]
        tunnel = NoiseTunnel(Saliency(model))
        for nt_type in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            maps.append(tunnel.attribute(inputs, nt_type=nt_type, nt_samples=args.noise, stdevs=1.0,
                                         target=targets, abs=False))
        for attribution in maps:
            aggregate(attribution, masks, 16)

    def captum_lime() -> None:
        lime = Lime(model, interpretable_model=SkLearnLinearRegression(),
                    similarity_func=get_exp_kernel_similarity_function("cosine", 0.25))
        for item in range(args.images):
            attribution = lime.attribute(inputs[item : item + 1], target=int(targets[item]),
                                         n_samples=args.lime_samples, feature_mask=masks[item].expand(1, 3, -1, -1),
                                         perturbations_per_eval=16)
            aggregate(attribution, masks[item : item + 1], 16)

    timed("warm-up (not counted)", lambda: (engine_gradients(), engine_lime()), device, 1)
    results = {
        "gradients (Sal, SG, SG2, VG)": (
            timed("engine: gradient family", engine_gradients, device, args.repeats),
            timed("captum: Saliency + NoiseTunnel x3", captum_gradients, device, args.repeats),
        ),
        "LIME": (
            timed("engine: LIME (batched items)", engine_lime, device, args.repeats),
            timed("captum: Lime per image", captum_lime, device, args.repeats),
        ),
    }
    print("ratios (captum time / engine time):")
    for name, (ours, theirs) in results.items():
        print(f"  {name:<34s} {theirs / ours:8.2f} x")
    total_ours = sum(ours for ours, _ in results.values())
    total_theirs = sum(theirs for _, theirs in results.values())
    print(f"  {'total':<34s} {total_theirs / total_ours:8.2f} x  ({total_theirs:.2f} s vs {total_ours:.2f} s)")
    print(f"  gradient passes per image: captum {1 + 3 * args.noise}, engine {1 + args.noise}")


if __name__ == "__main__":
    main()
