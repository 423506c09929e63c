"""Coverage cells of the conv-like families: every variant x input layout x class of cases.

A family's level declares ``cells=conv_cells(its cases, its classes)``; the property tests then run
each (variant, layout, class) cell with cases forced into it (runtime/oplib/strategies.forcing,
plus a filter on :func:`in_class` where forcing is approximate) and fail a cell no example reached.
The classes, each judged from the case alone by :func:`in_class`:

  stride_w   stride along W > 1
  dilation   dilation > 1 along some axis
  grouped    1 < groups < C_in
  depthwise  groups = C_in > 1
  cin_tail   C_in % 4 != 0: the last channel word is part padding
  k_tail     the GEMM reduction, in int32 words, is more than 8 and not a multiple of 4 in both
             im2col matrix formats (channels padded per tap: KH KW ceil(Cg/4) words; padded once per
             group: ceil(KH KW Cg / 4)), so K steps of 4 or 8 words end on a partial step
  m_tail     W_out % 4 != 0 and M = N H_out W_out not a multiple of 4, with more rows than one
             workgroup covers (the variant's DISPATCH_BLOCK_M, where it declares one)
  batch      N > 1
  bias_relu  a non-zero bias and ReLU
  pad_xzp    padding > 0 with x_zp != 0 (int8: padding taps must act as the zero point)
  padding    padding > 0 (float: padding taps hold 0)

Cells of a variant that reads an input layout (an `input_layout` axis: every layout of the
manifest for `generic`, else its own) are per layout; a variant that reads none (a GEMM over the
im2col matrix) has one cell per class, its cases drawing the layout as they like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.registry import Cell, Cells

CONV_CLASSES = ("stride_w", "dilation", "grouped", "depthwise", "cin_tail", "k_tail", "m_tail", "batch",
                "bias_relu", "pad_xzp")
FLOAT_CLASSES = tuple("padding" if c == "pad_xzp" else c for c in CONV_CLASSES)
# a GEMM over the im2col matrix: stride, dilation and batch only change the matrix's values and M
GEMM_CLASSES = ("grouped", "depthwise", "cin_tail", "k_tail", "m_tail", "bias_relu", "pad_xzp")
FLOAT_GEMM_CLASSES = tuple("padding" if c == "pad_xzp" else c for c in GEMM_CLASSES)
# the K steps (in int32 words) a k_tail case must end partway through, after one full step
K_TAIL_WORDS = 8


@dataclass(frozen=True)
class ConvFacts:
    """What the classes are judged on, from a case of any conv-like family."""

    N: int
    C_in: int
    groups: int
    KH: int
    KW: int
    stride_w: int
    dilation: int  # the larger of the two
    padding: int  # the larger of the two
    H_out: int
    W_out: int
    x_zp: int | None  # None: a float case
    bias: bool  # a non-zero bias
    relu: bool


def _out_size(size: int, k: int, s: int, p: int, d: int, output_padding: int | None) -> int:
    if output_padding is not None:  # transposed conv
        return (size - 1) * s - 2 * p + d * (k - 1) + output_padding + 1
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_facts(case: dict[str, Any]) -> ConvFacts:
    """Facts of a conv case (keys as runtime/oplib/strategies.conv_shapes; `C` for a depthwise-only
    family, `output_padding` for a transposed conv)."""
    c_in = case["C_in"] if "C_in" in case else case["C"]
    groups = case.get("groups", c_in if "C" in case else 1)
    op = case.get("output_padding")
    out = [_out_size(case[size], case[k], case["stride"][i], case["padding"][i], case["dilation"][i],
                     None if op is None else op[i])
           for i, (size, k) in enumerate((("H", "KH"), ("W", "KW")))]
    bias = bool(case.get("bias", True)) and case.get("bias_scale", 1.0) != 0
    return ConvFacts(
        N=case["N"], C_in=c_in, groups=groups, KH=case["KH"], KW=case["KW"], stride_w=case["stride"][1],
        dilation=max(case["dilation"]), padding=max(case["padding"]), H_out=out[0], W_out=out[1],
        x_zp=case.get("x_zp"), bias=bias, relu=case.get("activation", "none") == "relu",
    )


def _k_tail(f: ConvFacts) -> bool:
    cg = f.C_in // f.groups
    taps = f.KH * f.KW
    words = (taps * -(-cg // 4), -(-(taps * cg) // 4))  # per-tap padding; padding once per group
    return all(w > K_TAIL_WORDS and w % 4 != 0 for w in words)


def _m_tail(f: ConvFacts, block_m: int) -> bool:
    m = f.N * f.H_out * f.W_out
    return f.W_out % 4 != 0 and m % 4 != 0 and m > block_m


_CLASSES: dict[str, Callable[[ConvFacts, int], bool]] = {
    "stride_w": lambda f, _: f.stride_w > 1,
    "dilation": lambda f, _: f.dilation > 1,
    "grouped": lambda f, _: 1 < f.groups < f.C_in,
    "depthwise": lambda f, _: f.groups == f.C_in > 1,
    "cin_tail": lambda f, _: f.C_in % 4 != 0,
    "k_tail": lambda f, _: _k_tail(f),
    "m_tail": _m_tail,
    "batch": lambda f, _: f.N > 1,
    "bias_relu": lambda f, _: f.bias and f.relu,
    "pad_xzp": lambda f, _: f.padding > 0 and bool(f.x_zp),
    "padding": lambda f, _: f.padding > 0,
}


def in_class(klass: str, facts: ConvFacts, block_m: int = 0) -> bool:
    """Whether a case with `facts` belongs to coverage class `klass` (see the module docstring)."""
    if klass not in _CLASSES:
        raise ValueError(f"unknown coverage class {klass!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[klass](facts, block_m)


def classes_of(case: dict[str, Any], block_m: int = 0) -> tuple[str, ...]:
    """Every class a conv case belongs to (a Level's `coverage`)."""
    facts = conv_facts(case)
    return tuple(k for k in _CLASSES if in_class(k, facts, block_m))


def accepted_layouts(entry: VariantEntry, manifest: Manifest, axis: str = "input_layout") -> list[str]:
    """The layouts a variant reads (its `axis`): every layout of the manifest where the axis is `generic`
    or absent (a variant that reads whatever comes, e.g. a GEMM over the im2col matrix), else the one it is
    specialized for."""
    layout = entry.axes.get(axis)
    return sorted(manifest.layouts) if layout in (None, "generic") else [str(layout)]


def input_layouts(entry: VariantEntry, manifest: Manifest) -> list[str] | None:
    """:func:`accepted_layouts`, but None for a variant with no `input_layout` axis."""
    return accepted_layouts(entry, manifest) if "input_layout" in entry.axes else None


def _member(layout: str | None, klass: str, block_m: int, facts: Callable[[dict[str, Any]], ConvFacts],
            case: dict[str, Any]) -> bool:
    return (layout is None or case.get("layout") == layout) and in_class(klass, facts(case), block_m)


def conv_cells(
    cases: Callable[[VariantEntry, Manifest], Any],
    classes: Sequence[str] | Callable[[VariantEntry], Sequence[str]],
    facts: Callable[[dict[str, Any]], ConvFacts] = conv_facts,
) -> Cells:
    """A Level's `cells`: per input layout the variant reads, per class, the level's own `cases`
    (given a manifest holding that layout only) drawn with the class forced, and filtered on
    membership so that a class the family's strategy cannot force by itself is still reached.
    `classes` may depend on the variant (e.g. GEMM variants of a level that also checks im2col)."""

    def cells(entry: VariantEntry, manifest: Manifest) -> list[Cell]:
        from runtime.oplib.strategies import forcing  # Hypothesis only where cases are drawn

        block_m = int(entry.declared.get("DISPATCH_BLOCK_M", 0))
        wanted = classes(entry) if callable(classes) else classes
        out = []
        found = input_layouts(entry, manifest)
        layouts: list[str | None] = [*found] if found else [None]
        for layout in layouts:
            only = manifest if layout is None else dataclasses.replace(
                manifest, layouts={layout: manifest.layouts[layout]})
            base = cases(entry, only)
            for klass in wanted:
                member = partial(_member, layout, klass, block_m, facts)
                out.append(Cell(layout, klass, forcing(base, klass, block_m).filter(member), member))
        return out

    return cells


def by_axis(with_layout: Sequence[str], without: Sequence[str]) -> Callable[[VariantEntry], Sequence[str]]:
    """Classes for a level over variants with and without an input_layout axis."""
    return lambda entry: with_layout if "input_layout" in entry.axes else without
