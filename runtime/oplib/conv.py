"""What the conv families share on the host: geometry checks, limits, layout choice, the im2col dispatch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.errors import LimitExceededError
from runtime.core.invoke import device_of
from runtime.core.layouts import Layout, buffer_metadata
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.packed import Packed
from runtime.oplib import validate

__all__ = ["ACTIVATIONS", "INT8_LAYOUT", "INT32_MAX", "ConvGeometry", "ConvInput", "activation_code", "check_limit",
           "check_limits", "conv_geometry", "conv_input", "conv_out_size", "conv_push", "device_of", "im2col_step",
           "int8_input", "layout_of", "metadata", "workgroups"]

# the ACTIVATION spec constant of every epilogue (templates/include/epilogue.glsl.j2)
ACTIVATIONS = {"none": 0, "relu": 1}
# the layout an int8 conv op packs an NCHW x in when no input_layout is given
INT8_LAYOUT = "4w4c"
# sizes, strides, padding and dilation reach the shaders as int32 push constants
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one conv call and of its im2col matrix (see runtime/oplib/gemm_formats.py)."""

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


def conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output extent of one spatial dim (may be < 1 when the kernel does not fit)."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


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


def check_limit(dev: Device, what: str, nbytes: int) -> None:
    limit = int(dev.info.limits["maxStorageBufferRange"])
    if nbytes > limit:
        raise LimitExceededError("maxStorageBufferRange", nbytes, limit, f"{what} needs a {nbytes}-byte buffer")


def check_limits(dev: Device, sizes: dict[str, int]) -> None:
    """:func:`check_limit` for each (what, bytes), in order: an op checks every buffer's size before
    the (possibly huge) host-side packing, so an oversized call fails first."""
    for what, nbytes in sizes.items():
        check_limit(dev, what, nbytes)


def activation_code(activation: Any) -> int:
    """The `activation` argument as the epilogue's ACTIVATION spec constant."""
    return ACTIVATIONS[validate.choice(activation, "activation", list(ACTIVATIONS))]


def workgroups(count: int, local: int) -> int:
    return max(1, -(-count // local))


def metadata(layout: Layout, shape: tuple[int, ...]) -> np.ndarray:
    """The BufferMetadata uniform of a tensor of `shape` in `layout`, as bytes to bind."""
    return np.frombuffer(buffer_metadata(layout, shape), dtype=np.uint8)


def conv_push(g: ConvGeometry, *, out_geom: tuple[int, int, int, int] | None = None) -> dict[str, tuple[int, ...]]:
    """The push-constant members that place a conv's window on its input and output, as the conv
    templates name them (include/im2col.glsl.j2, im2col_q8, igemm_q8, q8ta_dwconv): in_whcn, kernel
    (with the strides), pad_dil, and out_geom: (W_out, H_out, groups, Cg) unless the template wants
    another (`out_geom`)."""
    return {
        "in_whcn": (g.W, g.H, g.C_in, g.N),
        "kernel": (g.KW, g.KH, g.stride[1], g.stride[0]),
        "pad_dil": (g.padding[1], g.padding[0], g.dilation[1], g.dilation[0]),
        "out_geom": out_geom or (g.W_out, g.H_out, g.groups, g.Cg),
    }


def im2col_step(
    dev: Device, entry: VariantEntry, layout: Layout, geom: ConvGeometry, x_data: Buffer | np.ndarray,
    out: Buffer, **extra_push: Any,
) -> Step:
    """The im2col dispatch of either family: x laid out in `layout` -> 4W4C matrix in `out`.

    Threads run along k4 (x) and row blocks (y), so neighbouring threads write neighbouring blocks.
    """
    spec = {"LAYOUT_HASH": layout.hashed_i32()} if entry.spec_constant("LAYOUT_HASH") else {}
    buffers: dict[str | int, Any] = {0: out, 1: x_data}
    if any(b.binding == 2 for b in entry.bindings):
        buffers[2] = metadata(layout, (geom.N, geom.C_in, geom.H, geom.W))
    g = geom
    push = {**conv_push(g), "matrix": (g.M, g.M4, g.K4, g.Cg4), **extra_push}
    lx, ly, _ = entry.local_size
    return Step(dev.pipeline(entry, spec), buffers, push, (workgroups(g.K4, lx), workgroups(g.M4, ly), g.groups))


@dataclass(frozen=True)
class ConvInput:
    """The `x` argument of a conv op: a logical NCHW array to pack, or a tensor already packed."""

    shape: tuple[int, int, int, int]
    layout: Layout
    array: np.ndarray | None
    packed: Packed | None

    def data(self, pad: Any = 0, rng: np.random.Generator | None = None, *, floats: bool = False) -> Any:
        """What the im2col binds: the packed data as given, or the array packed now (padding slots get
        `pad`, or garbage when `pad` is None)."""
        if self.packed is not None:
            return self.packed.data
        assert self.array is not None
        if floats:
            return self.layout.pack_elements(self.array, pad_value=pad, rng=rng)
        return self.layout.pack(self.array, pad_value=pad, rng=rng)


def conv_input(x: Any, input_layout: Any, manifest: Manifest, *, dtypes: tuple[str, ...],
               check_array: Any, default_layout: str) -> ConvInput:
    """Sort out `x` and `input_layout`: x logical NCHW (checked by `check_array`, laid out in
    `input_layout`, default `default_layout`), or a :class:`Packed` tensor whose own layout is used
    (`input_layout`, if given, must name the same layout)."""
    if isinstance(x, Packed):
        if x.dtype.name not in dtypes:
            raise TypeError(f"x is a packed {x.dtype} tensor; this op takes {' or '.join(dtypes)}")
        if input_layout is not None and input_layout != x.layout.name:
            raise ValueError(f"input_layout={input_layout!r} but x is packed in {x.layout.name!r}; "
                             "leave input_layout out (None) for packed input")
        return ConvInput(x.shape, x.layout, None, x)
    arr = check_array(x)
    layout = layout_of(manifest, default_layout if input_layout is None else input_layout)
    return ConvInput((int(arr.shape[0]), int(arr.shape[1]), int(arr.shape[2]), int(arr.shape[3])), layout, arr, None)


def int8_input(x: Any, input_layout: Any, manifest: Manifest) -> ConvInput:
    """The `x` of an int8 conv op: int8 NCHW to pack (in `input_layout`, default INT8_LAYOUT), or a
    tensor already packed (runtime.pack(x, layout))."""
    return conv_input(x, input_layout, manifest, dtypes=("int8",), default_layout=INT8_LAYOUT,
                      check_array=lambda a: validate.int8_array(a, "x", 4))
