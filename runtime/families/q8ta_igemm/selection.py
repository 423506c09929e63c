"""When conv2d_q8 runs as one implicit GEMM: the tuning cache's verdict for the call's conv shape class,
else a heuristic. This is the family's ``implements["conv2d_q8"]`` entry.

The cache (runtime/core/tuning.py, written by `python -m bench tune`) holds, under the op key
:data:`IMPL_KEY`, one entry per conv shape class (:func:`impl_class`) whose choice names what ran
fastest there: an igemm variant, a dwconv variant, or :data:`PAIR` (conv2d_q8's own im2col + GEMM);
an igemm variant timed at a K split other than split_plan's is ``{"variant": name, "split_k": "S"}``.
An igemm variant: this family serves the call (with that variant, at that split, where it reads the
call's layout); anything else: it declines. Without an entry, :func:`prefer_igemm` decides.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from runtime.core import tuning
from runtime.core.device import Device
from runtime.core.manifest import Manifest, load_manifest
from runtime.core.packed import Packed
from runtime.core.select import unrunnable
from runtime.families.q8ta_conv2d.op import DEFAULT_LAYOUT, conv_geometry
from runtime.oplib.conv import ConvGeometry, device_of
from runtime.oplib.variants import input_layout_reason

from .op import ROLE, igemm_conv2d_q8, run_igemm_conv2d_q8

IMPL_KEY = "conv2d_q8.impl"  # tuning-cache op key: which implementation of conv2d_q8 wins per class
PAIR = "im2col+gemm"  # the choice naming conv2d_q8's own two passes
SPLIT = "split_k"  # the key of a choice's K split (and run_igemm_conv2d_q8's argument for it)
# the staged templates' K step is 8 words = 32 channels: with channels per group a multiple of it a
# step stays inside one tap (one bounds test per pixel per step); fewer and every word is tested
ONE_TAP_CHANNELS = 32
# output channels per group below which most of a 64-channel output tile would idle
MIN_OUTPUT_CHANNELS = 32


def _bucket(n: int) -> int:
    """The largest power of two <= n (1 for n < 2)."""
    return 1 << (max(1, int(n)).bit_length() - 1)


def impl_class(geom: ConvGeometry) -> str:
    """The conv shape class the cache keys the verdict by: how the channels split (dense, grouped,
    depthwise), kernel, stride and dilation exactly; channel words per group, output channels per
    group and output pixels M (batch included) in power-of-two buckets."""
    if geom.groups == 1:
        kind = "dense"
    elif geom.Cg == 1 and geom.OCg == 1:
        kind = "depthwise"
    else:
        kind = "grouped"
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    return (f"{kind} k{geom.KH}x{geom.KW} s{sh}x{sw} d{dh}x{dw} Cg4~{_bucket(geom.Cg4)} "
            f"OCg~{_bucket(geom.OCg)} M~{_bucket(geom.M)}")


def split_choice(variant: str, splits: int) -> dict[str, str]:
    """The cache's choice of `variant` at `splits` K splits."""
    return {"variant": variant, SPLIT: str(splits)}


def split_label(variant: str, splits: int) -> str:
    """How `bench tune` and the timing script name `variant` run at `splits` K splits."""
    return f"{variant} S={splits}"


def tuned_choice(dev: Device, manifest: Manifest, geom: ConvGeometry) -> tuple[str, int | None] | None:
    """The cache's verdict for this conv's class: (a variant name or PAIR, the K split it was fastest at,
    None for split_plan's own), or None without one (or with a choice this module cannot read: warned)."""
    choice = tuning.lookup(dev, manifest, IMPL_KEY, impl_class(geom))
    if choice is None or isinstance(choice, str):
        return None if choice is None else (choice, None)
    split = choice.get(SPLIT, "")
    if set(choice) != {"variant", SPLIT} or not split.isdecimal() or int(split) < 1:
        warnings.warn(f"tuning cache: {IMPL_KEY}/{impl_class(geom)}: choice {choice!r} is not a variant name nor "
                      f"{{'variant': name, '{SPLIT}': 'S >= 1'}}; ignored (rerun `make tune`)", stacklevel=3)
        return None
    return choice["variant"], int(split)


def serves(dev: Device, manifest: Manifest, name: str, layout: str) -> bool:
    """Whether igemm variant `name` can serve a call with x in `layout` on `dev` (a cache verdict is
    run only where it can)."""
    entry = manifest.variants.get(name)
    return (entry is not None and entry.role == ROLE and input_layout_reason(entry.axes, layout) is None
            and unrunnable(entry, dev) is None)


