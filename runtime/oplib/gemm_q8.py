"""The int8 GEMM pass (role `gemm`: q8ta_gemm, q8ta_gemm_coopmat) as any family drives it.

G groups of (M x Kp) @ (Kp x OCg), A in the 4W4C matrix format and B in the packed weight format of
runtime/oplib/gemm_formats.py, requantized to int8 [G][M][OCg4] words by the shared epilogue.
Users: q8ta_conv2d (after im2col) and q8ta_linear (x itself is the matrix).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import pick
from runtime.oplib.conv import workgroups
from runtime.oplib.requant import Requant, scale_arrays, scale_dtypes_for
from runtime.oplib.variants import forced_variant, runnable

# workgroups below which a GEMM is assumed not to fill a GPU (an H100 has 132 SMs; lavapipe a few threads)
FILL_WORKGROUPS = 128


@dataclass(frozen=True)
class GemmGeometry:
    """Sizes of one grouped GEMM: G groups of (M x Kp) @ (Kp x OCg)."""

    G: int
    M: int
    K4: int
    OCg: int

    @property
    def M4(self) -> int:
        return -(-self.M // 4)

    @property
    def OCg4(self) -> int:
        return -(-self.OCg // 4)

    @property
    def a_bytes(self) -> int:
        return self.G * self.M4 * self.K4 * 16

    @property
    def out_bytes(self) -> int:
        return self.G * self.M * self.OCg4 * 4


def gemm_entry(
    manifest: Manifest, device: Device, OCg: int, M: int, scale_dtype: str, forced: str | None,
    *, arg: str = "gemm_variant",
) -> VariantEntry:
    """The GEMM variant for an (M x OCg) output with scales stored as `scale_dtype`; `forced` names one
    (the op's argument `arg`, which errors about it name)."""
    if forced is not None:
        return forced_variant(manifest, device, forced, arg, role="gemm", accepts=lambda axes: None)

    # among equally fast variants the scales' own dtype is preferred
    dtypes = scale_dtypes_for(scale_dtype)

    def accepts(axes: Mapping[str, Any]) -> str | None:
        return None if axes.get("dtype") in dtypes else "other scale dtype"

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        block = entry.declared
        bm, bn = block["DISPATCH_BLOCK_M"], block["DISPATCH_BLOCK_N"]
        # outputs computed (whole workgroup blocks) per output wanted, in tenths: a big block only
        # wins where the GEMM fills it
        padded = round(10 * (-(-M // bm) * bm) * (-(-OCg // bn) * bn) / (M * OCg))
        # a GEMM too small to give every compute unit a workgroup wants smaller blocks (more of them);
        # one that fills the device wants the largest blocks (most operand reuse)
        blocks = -(-M // bm) * -(-OCg // bn)
        fill = -blocks if blocks < FILL_WORKGROUPS else -bm * bn
        return ("coop" not in axes, axes.get("dot") not in ("dot", "sdot"), axes.get("dot") != "sdot",
                axes.get("dtype") != scale_dtype, padded, blocks < FILL_WORKGROUPS, fill,
                not axes.get("stage", False), axes["wg"]["x"])

    return pick(runnable(manifest, device, "gemm"), role="gemm", accepts=accepts, preference=preference,
                supports=device.supports, what=f"scale dtype {scale_dtype}")


def gemm_step(
    dev: Device, manifest: Manifest, entry: VariantEntry, geom: GemmGeometry, a: Buffer | np.ndarray,
    w_words: np.ndarray, wsum: np.ndarray, rq: Requant, out: Buffer,
) -> Step:
    """The GEMM + requantize dispatch: 4W4C matrix `a` -> [G][M][OCg4] int8 words in `out`."""
    scales, bias = scale_arrays(manifest, entry, rq)
    buffers = {0: out, 1: a, 2: w_words, 3: wsum, 4: scales, 5: bias}
    push = {
        "dims": (geom.M, geom.M4, geom.K4, geom.OCg),
        "dims2": (geom.OCg4, geom.G, rq.x_zp, rq.out_zp),
        "scales": (rq.x_scale, rq.out_scale, 0.0, 0.0),
    }
    # the template states the outputs one workgroup covers (see common.dispatch_block)
    block = entry.declared
    pipe = dev.pipeline(entry, {"ACTIVATION": rq.activation})
    groups = (workgroups(geom.M, block["DISPATCH_BLOCK_M"]), workgroups(geom.OCg, block["DISPATCH_BLOCK_N"]), geom.G)
    return Step(pipe, buffers, push, groups)
