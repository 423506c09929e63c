"""Shapes and parameters of one conv_transpose2d call, checked (ValueError/TypeError naming the argument)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.oplib import validate
from runtime.oplib.conv import INT32_MAX, ConvGeometry
from runtime.oplib.requant import MAX_K


@dataclass(frozen=True)
class ConvTGeometry(ConvGeometry):
    """A conv geometry read the transposed way: x (N, C_in, H, W), weight (C_in, OCg, KH, KW) in PyTorch's
    conv_transpose2d layout, H_out / W_out PyTorch's transposed output size; (h, w) pairs."""

    output_padding: tuple[int, int] = (0, 0)

    @property
    def out_bytes(self) -> int:
        return self.groups * self.M * self.OCg4 * 4

    @property
    def weight_bytes(self) -> int:
        return self.groups * self.KH * self.KW * self.Cg4 * self.OCg4 * 16

    def column_tiles(self, tile_w: int) -> tuple[int, int]:
        """(tiles per residue class of output columns mod stride_w, tiles per output row). Classes
        r >= W_out hold no column, so there are min(stride_w, W_out) classes."""
        sw = self.stride[1]
        columns = -(-self.W_out // sw)  # of the fullest class, r = 0
        per_class = -(-columns // tile_w)
        return per_class, min(sw, self.W_out) * per_class


def out_size(size: int, k: int, s: int, p: int, op: int, d: int) -> int:
    """PyTorch's conv_transpose2d output extent of one axis."""
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def convt_geometry(
    x_shape: tuple[int, int, int, int], weight_shape: tuple[int, ...], *, stride: Any, padding: Any,
    output_padding: Any, dilation: Any, groups: Any,
) -> ConvTGeometry:
    """Check shapes and parameters against each other."""
    groups = validate.positive_int(groups, "groups")
    stride_p = validate.pair(stride, "stride", minimum=1, maximum=INT32_MAX)
    padding_p = validate.pair(padding, "padding", minimum=0, maximum=INT32_MAX)
    out_pad_p = validate.pair(output_padding, "output_padding", minimum=0, maximum=INT32_MAX)
    dilation_p = validate.pair(dilation, "dilation", minimum=1, maximum=INT32_MAX)
    N, C_in, H, W = x_shape
    C_w, OCg, KH, KW = weight_shape
    if C_w != C_in:
        raise ValueError(f"weight.shape={weight_shape} must be (C_in={C_in}, C_out/groups, KH, KW) for "
                         f"x.shape={x_shape}")
    if C_in % groups:
        raise ValueError(f"groups={groups} does not divide C_in={C_in} (x.shape={x_shape})")
    outs = []
    for axis, size, k, s, p, op, d in (
        ("H", H, KH, stride_p[0], padding_p[0], out_pad_p[0], dilation_p[0]),
        ("W", W, KW, stride_p[1], padding_p[1], out_pad_p[1], dilation_p[1]),
    ):
        if op >= max(s, d):
            raise ValueError(f"output_padding={output_padding!r} must be smaller than stride or dilation along "
                             f"{axis} (stride {s}, dilation {d}), as PyTorch requires")
        out = out_size(size, k, s, p, op, d)
        if out < 1:
            raise ValueError(f"padding={padding!r}: the output along {axis} would have size {out} "
                             f"(input {size}, kernel {k}, stride {s}, dilation {d}, output_padding {op})")
        if max(out, size) + 2 * p + d * k > INT32_MAX:
            raise ValueError(f"the sizes along {axis} exceed int32 ({INT32_MAX}), which the shader indexes with")
        outs.append(out)
    geom = ConvTGeometry(N, C_in, H, W, groups * OCg, KH, KW, stride_p, padding_p, dilation_p, groups, outs[0],
                         outs[1], out_pad_p)
    if 4 * KH * KW * geom.Cg4 > MAX_K:
        raise ValueError(f"weight.shape={weight_shape}: reduction length {4 * KH * KW * geom.Cg4} exceeds {MAX_K}, "
                         "where int32 accumulators could overflow")
    if geom.M > INT32_MAX // 2:
        raise ValueError(f"x.shape={x_shape}: the output ({N} x {geom.H_out} x {geom.W_out} pixels) is too large "
                         "for the shader's int32 indexing")
    return geom
