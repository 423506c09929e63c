"""Quantized network blocks run end to end on the device: what examples/mobilenet_block.py and
examples/resnet_block.py share.

A :class:`Block` is a list of :class:`Stage` s, each one int8 op (:class:`Conv`: ``runtime.conv2d_q8``;
:class:`Add`: ``runtime.add_q8``) applied to earlier tensors by name ("x" is the block's input). One
block runs three ways:

* on the device (:meth:`Block.run` given a device-resident Packed): x is packed and uploaded once
  (``runtime.pack(x, layout).to_device()``); every op gets the previous ops' device-resident Packed
  tensors and returns one (a conv writes the 4c layout, the add lays its output out like its first
  input), so nothing is read back until the caller asks for a result;
* op by op on the host (:meth:`Block.run` given an NCHW array): every op gets and returns a NumPy array,
  so each one packs, uploads, runs, reads back and unpacks;
* with the oracles (:func:`oracle_chain`): each op's NumPy oracle (runtime/families/<family>/oracle.py).

Checking (:func:`check`): each stage's device output against its op's oracle applied to that stage's
device inputs (read back after the block has run): exact, or within the op's documented tolerance (the
tie rule of runtime/oplib/q8_checks.py for a conv, q8ta_binary's rounding window for the add). Feeding
each oracle the device's own inputs keeps one legitimate +-1 at a rounding tie from spreading into the
later stages; when every stage passes, the block computes the chain of oracles. The free-running chain
(each oracle fed the previous oracle's output) equals the device's result except downstream of such
ties; :func:`report` counts those elements.

Quantization parameters are calibrated on the example input, as a deployment calibrates on data: each
stage's output scale and zero point cover that stage's real-valued output (:meth:`Quant.covering`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

import numpy as np

import runtime
from runtime.core.device import Device, open_device
from runtime.core.packed import Packed
from runtime.families.q8ta_binary import oracle as binary_oracle
from runtime.families.q8ta_binary.op import run_binary
from runtime.families.q8ta_conv2d import oracle as conv_oracle
from runtime.families.q8ta_conv2d.op import run_conv2d_q8
from runtime.families.q8ta_dwconv import oracle as dw_oracle
from runtime.families.q8ta_dwconv.op import run_dwconv2d_q8
from runtime.oplib.q8_checks import requant_mismatch

Tensor = np.ndarray | Packed


@dataclass(frozen=True)
class Quant:
    """Per-tensor int8 quantization: real value = scale * (q - zp)."""

    scale: float
    zp: int

    @staticmethod
    def covering(y: np.ndarray) -> Quant:
        """The asymmetric int8 quantization whose [-128, 127] spans min(y, 0) .. max(y, 0)."""
        lo, hi = min(float(np.min(y)), 0.0), max(float(np.max(y)), 0.0)
        scale = float(np.float32((hi - lo) / 255.0)) if hi > lo else 1.0
        return Quant(scale, int(np.clip(round(-128 - lo / scale), -128, 127)))


UNIT = Quant(1.0, 0)  # placeholder until calibration binds the real quantization


@dataclass(frozen=True)
class Verdict:
    """One stage's device output against its oracle: `problem` is None when it passes; `differ` of
    `total` elements differ from the oracle's own rounding (all allowed by the tolerance if it passes)."""

    problem: str | None
    differ: int
    total: int


def _verdict(got: np.ndarray, want: np.ndarray, problem: str | None) -> Verdict:
    if got.shape != want.shape:
        return Verdict(f"shape {got.shape}, the oracle's {want.shape}", got.size, want.size)
    return Verdict(problem, int(np.count_nonzero(got != want)), int(got.size))


