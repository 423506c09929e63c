"""`run_variant`: run any variant on NumPy arrays, addressed by what its SPIR-V reflects.

This is the layer to reach for first: bindings by reflected name or number, push constants and
spec constants by name (spec constants also by id), outputs read back as NumPy arrays. The ops
of the families are built from the same pieces (:func:`step`) with device-resident buffers.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .buffers import Buffer
from .device import Device, default_device
from .dispatch import Step, check_array
from .manifest import Binding, VariantEntry, load_manifest

BindingKey = str | int
OutputSpec = tuple[Sequence[int], Any] | np.ndarray


def entry_of(variant: str | VariantEntry) -> VariantEntry:
    """A manifest entry by name, or an entry as is (e.g. from :func:`runtime.load_shader`)."""
    if isinstance(variant, VariantEntry):
        return variant
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a variant name or a VariantEntry, got {variant!r}")
    return load_manifest().variant(variant)


def device_of(device: Any) -> Device:
    """The `device` argument, or the default device."""
    if device is None:
        return default_device()
    if not isinstance(device, Device):
        raise TypeError(f"device must be a runtime.Device or None, got {device!r}")
    return device


def group_count(groups: Any) -> tuple[int, int, int]:
    """`groups` (an int, or up to 3 ints; None: one workgroup) as (x, y, z)."""
    if groups is None:
        return (1, 1, 1)
    items = [groups] if isinstance(groups, numbers.Integral) else groups
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not 1 <= len(items) <= 3:
        raise ValueError(f"groups must be an int or 1 to 3 ints, got {groups!r}")
    out = []
    for g in items:
        if isinstance(g, bool) or not isinstance(g, numbers.Integral) or int(g) < 0:
            raise ValueError(f"groups must hold non-negative ints, got {groups!r}")
        out.append(int(g))
    out += [1] * (3 - len(out))
    return out[0], out[1], out[2]


def step(
    device: Device, entry: VariantEntry, buffers: Mapping[BindingKey, Buffer | np.ndarray], *,
    push: Mapping[str, Any] | None = None, spec: Mapping[Any, Any] | None = None, groups: Any = None,
) -> Step:
    """One dispatch of `entry`, ready for :meth:`Device.run`."""
    return Step(device.pipeline(entry, spec), buffers, dict(push or {}), group_count(groups))


def _output_buffer(dev: Device, entry: VariantEntry, binding: Binding, spec: Any, guard: bool) -> tuple[
        Buffer, tuple[int, ...], np.dtype, np.ndarray | None]:
    label = f"{entry.name}: output {binding.label()}"
    if isinstance(spec, np.ndarray):
        check_array(entry.name, binding, spec)
        buf = dev.alloc(spec.nbytes, kind=binding.descriptor, guard=guard)
        buf.write(spec)
        return buf, spec.shape, spec.dtype, spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(f"{label}: expected (shape, dtype) or an array to fill, got {spec!r}")
    shape_in, dtype_in = spec
    try:
        shape = (int(shape_in),) if isinstance(shape_in, numbers.Integral) else tuple(int(s) for s in shape_in)
        dtype = np.dtype(dtype_in)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label}: bad (shape, dtype) {spec!r}: {exc}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{label}: negative size in shape {shape}")
    probe = np.empty(shape, dtype)  # validates shape x dtype against the binding without a device buffer
    check_array(entry.name, binding, probe)
    buf = dev.alloc(probe.nbytes, kind=binding.descriptor, guard=guard, fill=0)
    return buf, shape, dtype, None


def run_variant(
    name: str | VariantEntry,
    inputs: Mapping[BindingKey, np.ndarray | Buffer],
    outputs: Mapping[BindingKey, OutputSpec],
    *,
    push: Mapping[str, Any] | None = None,
    spec: Mapping[Any, Any] | None = None,
    groups: int | Sequence[int] | None = None,
    device: Device | None = None,
    guard: bool = False,
) -> dict[BindingKey, np.ndarray]:
    """Run one dispatch of variant `name` and return its outputs as NumPy arrays.

    inputs   binding (reflected name or number) -> array (uploaded) or Buffer (bound as is)
    outputs  binding -> (shape, dtype) to allocate zeroed, or an array whose contents are uploaded
             and which is filled with the result in place
    push     push-constant members by reflected name, packed at their reflected offsets and types
    spec     specialization constants by name or by constant id
    groups   workgroup count: an int or (x, y[, z]); None is one workgroup
    guard    surround outputs with canary bytes and raise GuardBandError if the shader wrote past them

    Returns {key as given in `outputs`: array}. Every binding of the variant must be given once,
    in `inputs` or `outputs`; mismatches with the reflection raise ValueError naming the binding.
    """
    entry = entry_of(name)
    dev = device_of(device)
    if not isinstance(inputs, Mapping) or not isinstance(outputs, Mapping):
        raise TypeError("inputs and outputs must be mappings of binding -> array / (shape, dtype)")
    seen: dict[int, BindingKey] = {}
    for key in [*inputs, *outputs]:
        b = entry.binding(key)
        if b.binding in seen:
            raise ValueError(f"{entry.name}: {b.label()} is given twice (as {seen[b.binding]!r} and {key!r})")
        seen[b.binding] = key
    missing = [b.label() for b in entry.bindings if b.binding not in seen]
    if missing:
        raise ValueError(f"{entry.name}: no input or output given for {', '.join(missing)}")
    for key, value in inputs.items():
        if not isinstance(value, (np.ndarray, Buffer)):
            raise ValueError(f"{entry.name}: input {entry.binding(key).label()}: expected an array or Buffer, "
                             f"got {type(value).__name__}")
    made: list[Buffer] = []
    results: dict[BindingKey, tuple[Buffer, tuple[int, ...], np.dtype, np.ndarray | None]] = {}
    try:
        for key, out_spec in outputs.items():
            results[key] = _output_buffer(dev, entry, entry.binding(key), out_spec, guard)
            made.append(results[key][0])
        buffers: dict[BindingKey, Buffer | np.ndarray] = dict(inputs)
        buffers.update({key: r[0] for key, r in results.items()})
        dev.run([step(dev, entry, buffers, push=push, spec=spec, groups=groups)])
        out: dict[BindingKey, np.ndarray] = {}
        for key, (buf, shape, dtype, target) in results.items():
            if guard:
                buf.check_guards(f"{entry.name}: output {entry.binding(key).label()}")
            data = buf.read(dtype).reshape(shape)
            if target is not None:
                target[...] = data
                data = target
            out[key] = data
        return out
    finally:
        for buf in made:
            buf.free()
