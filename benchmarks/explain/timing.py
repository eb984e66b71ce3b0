"""Wall-clock timing: synchronised calls, rounds that alternate the compared sides, and the model's own passes.

Every comparison of the benchmark runs its sides in the same rounds, one after the other, in the
given order in even rounds and reversed in odd ones, and keeps the fastest time of each side and
part. A change of the machine's load (other processes, clock, thermal state) then falls on both
sides alike instead of on whichever block ran while it lasted, and a process's first call (which
pays for allocator growth and kernel selection) is not kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

# A step of a round: (seconds per part, result). A step that times one thing returns one part.
Step = Callable[[], tuple[Mapping[str, float], object]]


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(work: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(wall seconds, result) of one call, the device synchronised on both ends."""
    synchronise(device)
    start = time.perf_counter()
    result = work()
    synchronise(device)
    return time.perf_counter() - start, result


def fastest_parts(best: Mapping[str, float], seconds: Mapping[str, float]) -> dict[str, float]:
    """Per part, the faster of the best so far and a new call's seconds."""
    return {**best, **{part: min(value, best.get(part, np.inf)) for part, value in seconds.items()}}


@dataclass
class Rounds:
    """What :func:`alternate_rounds` measured: per step the fastest seconds of each part, every
    round's seconds (in round order) and the last result."""

    best: dict[str, dict[str, float]] = field(default_factory=dict)
    per_round: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    results: dict[str, object] = field(default_factory=dict)

    def spread(self, step: str) -> float:
        """The largest (slowest − fastest) / fastest of one step's parts over the rounds: the noise of its best."""
        rounds = self.per_round[step]
        return max((max(r[part] for r in rounds) / min(r[part] for r in rounds) - 1 for part in rounds[0]), default=0.0)


def alternate_rounds(steps: Mapping[str, Step], rounds: int) -> Rounds:
    """Run every step once per round, in the given order in even rounds and reversed in odd ones.

    A step may read what an earlier step returned (the label-flip stage the engine's scores): the
    first round runs in the given order, so an earlier step has always run once before.
    """
    measured = Rounds()
    names = list(steps)
    for round_ in range(max(1, rounds)):
        for name in names if round_ % 2 == 0 else reversed(names):
            seconds, measured.results[name] = steps[name]()
            measured.best[name] = fastest_parts(measured.best.get(name, {}), seconds)
            measured.per_round.setdefault(name, []).append(dict(seconds))
    return measured


def timed_step(work: Callable[[], object], device: torch.device, part: str = "all") -> Step:
    """A round's step that times one call of ``work`` as one part."""

    def step() -> tuple[dict[str, float], object]:
        seconds, result = timed(work, device)
        return {part: seconds}, result

    return step


# ------------------------------------------------------------------------------------------------ model passes
@dataclass
class PassTimes:
    """The model's best time per row of a forward pass and of a forward+backward (input gradient) pass."""

    forward: float
    backward: float
    forward_batch: int
    backward_batch: int


def pass_work(model: nn.Module, batch: int, side: int, device: torch.device) -> dict[str, Callable[[], None]]:
    """One forward pass and one forward+backward pass (input gradient) of ``batch`` random rows."""
    inputs = torch.randn(batch, 3, side, side, device=device)
    targets = torch.zeros(batch, dtype=torch.long, device=device)

    def forward() -> None:
        with torch.no_grad():
            model(inputs)

    def backward() -> None:
        grad_inputs = inputs.clone().requires_grad_(True)
        model(grad_inputs).gather(1, targets[:, None]).sum().backward()

    return {"forward": forward, "backward": backward}


def best_pass_times(
    model: nn.Module, side: int, device: torch.device, batches: Sequence[int], repeats: int
) -> PassTimes:
    """The model's fastest seconds per row over ``batches``, best of ``repeats`` calls each: how
    ``batch_size: auto`` picks a job's batch (the efficiency baseline is timed apart, in the rounds)."""
    best = {"forward": (np.inf, 0), "backward": (np.inf, 0)}
    for batch in batches:
        for kind, work in pass_work(model, batch, side, device).items():
            try:
                work()  # warm-up (kernel selection, allocator)
                seconds = min(timed(work, device)[0] for _ in range(max(1, repeats))) / batch
            except torch.OutOfMemoryError:
                break
            if seconds < best[kind][0]:
                best[kind] = (seconds, batch)
    return PassTimes(best["forward"][0], best["backward"][0], best["forward"][1], best["backward"][1])