def prefer_igemm(dev: Device, manifest: Manifest, geom: ConvGeometry) -> bool:
    """Without a measurement: is one implicit GEMM likely faster than im2col + GEMM here?

    Both do the same multiply-adds; the pair also writes the im2col matrix (M x K bytes, KH*KW times
    the input) and reads it back, in a second dispatch. Relative to the GEMM that costs about
    R / (B * OCg) (R the multiply-add rate, B the memory bandwidth): on tensor cores (R / B ~ 300
    per byte on an H100) the matrix traffic is as large as the GEMM itself up to a few hundred
    output channels, and at batch 1 the second dispatch's latency is of the same order as the work.
    So on a GPU the implicit GEMM is preferred wherever its gather is cheap:
      * not depthwise (q8ta_dwconv serves those) and a kernel of more than one tap (a 1x1 conv's
        im2col is a mere repack, and large 1x1 GEMMs are where the GEMM's own tuned main loop
        matters most: left to the tuner);
      * channels per group a multiple of ONE_TAP_CHANNELS (every ResNet / VGG 3x3 conv), so a K step
        is one bounds test per pixel and consecutive words, not a tap search per word;
      * at least MIN_OUTPUT_CHANNELS output channels per group (the staged output tile is 64 wide);
      * a runnable variant that multiplies fast: tensor cores or packed dot products.
    On a CPU (lavapipe) the matrix traffic stays in cache-sized pieces and im2col + GEMM measured as
    fast or faster on such shapes, so the pair is kept there (docs: the family's __main__ prints the
    ratios; `python -m bench tune` measures the real answer per device).
    """
    one_tap = geom.Cg % ONE_TAP_CHANNELS == 0
    if geom.Cg == 1 or geom.KH * geom.KW == 1 or not one_tap or geom.OCg < MIN_OUTPUT_CHANNELS:
        return False
    if dev.info.device_type == "cpu":
        return False
    fast = [e for e in manifest.entries(role=ROLE)
            if (isinstance(e.axes.get("coop"), Mapping) or e.axes.get("dot") in ("dot", "sdot"))
            and unrunnable(e, dev) is None]
    return bool(fast)


_OP_ARGS = frozenset(inspect.signature(igemm_conv2d_q8).parameters) - {"variant"}


def _x_shape(x: Any) -> tuple[int, ...] | None:
    """The logical shape of an int8 x (array or packed), or None for anything else."""
    if isinstance(x, Packed):
        return tuple(x.shape) if x.dtype == np.int8 else None
    if isinstance(x, np.ndarray) and x.dtype == np.int8 and x.ndim == 4:
        return tuple(int(s) for s in x.shape)
    return None


def conv2d_q8_igemm(x: Any, weight: Any, w_scales: Any, bias: Any, **kwargs: Any) -> Any:
    """The ``implements["conv2d_q8"]`` entry: conv2d_q8's arguments; the int8 NCHW output, or
    NotImplemented where the tuning cache (or, without an entry, :func:`prefer_igemm`) says im2col + GEMM
    or another family is faster. A call it cannot read (malformed x, weight, conv parameters, device,
    an argument it does not know) is declined too, so conv2d_q8 reports it in its own words."""
    shape = _x_shape(x)
    if shape is None or set(kwargs) - _OP_ARGS or not (
        isinstance(weight, np.ndarray) and weight.dtype == np.int8 and weight.ndim == 4
    ):
        return NotImplemented
    try:
        geom = conv_geometry(shape, weight, stride=kwargs.get("stride", 1), padding=kwargs.get("padding", 0),
                             dilation=kwargs.get("dilation", 1), groups=kwargs.get("groups", 1))
        dev = device_of(kwargs.get("device"))
    except (TypeError, ValueError):
        return NotImplemented
    if dev.closed:
        return NotImplemented
    manifest = load_manifest()
    verdict = tuned_choice(dev, manifest, geom)
    variant: str | None = None
    split: int | None = None
    if verdict is None:
        if not prefer_igemm(dev, manifest, geom):
            return NotImplemented
    elif manifest.variants.get(verdict[0]) is not None and manifest.variants[verdict[0]].role == ROLE:
        layout = x.layout.name if isinstance(x, Packed) else kwargs.get("input_layout") or DEFAULT_LAYOUT
        if serves(dev, manifest, verdict[0], str(layout)):
            variant, split = verdict  # the split was timed with that variant only
    else:
        return NotImplemented
    return run_igemm_conv2d_q8(x, weight, w_scales, bias, variant=variant, split_k=split, **kwargs).result
