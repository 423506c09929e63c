"""Device feature discovery and enabling.

Variants name the features they need with Vulkan's own member names
(``shaderIntegerDotProduct``, ``storageBuffer8BitAccess``, ...).  Each of them
lives in a different feature struct depending on the device's API version and
extensions, so both the query and the enable go through one table of
"sources": for every feature the first source that applies to the device is
the only one chained (Vulkan forbids chaining e.g. ``Vulkan13Features``
together with the struct it subsumes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .vkapi import vk

KNOWN_FEATURES: tuple[str, ...] = (
    "shaderIntegerDotProduct",
    "storageBuffer8BitAccess",
    "uniformAndStorageBuffer8BitAccess",
    "storageBuffer16BitAccess",
    "uniformAndStorageBuffer16BitAccess",
    "shaderFloat16",
    "shaderInt8",
    "shaderInt16",
    "shaderInt64",
    "cooperativeMatrix",
    "cooperativeMatrixNV",
    "vulkanMemoryModel",
)

# Fields of VkPhysicalDeviceFeatures (Vulkan 1.0) that variants may need.
_CORE_FIELDS = ("shaderInt16", "shaderInt64")

EXT_INTEGER_DOT = "VK_KHR_shader_integer_dot_product"
EXT_COOPMAT_KHR = "VK_KHR_cooperative_matrix"
EXT_COOPMAT_NV = "VK_NV_cooperative_matrix"


@dataclass(frozen=True)
class _Source:
    struct: str  # name of the vulkan-package constructor
    fields: tuple[str, ...]
    min_api: tuple[int, int] | None = None  # applies from this core version on
    max_api: tuple[int, int] | None = None  # ... and only below this one
    extension: str | None = None  # or when the device lists this extension
    # feature name -> struct member, where they differ (both coop-matrix structs say cooperativeMatrix)
    members: tuple[tuple[str, str], ...] = ()

    def member(self, feature: str) -> str:
        return dict(self.members).get(feature, feature)


_SOURCES: tuple[_Source, ...] = (
    _Source("VkPhysicalDeviceVulkan13Features", ("shaderIntegerDotProduct",), min_api=(1, 3)),
    _Source(
        "VkPhysicalDeviceShaderIntegerDotProductFeatures",
        ("shaderIntegerDotProduct",),
        max_api=(1, 3),
        extension=EXT_INTEGER_DOT,
    ),
    _Source(
        "VkPhysicalDeviceVulkan12Features",
        ("storageBuffer8BitAccess", "uniformAndStorageBuffer8BitAccess", "shaderFloat16", "shaderInt8",
         "vulkanMemoryModel"),
        min_api=(1, 2),
    ),
    _Source(
        "VkPhysicalDevice8BitStorageFeatures",
        ("storageBuffer8BitAccess", "uniformAndStorageBuffer8BitAccess"),
        max_api=(1, 2),
        extension="VK_KHR_8bit_storage",
    ),
    _Source(
        "VkPhysicalDeviceShaderFloat16Int8Features",
        ("shaderFloat16", "shaderInt8"),
        max_api=(1, 2),
        extension="VK_KHR_shader_float16_int8",
    ),
    _Source(
        "VkPhysicalDeviceVulkan11Features",
        ("storageBuffer16BitAccess", "uniformAndStorageBuffer16BitAccess"),
        min_api=(1, 2),
    ),
    _Source(
        "VkPhysicalDevice16BitStorageFeatures",
        ("storageBuffer16BitAccess", "uniformAndStorageBuffer16BitAccess"),
        min_api=(1, 1),
        max_api=(1, 2),
    ),
    _Source("VkPhysicalDeviceCooperativeMatrixFeaturesKHR", ("cooperativeMatrix",), extension=EXT_COOPMAT_KHR),
    # glslc 2023 compiles only GL_NV_cooperative_matrix, so the NV feature is a feature of its own
    _Source(
        "VkPhysicalDeviceCooperativeMatrixFeaturesNV",
        ("cooperativeMatrixNV",),
        extension=EXT_COOPMAT_NV,
        members=(("cooperativeMatrixNV", "cooperativeMatrix"),),
    ),
)


def _applies(src: _Source, api: tuple[int, int], extensions: frozenset[str]) -> bool:
    if src.max_api is not None and api >= src.max_api:
        return False
    if src.min_api is not None and api >= src.min_api:
        return True
    return src.extension is not None and src.extension in extensions


def _plan(api: tuple[int, int], extensions: frozenset[str]) -> list[tuple[_Source, tuple[str, ...]]]:
    """Pick, for each feature, the first applicable source; group by source."""
    owner: dict[str, _Source] = {}
    for src in _SOURCES:
        if not _applies(src, api, extensions):
            continue
        for field in src.fields:
            owner.setdefault(field, src)
    plan = []
    for src in _SOURCES:
        fields = tuple(f for f in src.fields if owner.get(f) is src)
        if fields:
            plan.append((src, fields))
    return plan


def query_features(physical: Any, api: tuple[int, int], extensions: frozenset[str]) -> dict[str, bool]:
    """Return ``{feature: supported}`` for every name in :data:`KNOWN_FEATURES`."""
    v = vk()
    result = dict.fromkeys(KNOWN_FEATURES, False)
    if api < (1, 1):
        core = v.vkGetPhysicalDeviceFeatures(physical)
        for name in _CORE_FIELDS:
            result[name] = bool(getattr(core, name))
        return result
    plan = _plan(api, extensions)
    structs = []
    chain: Any = None
    for src, _fields in plan:
        # Each struct is kept in ``structs`` so cffi cannot free it before the call.
        chain = getattr(v, src.struct)(pNext=chain)
        structs.append(chain)
    features2 = v.VkPhysicalDeviceFeatures2(pNext=chain)
    v.vkGetPhysicalDeviceFeatures2(physical, features2)
    for (_src, fields), struct in zip(plan, structs, strict=True):
        for name in fields:
            result[name] = bool(getattr(struct, _src.member(name)))
    for name in _CORE_FIELDS:
        result[name] = bool(getattr(features2.features, name))
    return result


@dataclass
class EnableChain:
    """A ``VkPhysicalDeviceFeatures2`` chain plus the extensions it needs.

    ``keepalive`` owns the cffi structs; it must outlive ``vkCreateDevice``.
    """

    features2: Any
    extensions: list[str]
    keepalive: list[Any]


def build_enable_chain(api: tuple[int, int], extensions: frozenset[str], wanted: set[str]) -> EnableChain:
    """Build the ``pNext`` chain enabling exactly ``wanted`` (already filtered to supported ones)."""
    v = vk()
    keep: list[Any] = []
    exts: list[str] = []
    chain: Any = None
    for src, fields in _plan(api, extensions):
        on = [f for f in fields if f in wanted]
        if not on:
            continue
        chain = getattr(v, src.struct)(pNext=chain, **{src.member(f): v.VK_TRUE for f in on})
        keep.append(chain)
        needs_ext = src.extension is not None and not (src.min_api is not None and api >= src.min_api)
        if needs_ext and src.extension not in exts:
            exts.append(src.extension)  # type: ignore[arg-type]
    # Requested in the brief: harmless on 1.3 devices, required before 1.3.
    if "shaderIntegerDotProduct" in wanted and EXT_INTEGER_DOT in extensions and EXT_INTEGER_DOT not in exts:
        exts.append(EXT_INTEGER_DOT)
    core = v.VkPhysicalDeviceFeatures(**{f: v.VK_TRUE for f in _CORE_FIELDS if f in wanted})
    keep.append(core)
    features2 = v.VkPhysicalDeviceFeatures2(pNext=chain, features=core)
    keep.append(features2)
    return EnableChain(features2=features2, extensions=exts, keepalive=keep)


_COMPONENT_NAMES = {
    0: "float16",
    1: "float32",
    2: "float64",
    3: "sint8",
    4: "sint16",
    5: "sint32",
    6: "sint64",
    7: "uint8",
    8: "uint16",
    9: "uint32",
    10: "uint64",
    1000141000: "bfloat16",
    1000491000: "sint8_packed",
    1000491001: "uint8_packed",
    1000491002: "float8_e4m3",
    1000491003: "float8_e5m2",
}
_SCOPE_NAMES = {1: "device", 2: "workgroup", 3: "subgroup", 5: "queue_family"}


def _component(value: int) -> str:
    return _COMPONENT_NAMES.get(int(value), f"component_{int(value)}")


def query_cooperative_matrix(instance: Any, physical: Any, extensions: frozenset[str]) -> list[dict[str, Any]]:
    """List supported cooperative-matrix shapes (KHR preferred over NV; empty if neither)."""
    v = vk()
    if EXT_COOPMAT_KHR in extensions:
        fn_name, struct, stype, result_field = (
            "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR",
            "VkCooperativeMatrixPropertiesKHR",
            v.VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR,
            "ResultType",
        )
    elif EXT_COOPMAT_NV in extensions:
        fn_name, struct, stype, result_field = (
            "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV",
            "VkCooperativeMatrixPropertiesNV",
            v.VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV,
            "DType",
        )
    else:
        return []
    # The bindings' wrapper leaves sType zero in the output array, which the
    # spec forbids; call the raw pointer and fill sType ourselves.
    raw = v.lib.vkGetInstanceProcAddr(instance, fn_name.encode())
    if raw == v.ffi.NULL:
        return []
    fn = v.ffi.cast("PFN_" + fn_name, raw)
    count = v.ffi.new("uint32_t*")
    if fn(physical, count, v.ffi.NULL) != v.VK_SUCCESS or count[0] == 0:
        return []
    props = v.ffi.new(f"{struct}[]", count[0])
    for i in range(count[0]):
        props[i].sType = stype
    if fn(physical, count, props) not in (v.VK_SUCCESS, v.VK_INCOMPLETE):
        return []
    out = []
    for i in range(count[0]):
        p = props[i]
        entry: dict[str, Any] = {
            "M": int(p.MSize),
            "N": int(p.NSize),
            "K": int(p.KSize),
            "A": _component(p.AType),
            "B": _component(p.BType),
            "C": _component(p.CType),
            "Result": _component(getattr(p, result_field)),
            "scope": _SCOPE_NAMES.get(int(p.scope), str(int(p.scope))),
        }
        if hasattr(p, "saturatingAccumulation"):
            entry["saturatingAccumulation"] = bool(p.saturatingAccumulation)
        out.append(entry)
    return out
