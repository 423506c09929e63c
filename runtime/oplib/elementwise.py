"""What the element-wise int8 families (q8ta_quantize, q8ta_binary) share on the host.

Their shaders run one thread per int32 word of an int8 tensor (templates/include/elementwise.glsl.j2).
Here: tensor arguments that are logical NCHW arrays or :class:`Packed` tensors (on the host or on
a device), the word dispatch, BufferMetadata arrays, variant preferences, and where a result goes:
back to the host as an NCHW array or a Packed, or kept on the device as a Packed for the next op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from runtime.core.buffers import Buffer
from runtime.core.device import Device
from runtime.core.dispatch import Step
from runtime.core.layouts import Layout
from runtime.core.manifest import Manifest, VariantEntry
from runtime.core.packed import Packed, unpack
from runtime.core.select import check_forced, pick
from runtime.oplib import validate
from runtime.oplib.conv import check_limit, metadata

__all__ = ["DEFAULT_LAYOUT", "Placement", "Run", "Tensor", "choose", "deliver", "layout_arg", "layout_reason",
           "metadata", "on_device", "output_buffer", "placement", "run_into", "tensor_arg", "wg_preference",
           "word_groups", "word_step"]

DEFAULT_LAYOUT = "4w4c"
Placement = Literal["array", "host", "device"]


@dataclass(frozen=True)
class Tensor:
    """One tensor argument: a logical NCHW array (to be laid out in `layout`), or a Packed tensor."""

    name: str
    shape: tuple[int, int, int, int]
    layout: Layout
    dtype: np.dtype
    array: np.ndarray | None = None
    packed: Packed | None = None

    @property
    def on_device(self) -> bool:
        return self.packed is not None and self.packed.on_device

    @property
    def nbytes(self) -> int:
        """Bytes of the packed buffer (int8: whole int32 words)."""
        if self.dtype == np.int8:
            return 4 * self.layout.words(self.shape)
        return self.dtype.itemsize * int(np.prod(self.shape))

    def data(self, garbage: np.random.Generator | None = None) -> np.ndarray | Buffer:
        """What a shader binds: the packed data as given, or the int8 array packed now (padding bytes
        0, or random garbage from `garbage`), or the float array as a flat NCHW array."""
        if self.packed is not None:
            return self.packed.data
        assert self.array is not None
        if self.dtype == np.int8:
            return self.layout.pack(self.array, pad_value=None if garbage is not None else 0, rng=garbage)
        return np.ascontiguousarray(self.array).reshape(-1)

    def numpy(self) -> np.ndarray:
        """The logical NCHW array (a Packed one unpacked, read back from its device if need be)."""
        return self.array if self.array is not None else unpack(self.packed)  # type: ignore[arg-type]


def layout_arg(manifest: Manifest, value: Any, name: str = "layout") -> Layout:
    """The layout a `layout` argument names (one of the manifest's)."""
    validate.choice(value, name, sorted(manifest.layouts))
    return Layout.from_dict(value, manifest.layouts[value])


def _shape4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    return int(shape[0]), int(shape[1]), int(shape[2]), int(shape[3])


def tensor_arg(value: Any, name: str, *, dtypes: tuple[str, ...], layout: Any, layout_name: str,
               manifest: Manifest) -> Tensor:
    """Sort out a tensor argument and the layout argument (`layout_name`) that goes with it.

    An array must be 4-D, non-empty, of one of `dtypes`; an int8 one is laid out in `layout` (default
    4w4c). A Packed tensor keeps its own layout (`layout`, if given, must name it)."""
    if isinstance(value, Packed):
        if value.dtype.name not in dtypes:
            raise TypeError(f"{name} is a packed {value.dtype} tensor; this op takes {' or '.join(dtypes)}")
        if layout is not None and layout != value.layout.name:
            raise ValueError(f"{layout_name}={layout!r} but {name} is packed in {value.layout.name!r}; "
                             f"leave {layout_name} out (None) for a packed {name}")
        return Tensor(name, _shape4(value.shape), value.layout, value.dtype, packed=value)
    desc = " or ".join(dtypes)
    arr = validate.array(value, name, ndim=4, kinds="iuf", dtype_desc=desc)
    if arr.dtype.name not in dtypes:
        raise TypeError(f"{name} must have dtype {desc}, got {arr.dtype}")
    lay = layout_arg(manifest, DEFAULT_LAYOUT if layout is None else layout, layout_name)
    return Tensor(name, _shape4(arr.shape), lay, arr.dtype, array=arr)


def on_device(dev: Device, *tensors: Tensor) -> bool:
    """Whether any tensor lives on a device; ValueError naming one that lives on another than `dev`."""
    for t in tensors:
        if t.on_device:
            assert t.packed is not None
            try:
                t.packed.to_device(dev)  # itself when on `dev`
            except ValueError:
                raise ValueError(f"{t.name} is a Packed tensor on another device than the one this call runs on "
                                 f"({dev.info.name!r}, the default unless device= names one); pass its device as "
                                 "device=") from None
    return any(t.on_device for t in tensors)


def placement(packed: Any, device_input: bool) -> Placement:
    """Where the result goes. `packed`: None follows the input (a device-resident input gives a
    device-resident Packed, else an NCHW array); True gives a Packed (on the device if the input is
    there, else on the host); False an NCHW array."""
    want = validate.flag(packed, "packed", allow_none=True)
    if want is False or (want is None and not device_input):
        return "array"
    return "device" if device_input else "host"


@dataclass
class Run:
    """One execution of an element-wise op: the result as the caller asked for it, the variant that
    ran, the GPU seconds of its dispatch when timed."""

    result: np.ndarray | Packed
    variant: str
    seconds: list[float] | None = None


def word_step(dev: Device, entry: VariantEntry, spec: Mapping[str, Any], buffers: Mapping[Any, Any],
              push: Mapping[str, Any], words: int) -> Step:
    """The dispatch of a one-thread-per-word variant over `words` words."""
    return Step(dev.pipeline(entry, spec), buffers, push, word_groups(dev, words, entry.local_size[0]))


def word_groups(dev: Device, words: int, local_x: int) -> tuple[int, int, int]:
    """Workgroups for one thread per word: x up to the device's limit, the rest folded into y
    (elementwise.glsl.j2's word_index undoes the fold)."""
    groups = max(1, -(-words // local_x))
    gx = min(groups, int(dev.info.limits["maxComputeWorkGroupCount"][0]))
    return gx, -(-groups // gx), 1


def output_buffer(dev: Device, what: str, nbytes: int, *, guard: bool,
                  garbage: np.random.Generator | None) -> Buffer:
    """A buffer for an output (checked against maxStorageBufferRange), pre-filled with random bytes
    from `garbage` so that a shader that skips part of its output shows."""
    check_limit(dev, what, nbytes)
    buf = dev.alloc(nbytes, guard=guard)
    if garbage is not None:
        buf.write(garbage.integers(0, 256, size=nbytes, dtype=np.uint8))
    return buf


def run_into(dev: Device, buf: Buffer, make_step: Callable[[], Step], label: str, *, guard: bool,
             timestamps: bool) -> list[float] | None:
    """Build and run the one step that writes `buf`, then check its guard bands (when it has them);
    `buf` is freed if anything fails, so a failed call leaks no device memory."""
    try:
        seconds = dev.run([make_step()], timestamps=timestamps)
        if guard:
            buf.check_guards(label)
    except BaseException:
        buf.free()
        raise
    return seconds


def deliver(buf: Buffer, layout: Layout, shape: tuple[int, int, int, int], dtype: Any,
            where: Placement) -> np.ndarray | Packed:
    """The result in `buf` as `where` asks; the buffer is freed unless it stays on the device."""
    dt = np.dtype(dtype)
    if where == "device":
        return Packed(buf, layout, shape, dt)
    try:
        result = Packed(buf.read(np.int32 if dt == np.int8 else dt), layout, shape, dt)
    finally:
        buf.free()
    if where == "host":
        return result
    if layout.order == ("N", "C", "H", "W") and layout.block_bytes == 1:
        # plain NCHW: the buffer is the array (an int8 one viewed as bytes), no gather needed
        flat = result.host_words().view(np.int8) if dt == np.int8 else result.host_words()
        return flat[: int(np.prod(shape))].reshape(shape)
    return unpack(result)


def choose(manifest: Manifest, dev: Device, *, role: str, forced: Any,
           accepts: Callable[[Mapping[str, Any]], str | None], preference: Callable[[VariantEntry], tuple[Any, ...]],
           what: str) -> VariantEntry:
    """The variant `forced` names (checked to serve the call), or the preferred one that does."""
    if forced is not None:
        return check_forced(manifest, forced, "variant", role=role, accepts=accepts, supports=dev.supports)
    return pick(manifest, role=role, accepts=accepts, preference=preference, supports=dev.supports, what=what)


def layout_reason(axes: Mapping[str, Any], layout: Layout) -> str | None:
    """Why a variant of `layout` axis cannot serve a tensor in `layout`, or None."""
    if axes.get("layout") in ("generic", layout.name):
        return None
    return f"it is specialized for layout {axes.get('layout')!r}, the call has {layout.name!r}"


def wg_preference(entry: VariantEntry, words: int) -> tuple[int, int]:
    """Fewest idle threads in the last workgroup, then the widest workgroup."""
    x = entry.local_size[0] or 1
    return -(-words // x) * x - words, -x
