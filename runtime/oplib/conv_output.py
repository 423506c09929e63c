"""Where the result of an int8 conv goes: an NCHW array, a Packed on the host, or a Packed left on the device.

The rule and the `packed` argument are those of the element-wise families (runtime/oplib/elementwise.py):
``packed=None`` follows x (x a device-resident Packed -> a device-resident Packed, anything else -> an
NCHW array), ``True`` asks for a Packed (on the device when x is there, else on the host), ``False`` for
an NCHW array. A Packed result is always in the 4c layout of (N, C_out, H_out, W_out): word
``((n*H_out + ho)*W_out + wo)*C4 + c//4``, byte ``c%4``, padding channels 0 (what the kernels write).

The direct depthwise conv writes that layout itself. The GEMM of im2col + GEMM writes ``[G][M][OCg4]``
words (runtime/oplib/gemm_formats.py), with m = (n*H_out + ho)*W_out + wo: for groups == 1 that *is* 4c,
and the GEMM's buffer becomes the result as it is. For groups > 1 the words are group-major (all of
group 0's pixels, then group 1's), which no layout of variants.yaml describes, so those results go
through the host once (read back, re-laid out, uploaded again): correct, but a round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.layouts import Layout, builtin_layout
from runtime.core.packed import Packed, pack
from runtime.oplib.conv import ConvGeometry, ConvInput
from runtime.oplib.elementwise import Placement, Tensor, deliver, on_device, placement
from runtime.oplib.gemm_formats import matrix_to_nchw, unpack_output_4c

__all__ = ["OUTPUT_LAYOUT", "ConvResult", "Placement", "conv_placement", "deliver_4c", "deliver_gemm"]

OUTPUT_LAYOUT: Layout = builtin_layout("4c")


class ConvResult:
    """What the run records of the int8 conv ops share (mixed into each op's dataclass): `result`, what
    the op returns, and `output`, the same as an int8 NCHW array whatever `result` is."""

    result: np.ndarray | Packed

    @property
    def output(self) -> np.ndarray:
        """The int8 NCHW output (a Packed result is unpacked, read back from its device if it lives there)."""
        return self.result if isinstance(self.result, np.ndarray) else self.result.numpy()


def conv_placement(packed: Any, x: ConvInput, dev: Device) -> Placement:
    """Where the result of a call with input `x` goes (the module doc has the rule); ValueError when x
    lives on another device than `dev`, TypeError for a `packed` that is not None / True / False."""
    if x.packed is None:
        return placement(packed, False)
    return placement(packed, on_device(dev, Tensor("x", x.shape, x.layout, x.packed.dtype, packed=x.packed)))


def deliver_4c(buf: Buffer, shape: tuple[int, int, int, int], where: Placement) -> np.ndarray | Packed:
    """The 4c int8 result in `buf` as `where` asks; `buf` is freed unless it stays on the device."""
    result = deliver(buf, OUTPUT_LAYOUT, shape, np.int8, where)
    return np.ascontiguousarray(result) if isinstance(result, np.ndarray) else result


def deliver_gemm(dev: Device, buf: Buffer, geom: ConvGeometry, where: Placement) -> np.ndarray | Packed:
    """The GEMM's [G][M][OCg4] output in `buf` as `where` asks; `buf` is freed unless it becomes the
    result. groups == 1 and a Packed wanted: the buffer is the 4c result. Otherwise it is read back
    (grouped convs asked for a device result are uploaded again, in 4c)."""
    shape = (geom.N, geom.C_out, geom.H_out, geom.W_out)
    if geom.groups == 1 and where != "array":
        return deliver_4c(buf, shape, where)
    try:
        mat = unpack_output_4c(buf.read(np.int32), geom.groups, geom.M, geom.OCg)  # (G, M, OCg)
    finally:
        buf.free()
    output = np.ascontiguousarray(matrix_to_nchw(mat, geom.N, geom.H_out, geom.W_out))
    if where == "array":
        return output
    host = pack(output, OUTPUT_LAYOUT)
    return host.to_device(dev) if where == "device" else host