@dataclass(frozen=True, eq=False)
class Conv:
    """One int8 conv2d (``runtime.conv2d_q8``; a depthwise one is served by q8ta_dwconv's direct kernel)."""

    weight: np.ndarray  # int8 (C_out, C_in / groups, KH, KW), symmetric per output channel
    w_scales: np.ndarray  # float32 (C_out,)
    bias: np.ndarray  # float32 (C_out,)
    stride: int = 1
    padding: int = 0
    groups: int = 1
    activation: str = "none"
    x: Quant = UNIT
    out: Quant = UNIT

    @property
    def depthwise(self) -> bool:
        """groups = C_in = C_out: what conv2d_q8 hands to the direct depthwise kernel."""
        return self.weight.shape[1] == 1 and self.groups == self.weight.shape[0]

    def describe(self) -> str:
        c_out, cg, kh, kw = self.weight.shape
        kind = "depthwise " if self.depthwise else ""
        act = " + relu" if self.activation == "relu" else ""
        return f"{kind}conv {kh}x{kw} {cg * self.groups}->{c_out}{act}"

    def bind(self, ins: Sequence[Quant], out: Quant) -> Conv:
        return replace(self, x=ins[0], out=out)

    def _quant(self, out: Quant) -> dict[str, Any]:
        return dict(x_scale=self.x.scale, x_zp=self.x.zp, out_scale=out.scale, out_zp=out.zp, stride=self.stride,
                    padding=self.padding, activation=self.activation)

    def __call__(self, x: Tensor, *, device: Device | None = None) -> Tensor:
        return runtime.conv2d_q8(x, self.weight, self.w_scales, self.bias, groups=self.groups, device=device,
                                 **self._quant(self.out))

    def timed(self, x: Tensor, *, device: Device | None = None) -> tuple[Tensor, float]:
        """The same call with GPU timestamps, through the run_* entry conv2d_q8 takes for a device-resident
        x: the direct kernel for a depthwise conv, else im2col + GEMM. (An implementation of conv2d_q8
        that does not take `packed`, such as q8ta_igemm's today, may serve the array calls instead.)"""
        if self.depthwise:
            dw = run_dwconv2d_q8(x, self.weight, self.w_scales, self.bias, device=device, timestamps=True,
                                 **self._quant(self.out))
            return dw.result, sum(dw.seconds or ())
        run = run_conv2d_q8(x, self.weight, self.w_scales, self.bias, groups=self.groups, device=device,
                            timestamps=True, **self._quant(self.out))
        return run.result, sum(run.seconds or ())

    def real(self, x: np.ndarray) -> np.ndarray:
        """The real-valued output (float64, before output quantization), from the family's oracle."""
        _, y = conv_oracle.conv2d_q8_reference(x, self.weight, self.w_scales, self.bias, groups=self.groups,
                                               **self._quant(UNIT))
        return y

    def reference(self, x: np.ndarray) -> np.ndarray:
        if self.depthwise:
            return dw_oracle.dwconv2d_q8_reference(x, self.weight, self.w_scales, self.bias,
                                                   **self._quant(self.out))[0]
        return conv_oracle.conv2d_q8_reference(x, self.weight, self.w_scales, self.bias, groups=self.groups,
                                               **self._quant(self.out))[0]

    def check(self, got: np.ndarray, x: np.ndarray) -> Verdict:
        """Exact, or +-1 next to a rounding tie (q8_checks.requant_mismatch)."""
        if self.depthwise:
            want, scaled, magnitude = dw_oracle.dwconv2d_q8_reference(x, self.weight, self.w_scales, self.bias,
                                                                      **self._quant(self.out))
        else:
            want, v = conv_oracle.conv2d_q8_reference(x, self.weight, self.w_scales, self.bias, groups=self.groups,
                                                      **self._quant(self.out))
            # the accumulators (identity requantization) give the size of the terms the float32 epilogue rounds
            ones = np.ones_like(self.w_scales)
            _, acc = conv_oracle.conv2d_q8_reference(x, self.weight, ones, None, x_scale=1.0, x_zp=self.x.zp,
                                                     out_scale=1.0, out_zp=0, stride=self.stride,
                                                     padding=self.padding, groups=self.groups)
            per_c = (1, -1, 1, 1)
            term = np.abs(acc * self.x.scale * self.w_scales.astype(np.float64).reshape(per_c))
            magnitude = (term + np.abs(self.bias.astype(np.float64)).reshape(per_c)) / self.out.scale
            scaled = v - self.out.zp
        if got.shape != want.shape:
            return _verdict(got, want, None)
        return _verdict(got, want, requant_mismatch(got, want, scaled, magnitude))


