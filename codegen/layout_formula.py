"""The layout index formula, written for the build alone: where element (n, c, h, w) of a logical
NCHW tensor lives in a layout of variants.yaml, counted in elements (int8: bytes).

The runtime has its own implementation (runtime/core/layouts.py); the build must not import it,
so that a golden example in variants.yaml is checked against a second reading of the layout
definition, not against the code that packs the data. tests/codegen/test_layout_golden.py holds
the two to agreement on random layouts and shapes.

Reading: the offset is a mixed-radix number. Its digits, most significant first, are the block
coordinate of each dim in `order` (coordinate // the dim's block size; radix: the number of
blocks along the dim), then the position inside the block along `outer_dim` (radix
`outer_block`), then along `packed_dim` (radix `block`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DIM_AXIS = {"N": 0, "C": 1, "H": 2, "W": 3}


def element_offset(layout: Any, index: Sequence[int], shape: Sequence[int]) -> int:
    """Offset of NCHW `index` in a tensor of NCHW `shape` laid out by `layout` (an object with the
    attributes of schema.LayoutDef: packed_dim, block, outer_dim, outer_block, order)."""
    block_of = {dim: 1 for dim in DIM_AXIS}
    if layout.outer_dim is not None:
        block_of[layout.outer_dim] = layout.outer_block
    block_of[layout.packed_dim] = layout.block
    digits: list[tuple[int, int]] = []  # (digit, radix), most significant first
    for dim in layout.order:
        size, coord = shape[DIM_AXIS[dim]], index[DIM_AXIS[dim]]
        digits.append((coord // block_of[dim], -(-size // block_of[dim])))
    if layout.outer_dim is not None:
        digits.append((index[DIM_AXIS[layout.outer_dim]] % layout.outer_block, layout.outer_block))
    digits.append((index[DIM_AXIS[layout.packed_dim]] % layout.block, layout.block))
    offset = 0
    for digit, radix in digits:
        offset = offset * radix + digit
    return offset
