"""GPU timing of dispatch sequences (Vulkan timestamps), summary statistics, device-resident inputs.

Two timings of a call (one or more dispatches), the same two the peer gets (bench/peer.py):
  kernel  the GPU time of its dispatches alone: a timestamp before and after each dispatch, summed
          over the call's dispatches (the peer: CUDA kernel times from the profiler, or a CUDA graph);
  stream  the per-call time in a stream of N back-to-back calls: N calls recorded into one command
          buffer and submitted once, from the first dispatch's start to the last one's end, over N
          (the peer: N calls between two CUDA events). It includes the barrier between dispatches
          and the timestamp writes themselves, so it can only overstate our time.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device, Step
from runtime.core.dispatch import Runner
from runtime.core.errors import ShaderkitError
from runtime.core.timing import spin_up, time_steps
from runtime.core.vkapi import check, vk

__all__ = [
    "DeviceInputs",
    "Matched",
    "Stats",
    "adaptive_reps",
    "run_offsets",
    "spin_up",
    "summarize",
    "time_matched",
    "time_steps",
    "time_total",
]


@dataclass(frozen=True)
class Stats:
    """Seconds of `n` timed runs (after warm-up), summarized."""

    samples: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    def _q(self, q: float) -> float:
        return float(np.percentile(self.samples, q))

    @property
    def median(self) -> float:
        return self._q(50)

    @property
    def p10(self) -> float:
        return self._q(10)

    @property
    def p90(self) -> float:
        return self._q(90)

    @property
    def min(self) -> float:
        return float(min(self.samples))

    @property
    def max(self) -> float:
        return float(max(self.samples))

    def to_json(self) -> dict[str, Any]:
        return {"median_s": self.median, "p10_s": self.p10, "p90_s": self.p90, "min_s": self.min,
                "max_s": self.max, "n": self.n, "samples_s": list(self.samples)}


def summarize(samples: Sequence[float]) -> Stats:
    if not samples:
        raise ValueError("no samples to summarize")
    return Stats(tuple(float(s) for s in samples))


class _SpanRunner(Runner):
    """A Runner whose timestamps come back as offsets from the first dispatch's start (start, end of each
    dispatch in turn), so a sequence's span is measured besides each dispatch. It reads what
    Runner._record writes; the core's Device.run returns durations only."""

    def _read_timestamps(self, query_pool: Any, count: int) -> list[float]:
        v = vk()
        ctx = self._ctx
        raw = v.ffi.new("uint64_t[]", 2 * count)
        flags = v.VK_QUERY_RESULT_64_BIT | v.VK_QUERY_RESULT_WAIT_BIT
        check("vkGetQueryPoolResults", v.vkGetQueryPoolResults, ctx.device, query_pool, 0, 2 * count,
              v.ffi.sizeof(raw), raw, 8, flags)
        mask = (1 << ctx.timestamp_bits) - 1 if ctx.timestamp_bits < 64 else (1 << 64) - 1
        period_s = ctx.limits["timestampPeriod"] * 1e-9
        return [((raw[i] - raw[0]) & mask) * period_s for i in range(2 * count)]


_span_runners: weakref.WeakKeyDictionary[Device, _SpanRunner] = weakref.WeakKeyDictionary()


def run_offsets(dev: Device, steps: Sequence[Step]) -> list[tuple[float, float]]:
    """Run `steps` in one command buffer (as Device.run does); (start, end) of each dispatch in seconds
    from the first one's start."""
    if dev.closed:
        raise ShaderkitError(f"device {dev.info.name!r} is closed")
    runner = _span_runners.get(dev)
    if runner is None:
        runner = _span_runners[dev] = _SpanRunner(dev._ctx)
    offsets = runner.run(steps, True)
    assert offsets is not None  # timestamps=True always returns them
    return [(offsets[2 * i], offsets[2 * i + 1]) for i in range(len(steps))]


@dataclass(frozen=True)
class Matched:
    """Our two timings of one call (see the module's docstring), per call, and each dispatch alone."""

    kernel: Stats
    stream: Stats
    steps: list[Stats] = field(default_factory=list)
    calls: int = 0  # N: calls per stream


def time_matched(dev: Device, steps: Sequence[Step], reps: int, warmup: int, blocks: int = 1) -> Matched:
    """`warmup` untimed calls, then `blocks` streams of `reps` back-to-back calls of `steps`, each one
    submit. Kernel samples: one per call; stream samples: one per block."""
    if warmup > 0:
        dev.run(list(steps) * warmup)
    n, reps = len(steps), max(1, reps)
    per_call: list[list[float]] = []
    stream: list[float] = []
    for _ in range(max(1, blocks)):
        offsets = run_offsets(dev, list(steps) * reps)
        per_call += [[end - start for start, end in offsets[i * n : (i + 1) * n]] for i in range(reps)]
        stream.append((offsets[-1][1] - offsets[0][0]) / reps)
    return Matched(summarize([sum(c) for c in per_call]), summarize(stream),
                   [summarize([c[i] for c in per_call]) for i in range(n)], reps)


def adaptive_reps(dev: Device, steps: Sequence[Step], reps: int, budget_s: float, least: int = 3) -> int:
    """`reps`, or fewer (never under `least`) where `reps` calls would take over `budget_s` of GPU time:
    slow variants need no 20 samples to be told apart from fast ones."""
    if budget_s <= 0:
        return reps
    seconds = dev.run(list(steps), timestamps=True) or [0.0]
    one = max(sum(seconds), 1e-9)
    return max(min(reps, least), min(reps, int(budget_s / one)))


def time_total(dev: Device, steps: Sequence[Step], reps: int, warmup: int) -> tuple[Stats, list[Stats]]:
    """Stats of the summed step times and of each step on its own."""
    runs = time_steps(dev, steps, reps, warmup)
    per_step = [summarize([r[i] for r in runs]) for i in range(len(steps))]
    return summarize([sum(r) for r in runs]), per_step


class DeviceInputs:
    """Keeps a shape's inputs on the device: every ndarray a Step binds is uploaded once, then reused.

    Steps built by the ops bind host arrays (weights, scales, metadata); left as they are,
    `Device.run` would upload them again on every rep. :meth:`persist` swaps them for Buffers, keyed
    by array identity so one array shared by many variants' steps is uploaded once.
    """

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        # id(array) -> (array, buffer); the array is kept alive so its id cannot be reused
        self._uploaded: dict[int, tuple[np.ndarray, Buffer]] = {}
        self._owned: list[Buffer] = []

    def upload(self, array: np.ndarray, kind: str = "storage") -> Buffer:
        key = id(array)
        if key not in self._uploaded:
            self._uploaded[key] = (array, self.dev.upload(array, kind=kind))
        return self._uploaded[key][1]

    def alloc(self, nbytes: int, fill: int | None = None) -> Buffer:
        buf = self.dev.alloc(nbytes, fill=fill)
        self._owned.append(buf)
        return buf

    def persist(self, step: Step) -> Step:
        """The same dispatch with every ndarray binding replaced by a device buffer."""
        buffers: dict[int, Buffer | np.ndarray] = {}
        for number, value in step.buffers.items():
            if isinstance(value, np.ndarray):
                kind = step.pipeline.variant.binding(number).descriptor
                value = self.upload(value, kind)
            buffers[number] = value
        return Step(step.pipeline, buffers, step.push, step.groups)

    def free(self) -> None:
        for _, buf in self._uploaded.values():
            buf.free()
        for buf in self._owned:
            buf.free()
        self._uploaded.clear()
        self._owned.clear()

    def __enter__(self) -> DeviceInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()
