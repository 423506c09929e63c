"""What both conv families share on the host: geometry checks, limits, layout choice, the im2col dispatch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime import validate
from runtime.device import Buffer, Device, Step, default_device
from runtime.errors import LimitExceededError
from runtime.layouts import Layout, buffer_metadata
from runtime.manifest import Manifest
from runtime.reference import conv_out_size

# the ACTIVATION spec constant of every epilogue (templates/include/epilogue.glsl.j2)
ACTIVATIONS = {"none": 0, "relu": 1}
# sizes, strides, padding and dilation reach the shaders as int32 push constants
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one conv call and of its im2col matrix (see runtime/reference.py)."""

    N: int
    C_in: int
    H: int
    W: int
    C_out: int
    KH: int
    KW: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    H_out: int
    W_out: int

    @property
    def Cg(self) -> int:
        return self.C_in // self.groups

    @property
    def OCg(self) -> int:
        return self.C_out // self.groups

    @property
    def Cg4(self) -> int:
        return -(-self.Cg // 4)

    @property
    def OCg4(self) -> int:
        return -(-self.OCg // 4)

    @property
    def M(self) -> int:
        return self.N * self.H_out * self.W_out

    @property
    def M4(self) -> int:
        return -(-self.M // 4)

    @property
    def K4(self) -> int:
        return self.KH * self.KW * self.Cg4

    @property
    def Kp(self) -> int:
        return 4 * self.K4


def conv_geometry(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], *, stride: Any, padding: Any, dilation: Any, groups: Any
) -> ConvGeometry:
    """Check shapes and conv parameters; ValueError/TypeError naming the argument and the value."""
    groups = validate.positive_int(groups, "groups")
    stride_p = validate.pair(stride, "stride", minimum=1, maximum=INT32_MAX)
    padding_p = validate.pair(padding, "padding", minimum=0, maximum=INT32_MAX)
    dilation_p = validate.pair(dilation, "dilation", minimum=1, maximum=INT32_MAX)
    N, C_in, H, W = x_shape
    C_out, Cg, KH, KW = w_shape
    if C_in % groups:
        raise ValueError(f"groups={groups} does not divide C_in={C_in} (x.shape={x_shape})")
    if C_out % groups:
        raise ValueError(f"groups={groups} does not divide C_out={C_out} (weight.shape={w_shape})")
    if Cg != C_in // groups:
        raise ValueError(
            f"weight.shape={w_shape} must be (C_out, C_in/groups={C_in // groups}, KH, KW) "
            f"for x.shape={x_shape} and groups={groups}"
        )
    outs = []
    for axis, size, k, s, p, d in (
        ("H", H, KH, stride_p[0], padding_p[0], dilation_p[0]),
        ("W", W, KW, stride_p[1], padding_p[1], dilation_p[1]),
    ):
        span = d * (k - 1) + 1
        if size + 2 * p > INT32_MAX:
            raise ValueError(
                f"padding={padding!r}: the padded input {size} + 2*{p} along {axis} exceeds int32 ({INT32_MAX})"
            )
        if size + 2 * p < span:
            raise ValueError(
                f"weight: kernel span {span} along {axis} (K{axis}={k}, dilation={d}) is larger than the padded "
                f"input {size} + 2*{p}; the output would be empty"
            )
        outs.append(conv_out_size(size, k, s, p, d))
    return ConvGeometry(N, C_in, H, W, C_out, KH, KW, stride_p, padding_p, dilation_p, groups, outs[0], outs[1])


def layout_of(manifest: Manifest, name: Any) -> Layout:
    """The layout named by the `input_layout` argument."""
    validate.choice(name, "input_layout", sorted(manifest.layouts))
    return Layout.from_dict(name, manifest.layouts[name])


def device_of(device: Any) -> Device:
    """The `device` argument, or the default device."""
    if device is None:
        return default_device()
    if not isinstance(device, Device):
        raise TypeError(f"device must be a runtime.Device or None, got {device!r}")
    return device


def check_limit(dev: Device, what: str, nbytes: int) -> None:
    limit = int(dev.info.limits["maxStorageBufferRange"])
    if nbytes > limit:
        raise LimitExceededError("maxStorageBufferRange", nbytes, limit, f"{what} needs a {nbytes}-byte buffer")


def activation_code(activation: Any) -> int:
    """The `activation` argument as the epilogue's ACTIVATION spec constant."""
    return ACTIVATIONS[validate.choice(activation, "activation", list(ACTIVATIONS))]


def workgroups(count: int, local: int) -> int:
    return max(1, -(-count // local))


def im2col_step(
    dev: Device, entry: dict[str, Any], layout: Layout, geom: ConvGeometry, x_data: Buffer | np.ndarray,
    out: Buffer, **extra_push: Any,
) -> Step:
    """The im2col dispatch of either family: x laid out in `layout` -> 4W4C matrix in `out`.

    Threads run along k4 (x) and row blocks (y), so neighbouring threads write neighbouring blocks.
    """
    spec_names = {s["name"] for s in entry["spec_constants"]}
    spec = {"LAYOUT_HASH": layout.hashed_i32()} if "LAYOUT_HASH" in spec_names else {}
    buffers: dict[int, Any] = {0: out, 1: x_data}
    if any(b["binding"] == 2 for b in entry["bindings"]):
        shape = (geom.N, geom.C_in, geom.H, geom.W)
        buffers[2] = np.frombuffer(buffer_metadata(layout, shape), dtype=np.uint8)
    g = geom
    push = {
        "in_whcn": (g.W, g.H, g.C_in, g.N),
        "kernel": (g.KW, g.KH, g.stride[1], g.stride[0]),
        "pad_dil": (g.padding[1], g.padding[0], g.dilation[1], g.dilation[0]),
        "out_geom": (g.W_out, g.H_out, g.groups, g.Cg),
        "matrix": (g.M, g.M4, g.K4, g.Cg4),
        **extra_push,
    }
    lx, ly, _ = entry["local_size"]
    return Step(dev.pipeline(entry, spec), buffers, push, (workgroups(g.K4, lx), workgroups(g.M4, ly), g.groups))