def make_conv(rng: np.random.Generator, c_in: int, c_out: int, k: int, *, groups: int = 1, stride: int = 1,
              activation: str = "none") -> Conv:
    """A conv with He-initialized real weights quantized symmetric per output channel (the largest
    |weight| of a channel maps to 127), a small real bias and 'same' padding; quantization UNIT."""
    fan_in = c_in // groups * k * k
    real = rng.standard_normal((c_out, c_in // groups, k, k)) * np.sqrt(2.0 / fan_in)
    w_scales = (np.abs(real).reshape(c_out, -1).max(axis=1) / 127.0).astype(np.float32)
    weight = np.clip(np.rint(real / w_scales.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
    bias = (0.1 * rng.standard_normal(c_out)).astype(np.float32)
    return Conv(weight, w_scales, bias, stride=stride, padding=k // 2, groups=groups, activation=activation)


@dataclass(frozen=True)
class Add:
    """One int8 add (``runtime.add_q8``) of two tensors of one shape; the output is laid out like `a`."""

    activation: str = "none"
    a: Quant = UNIT
    b: Quant = UNIT
    out: Quant = UNIT

    def describe(self) -> str:
        return "add" + (" + relu" if self.activation == "relu" else "")

    def bind(self, ins: Sequence[Quant], out: Quant) -> Add:
        return replace(self, a=ins[0], b=ins[1], out=out)

    def _quant(self, out: Quant) -> dict[str, Any]:
        return dict(a_scale=self.a.scale, a_zp=self.a.zp, b_scale=self.b.scale, b_zp=self.b.zp,
                    out_scale=out.scale, out_zp=out.zp, activation=self.activation)

    def __call__(self, a: Tensor, b: Tensor, *, device: Device | None = None) -> Tensor:
        return runtime.add_q8(a, b, device=device, **self._quant(self.out))

    def timed(self, a: Tensor, b: Tensor, *, device: Device | None = None) -> tuple[Tensor, float]:
        run = run_binary("add", a, b, device=device, timestamps=True, **self._quant(self.out))
        return run.result, sum(run.seconds or ())

    def real(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        kwargs = self._quant(UNIT)
        del kwargs["out_zp"]
        return binary_oracle.binary_real(a, b, "add", **kwargs)[0]

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return binary_oracle.binary_q8(a, b, "add", **self._quant(self.out))

    def check(self, got: np.ndarray, a: np.ndarray, b: np.ndarray) -> Verdict:
        """The oracle's rounding exactly, or inside the window any Vulkan device may round to
        (q8ta_binary's check_binary has the argument)."""
        want = self.reference(a, b)
        if got.shape != want.shape:
            return _verdict(got, want, None)
        lo, hi = binary_oracle.binary_window(a, b, "add", **self._quant(self.out))
        bad = np.argwhere((got != want) & ((got < lo) | (got > hi)))
        problem = None
        if bad.size:
            i = tuple(int(v) for v in bad[0])
            problem = (f"{len(bad)} of {got.size} elements outside the rounding window; first at {i}: got "
                       f"{int(got[i])}, expected {int(want[i])} (accepted {int(lo[i])}..{int(hi[i])})")
        return _verdict(got, want, problem)


Op = Conv | Add


@dataclass(frozen=True)
class Stage:
    """One op applied to earlier tensors of the block, by name ("x": the block's input)."""

    name: str
    op: Op
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """A quantized block: its stages, calibrated (see :func:`calibrate`), and its input's quantization."""

    title: str
    stages: tuple[Stage, ...]
    x_quant: Quant

    @property
    def output(self) -> str:
        return self.stages[-1].name

    def run(self, x: Tensor, *, device: Device | None = None) -> dict[str, Tensor]:
        """Every tensor of the block by name ("x" included), each op fed what the earlier ones returned:
        device-resident Packed tensors all the way for a device-resident x (ops follow their input),
        NCHW arrays for an array x. Tensors no longer referenced free their device buffers."""
        env: dict[str, Tensor] = {"x": x}
        for s in self.stages:
            env[s.name] = s.op(*(env[i] for i in s.inputs), device=device)
        return env

    def run_timed(self, x: Tensor, *, device: Device | None = None) -> dict[str, float]:
        """GPU seconds of each stage's dispatches (timestamps), run as :meth:`run` does."""
        env: dict[str, Tensor] = {"x": x}
        seconds = {}
        for s in self.stages:
            env[s.name], seconds[s.name] = s.op.timed(*(env[i] for i in s.inputs), device=device)
        return seconds


def calibrate(title: str, specs: Sequence[Stage], x: np.ndarray, x_quant: Quant) -> Block:
    """The block of `specs` (ops whose quantization is still UNIT), calibrated on `x`: each stage reads
    its inputs with their producers' quantization, and its output quantization covers its real-valued
    output when the block runs the oracles on x."""
    quants: dict[str, Quant] = {"x": x_quant}
    values: dict[str, np.ndarray] = {"x": x}
    stages = []
    for s in specs:
        ins = [quants[i] for i in s.inputs]
        args = [values[i] for i in s.inputs]
        unit = s.op.bind(ins, UNIT)
        out = Quant.covering(unit.real(*args))
        op = s.op.bind(ins, out)
        quants[s.name], values[s.name] = out, op.reference(*args)
        stages.append(Stage(s.name, op, s.inputs))
    return Block(title, tuple(stages), x_quant)


def oracle_chain(block: Block, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the block computed by the oracles alone, each fed the previous oracle's output."""
    env = {"x": x}
    for s in block.stages:
        env[s.name] = s.op.reference(*(env[i] for i in s.inputs))
    return env


def check(block: Block, tensors: Mapping[str, Tensor]) -> dict[str, Verdict]:
    """Each stage's output in `tensors` (what :meth:`Block.run` returned; Packed ones are read back now)
    against its op's oracle applied to the stage's inputs as `tensors` holds them."""
    host = {name: t.numpy() if isinstance(t, Packed) else t for name, t in tensors.items()}
    return {s.name: s.op.check(host[s.name], *(host[i] for i in s.inputs)) for s in block.stages}


# --- the two ways of running a block, timed ------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Median seconds of a block, each way (see :func:`time_block`)."""

    host: float
    device: float
    device_ops: float
    gpu: float  # the device-resident run's dispatches
    gpu_stages: dict[str, float]
    gpu_host: float  # the op-by-op run's dispatches (other variants where the input layouts differ)


def run_resident(block: Block, x: np.ndarray, *, layout: str, device: Device | None = None) -> dict[str, Tensor]:
    """The block with its input packed in `layout` and uploaded once; every tensor stays on the device."""
    return block.run(runtime.pack(x, layout).to_device(device), device=device)


def time_block(block: Block, x: np.ndarray, *, layout: str, device: Device, reps: int) -> Timing:
    """Wall-clock medians over `reps` runs (after one warm-up run each, interleaved so that drifting load
    weighs on every way alike) of: op by op on the host (NCHW arrays in and out of every op); device
    resident end to end (x packed and uploaded, the ops, the result read back and unpacked); the device-
    resident ops alone (a device-resident x in, a device-resident result out). And the GPU time of the
    device-resident run's dispatches (timestamps), per stage and in all, and that of the op-by-op run's."""
    xp = runtime.pack(x, layout).to_device(device)
    ways: dict[str, Callable[[], object]] = {
        "host": lambda: block.run(x, device=device)[block.output],
        "device": lambda: _numpy(run_resident(block, x, layout=layout, device=device)[block.output]),
        "device_ops": lambda: block.run(xp, device=device)[block.output],
    }
    times: dict[str, list[float]] = {way: [] for way in ways}
    gpu: list[dict[str, float]] = []
    gpu_host: list[float] = []
    for rep in range(reps + 1):
        for way, fn in ways.items():
            start = time.perf_counter()
            fn()
            if rep:
                times[way].append(time.perf_counter() - start)
        gpu.append(block.run_timed(xp, device=device))
        gpu_host.append(sum(block.run_timed(x, device=device).values()))
    gpu, gpu_host = gpu[1:], gpu_host[1:]
    stages = {s.name: median(g[s.name] for g in gpu) for s in block.stages}
    return Timing(median(times["host"]), median(times["device"]), median(times["device_ops"]),
                  median(sum(g.values()) for g in gpu), stages, median(gpu_host))


def _numpy(t: Tensor) -> np.ndarray:
    return t.numpy() if isinstance(t, Packed) else t


# --- the command line both examples share -------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", help="device index or part of its name (default: $SHADERKIT_DEVICE, else the first "
                                    "GPU, else lavapipe)")
    p.add_argument("--reps", type=int, default=5, help="timed runs of each way (median reported; default 5)")
    p.add_argument("--layout", default="4c", help="layout x is packed in for the device-resident run (default 4c, "
                                                  "the layout the convs write)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input")
    p.add_argument("--no-time", action="store_true", help="check only")
    return p


def cli(argv: Sequence[str] | None, doc: str | None, build: Callable[..., tuple[Block, np.ndarray]],
        **sizes: tuple[int, str]) -> int:
    """An example's command line: the shared options (:func:`parser`) and an int option per entry of
    `sizes` (name: (default, help)); then ``build(**sizes, seed=...)`` and :func:`report`. The exit
    status: 0 when every stage passed its check."""
    p = parser((doc or "").splitlines()[0])
    for name, (default, text) in sizes.items():
        p.add_argument(f"--{name}", type=int, default=default, help=f"{text} (default {default})")
    args = p.parse_args(argv)
    block, x = build(**{name: getattr(args, name) for name in sizes}, seed=args.seed)
    return 0 if report(block, x, args) else 1


def report(block: Block, x: np.ndarray, args: argparse.Namespace, print_: Callable[[str], None] = print) -> bool:
    """Run the block device-resident, check it against the oracles, time it (unless --no-time) and print
    what was found; True when every stage passed."""
    if args.reps < 1:
        raise SystemExit(f"--reps must be >= 1, got {args.reps}")
    device = open_device(args.device)
    print_(f"{block.title}: x {x.shape} int8, packed in {args.layout!r}; device {device.info.name}")
    tensors = run_resident(block, x, layout=args.layout, device=device)
    verdicts = check(block, tensors)
    for s in block.stages:
        print_(f"  {s.name:10} {s.op.describe():34} -> {_residence(tensors[s.name]):22} {_state(verdicts[s.name])}")
    final = _numpy(tensors[block.output])
    chain = oracle_chain(block, x)[block.output]
    host = _numpy(block.run(x, device=device)[block.output])
    print_(f"  free-running oracle chain: {np.count_nonzero(final != chain)} of {final.size} output elements "
           f"differ (downstream of ties); op-by-op host run: {np.count_nonzero(final != host)} differ")
    if not args.no_time:
        _print_timing(time_block(block, x, layout=args.layout, device=device, reps=args.reps), args.reps, print_)
    return all(v.problem is None for v in verdicts.values())


def _residence(t: Tensor) -> str:
    if isinstance(t, Packed):
        return f"{t.layout.name} Packed on the {'device' if t.on_device else 'host'}"
    return "NCHW array"


def _state(v: Verdict) -> str:
    if v.problem is not None:
        return f"FAILED: {v.problem}"
    return f"ok, {v.differ} of {v.total} +-1 at a rounding tie" if v.differ else "ok, exact"


def _print_timing(t: Timing, reps: int, print_: Callable[[str], None]) -> None:
    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:9.2f} ms"

    per = ", ".join(f"{name} {sec * 1e3:.2f}" for name, sec in t.gpu_stages.items())
    print_(f"  time, median of {reps} (wall clock):")
    print_(f"    op by op on the host (NCHW arrays in and out of each op)     {ms(t.host)}")
    print_(f"    device-resident (x packed + uploaded once, result read back) {ms(t.device)}  "
           f"{t.host / t.device:5.2f}x")
    print_(f"    device-resident ops alone (Packed in, Packed out)            {ms(t.device_ops)}  "
           f"{t.host / t.device_ops:5.2f}x")
    print_(f"    GPU time of their dispatches (timestamps)                    {ms(t.gpu)}  ({per})")
    print_(f"    GPU time of the op-by-op run's dispatches                    {ms(t.gpu_host)}")
