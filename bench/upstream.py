"""Upstream's own int8 im2col shaders, run beside ours when a hand expansion of them sits in `.upstream/`.

`.upstream/` (repository root, git-ignored through .git/info/exclude, never committed) may hold SPIR-V
or GLSL compute files of the upstream backend's q8ta im2col shaders, expanded by hand from upstream's
templates for measurement only. Nothing of upstream is part of this project: where the folder or a file
is absent the bench row says 'n/a (upstream shader not present)'.

What this module knows about them is their interface, as the upstream format description states it
(/work/shared/upstream-layouts.md) and as their reflection shows: binding 0 the im2col matrix (ivec4
blocks), 1 the packed int8 input (int words), 2 and 3 the BufferMetadata of matrix and input, 4 a
std140 ``Conv2DParams`` uniform; spec constants by id (0-2 local size, 5 the input's hashed layout);
one int push constant, the input zero point. The matrix they write is the upstream format
(runtime/oplib/gemm_formats.py: upstream matrix), so our upstream-format im2col must match it byte for byte
wherever the shader applies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.core.device import Device, Step
from runtime.core.invoke import step
from runtime.core.layouts import Layout, buffer_metadata
from runtime.core.manifest import VariantEntry
from runtime.core.reflect import load_shader
from runtime.oplib.conv import ConvGeometry, workgroups
from runtime.oplib.gemm_formats import upstream_matrix_shape

FOLDER = Path(__file__).resolve().parent.parent / ".upstream"
NOT_PRESENT = "n/a (upstream shader not present)"
LOCAL_SIZE = 64  # what upstream's dispatch picks for these shaders

# (label, file stem, what the shader handles): at the commit read, `q8ta_im2col_4w4c` takes one image
# and stride 1 only (it steps the input by one pixel per output pixel), `q8ta_im2col` any batch and
# stride; both need groups == 1 and input channels a multiple of 4 (the upstream op checks that).
SHADERS = (("upstream_4w4c", "q8ta_im2col_4w4c"), ("upstream_generic", "q8ta_im2col"))


@dataclass(frozen=True)
class UpstreamShader:
    label: str
    entry: VariantEntry


def find(folder: Path | None = None) -> dict[str, UpstreamShader | None]:
    """Each upstream shader by label: loaded if `<folder>/<stem>.spv` (or .comp) exists, else None
    (folder: `.upstream/` of the repository root)."""
    folder = FOLDER if folder is None else folder
    out: dict[str, UpstreamShader | None] = {}
    for label, stem in SHADERS:
        path = next((folder / f"{stem}{ext}" for ext in (".spv", ".comp") if (folder / f"{stem}{ext}").exists()),
                    None)
        out[label] = UpstreamShader(label, load_shader(path, name=label)) if path is not None else None
    return out


def applies(label: str, geom: ConvGeometry, layout: str) -> str | None:
    """Why the upstream shader `label` cannot serve this conv (None: it can)."""
    if layout != "4w4c":
        return "reads 4w4c input only"
    if geom.groups != 1 or geom.Cg % 4 != 0:
        return "needs groups == 1 and C_in % 4 == 0"
    if label == "upstream_4w4c" and (geom.N != 1 or geom.stride[1] != 1):
        return "takes one image at stride_w 1 only"
    return None


def conv2d_params(geom: ConvGeometry) -> bytes:
    """upstream's std140 Conv2DParams uniform: 4 ivec2 (x = width), then 9 ints, padded to 80 bytes."""
    k_logical = geom.Cg * geom.KH * geom.KW
    k_group = -(-k_logical // 4) * 4
    data = struct.pack("<8i9i", geom.KW, geom.KH, geom.stride[1], geom.stride[0], geom.padding[1],
                       geom.padding[0], geom.dilation[1], geom.dilation[0], geom.groups, geom.OCg, geom.Cg,
                       k_logical, k_group, k_group // 4, k_logical * geom.groups, k_group * geom.groups,
                       k_group * geom.groups // 4)
    return data + bytes(80 - len(data))


def im2col_step(dev: Device, shader: UpstreamShader, layout: Layout, matrix_layout: Layout, geom: ConvGeometry,
                x_data: object, x_zp: int, out: object) -> Step:
    """One dispatch of an upstream im2col: one thread per 16-byte block of the upstream matrix."""
    n, k, h, w = upstream_matrix_shape(geom)
    meta_out = np.frombuffer(buffer_metadata(matrix_layout, (n, k, h, w)), np.uint8)
    meta_in = np.frombuffer(buffer_metadata(layout, (geom.N, geom.C_in, geom.H, geom.W)), np.uint8)
    params = np.frombuffer(conv2d_params(geom), np.uint8)
    spec = {0: LOCAL_SIZE, 1: 1, 2: 1}
    if any(s.id == 5 for s in shader.entry.spec_constants):
        spec[5] = layout.hashed_i32()
    push_name = shader.entry.push_constants.members[0].name if shader.entry.push_constants else "zp"
    blocks = n * h * (w // 4) * (k // 4)
    return step(dev, shader.entry, {0: out, 1: x_data, 2: meta_out, 3: meta_in, 4: params},  # type: ignore[dict-item]
                push={push_name: x_zp}, spec=spec, groups=workgroups(blocks, LOCAL_SIZE))
