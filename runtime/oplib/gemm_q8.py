"""The int8 GEMM pass (role `gemm`: q8ta_gemm, q8ta_gemm_dot_pipe, q8ta_gemm_coopmat, q8ta_gemm_coopmat_pipe)
as any family drives it.

G groups of (M x Kp) @ (Kp x OCg), A in the 4W4C matrix format and B in the packed weight format of
runtime/oplib/gemm_formats.py, requantized to int8 [G][M][OCg4] words by the shared epilogue.
Users: q8ta_conv2d (after im2col) and q8ta_linear (x itself is the matrix).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.select import pick
from runtime.oplib.conv import workgroups
from runtime.oplib.requant import Requant, requant_bindings, requant_push, scale_reason
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


def reads_matrix(axes: Mapping[str, Any], matrix: str | tuple[str, ...]) -> str | None:
    """Why a GEMM variant cannot read an im2col matrix of format `matrix` (one, or any of several)."""
    mine = str(axes.get("matrix", "native"))
    wanted = (matrix,) if isinstance(matrix, str) else matrix
    return None if mine in wanted else f"it reads the {mine} im2col matrix format, the call has {' or '.join(wanted)}"


def emulated(axes: Mapping[str, Any]) -> bool:
    """True for a variant whose cooperative-matrix operations are software (`coop: emulated_*`,
    include/coopmat.glsl.j2): exact everywhere, for tests of the tensor-core templates' logic, and far
    slower than any other variant, so no picker takes it unless it is forced by name."""
    coop = axes.get("coop")
    return isinstance(coop, str) and coop.startswith("emulated")


def not_emulated(axes: Mapping[str, Any]) -> str | None:
    """Why an automatic pick (heuristic or tuning cache) must not take this variant, or None."""
    if not emulated(axes):
        return None
    return "its cooperative matrices are emulated in software (tests only: force it by name)"


def gemm_accepts(matrix: str | tuple[str, ...], scale_dtype: str) -> Callable[[Mapping[str, Any]], str | None]:
    """Why a GEMM variant cannot serve an automatic pick (heuristic or tuning cache) for an A matrix of
    format `matrix` and scales of `scale_dtype`, or None."""
    return lambda axes: not_emulated(axes) or reads_matrix(axes, matrix) or scale_reason(axes, scale_dtype)


def gemm_preference(
    M: int, OCg: int, scale_dtype: str, K4: int | None = None,
) -> Callable[[VariantEntry], tuple[Any, ...]]:
    """The heuristic's order of GEMM variants for an (M x OCg) output with scales of `scale_dtype` (and, where
    known, K4 k-words of reduction): sort by it, the first is the pick (`python -m bench.heuristic` checks
    it against a bench run's measurements)."""

    def preference(entry: VariantEntry) -> tuple[Any, ...]:
        axes = entry.axes
        block = entry.declared
        bm, bn = block["DISPATCH_BLOCK_M"], block["DISPATCH_BLOCK_N"]
        # outputs computed (whole workgroup blocks) per output wanted, in tenths: a big block only
        # wins where the GEMM fills it
        padded = round(10 * (-(-M // bm) * bm) * (-(-OCg // bn) * bn) / (M * OCg))
        # a block's estimated time: waves of FILL_WORKGROUPS workgroups x sqrt(block area) (a block's work
        # grows with its area, its operand reuse with its side), so the largest block that keeps the waves
        # few: one that fills the device with big blocks, a small one where big blocks would leave it idle
        blocks = -(-M // bm) * -(-OCg // bn)
        estimate = round(-(-blocks // FILL_WORKGROUPS) * (bm * bn) ** 0.5)
        # the pipelined variants (a `kstep` axis: shared stages, register prefetch) first, then that
        # estimate, then the deepest K step in the fewest stages: on an H200 the pipelined tensor-core and
        # packed-dot GEMMs were the fastest of their kind on every GEMM shape of the bench, and K step 64 in
        # one stage 1.2-1.5x faster than 32 in two (bench/results/2026-12-03_nvidia-h200/bench_gemm_im2col.md;
        # `python -m bench.heuristic` scores the order against a run), until `bench tune` says otherwise
        kstep, stages = axes.get("kstep", {}).get("k", 0), axes.get("stages", {}).get("s", 0)
        # k computed per k wanted, in tenths, where K is known: a deep K step only where it divides K
        kw = max(kstep // 4, 1)
        k_padded = round(10 * (-(-K4 // kw) * kw) / K4) if K4 else 10
        # within a block, the most subgroups (in 128 x 128 blocks, 8 of 64 x 32: half the accumulator
        # registers, so two workgroups per SM; 1.24-1.54x the 4 of 64 x 64 at 4096^3 and 2048^3 on that
        # H200; in 256 x 128, 16 of 64 x 32 over 8 of 64 x 64 on the five big shapes of bench_gemm.md:
        # 1.01-1.19x with the m16n16k32 MMA, 0.96-1.07x with m16n8k32), and after the K step and
        # stages, two K steps held in registers over one (0.97-1.21x on the shapes measured:
        # bench/results/2026-12-03_nvidia-h200/experiments/prefetch)
        subgroups = 0
        if "warp" in axes:
            subgroups = (bm // axes["warp"]["wm"]) * (bn // axes["warp"]["wn"])
        depth = axes.get("stages", {}).get("d", 1)
        # (a float32 variant serves float16 scales: among equally fast variants the scales' own dtype first)
        return ("coop" not in axes, axes.get("dot") not in ("dot", "sdot"), axes.get("dot") != "sdot",
                padded, "kstep" not in axes, estimate, k_padded, -subgroups, -kstep, stages, -depth,
                axes.get("dtype") != scale_dtype, not axes.get("stage", False), axes.get("wg", {}).get("x", 0))

    return preference


def gemm_entry(
    manifest: Manifest, device: Device, OCg: int, M: int, scale_dtype: str, forced: str | None,
    *, arg: str = "gemm_variant", matrix: str | tuple[str, ...] | None = None, K4: int | None = None,
) -> VariantEntry:
    """The GEMM variant for an (M x OCg) output with scales stored as `scale_dtype`, reading an A matrix of
    format `matrix` (runtime/oplib/gemm_formats.py); `forced` names one (the op's argument `arg`, which
    errors about it name). With `matrix` None the pick reads the native format and a forced variant may
    read either (a one-group matrix of M rows is the same bytes in both: see gemm_step). With `K4` (k-words
    of the reduction) the pick also avoids K steps that pad K (:func:`gemm_preference`)."""
    if forced is not None:
        return forced_variant(manifest, device, forced, arg, role="gemm",
                              accepts=lambda axes: None if matrix is None else reads_matrix(axes, matrix))
    matrix = matrix or "native"
    return pick(runnable(manifest, device, "gemm"), role="gemm", accepts=gemm_accepts(matrix, scale_dtype),
                preference=gemm_preference(M, OCg, scale_dtype, K4), supports=device.supports,
                what=f"scale dtype {scale_dtype}, {matrix} matrix")


def gemm_step(
    dev: Device, manifest: Manifest, entry: VariantEntry, geom: GemmGeometry, a: Buffer | np.ndarray,
    w_words: np.ndarray, wsum: np.ndarray, rq: Requant, out: Buffer, *,
    rows: tuple[int, int, int, int] | None = None,
) -> Step:
    """The GEMM + requantize dispatch: 4W4C matrix `a` -> [G][M][OCg4] int8 words in `out`.

    A variant reading the upstream matrix format takes `rows` = (W_out, W4, K4 of a whole row, M) with
    `geom` counting the matrix's padded rows (include/gemm.glsl.j2); without `rows` it reads one group's
    (M x Kp) matrix as one image row of M pixels, the same bytes as the native format."""
    spec, buffers = requant_bindings(manifest, entry, rq, out, a, w_words, wsum)
    push: dict[str, Any] = {"dims": (geom.M, geom.M4, geom.K4, geom.OCg), **requant_push(rq, geom.OCg4, geom.G)}
    if reads_matrix(entry.axes, "upstream") is None:
        if rows is None and geom.G != 1:
            raise ValueError(f"{entry.name} reads the upstream im2col matrix: with groups={geom.G} it needs `rows`")
        push["rows"] = rows or (geom.M, geom.M4, geom.K4, geom.M)
    # the template states the outputs one workgroup covers (see common.dispatch_block)
    block = entry.declared
    pipe = dev.pipeline(entry, spec)
    groups = (workgroups(geom.M, block["DISPATCH_BLOCK_M"]), workgroups(geom.OCg, block["DISPATCH_BLOCK_N"]), geom.G)
    return Step(pipe, buffers, push, groups)
