"""Pydantic schema of variants.yaml and the loader that reports errors as `file: key.path: message`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from codegen.errors import ConfigError

DIMS = ("N", "C", "H", "W")
# Feature names as Vulkan spells them; the runtime maps each to a feature struct field.
Feature = Literal[
    "shaderIntegerDotProduct",
    "storageBuffer8BitAccess",
    "storageBuffer16BitAccess",
    "shaderFloat16",
    "shaderInt8",
    "shaderInt16",
    "shaderInt64",
    "cooperativeMatrix",
    "cooperativeMatrixNV",
    "vulkanMemoryModel",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayoutDef(Strict):
    """An activation memory layout; see runtime/layouts.py for the index formula."""

    description: str = ""
    packed_dim: Literal["N", "C", "H", "W"]
    block: Literal[1, 2, 4]
    outer_dim: Literal["N", "C", "H", "W"] | None = None
    outer_block: Literal[1, 2, 4] = 1
    order: list[Literal["N", "C", "H", "W"]] = Field(description="block order, slowest -> fastest")

    @field_validator("order")
    @classmethod
    def _is_permutation(cls, order: list[str]) -> list[str]:
        if sorted(order) != sorted(DIMS):
            raise ValueError(f"must list each of N, C, H, W once, got {order}")
        return order

    @model_validator(mode="after")
    def _outer_consistent(self) -> LayoutDef:
        if self.outer_dim is None and self.outer_block != 1:
            raise ValueError("outer_block needs an outer_dim")
        if self.outer_dim is not None and self.outer_dim == self.packed_dim:
            raise ValueError("outer_dim must differ from packed_dim")
        return self


class DtypeDef(Strict):
    """A scalar storage type the templates can declare buffers of."""

    glsl: str
    numpy: str
    size: Literal[1, 2, 4, 8]
    features: list[Feature] = []
    extensions: list[str] = []


class ModeDef(Strict):
    """A named code path (e.g. the int8 dot-product mode) and what it needs from the device."""

    description: str = ""
    features: list[Feature] = []
    extensions: list[str] = []


class Tile(Strict):
    """Outputs per thread: `w` output pixels (rows) x `c` output channels."""

    w: Literal[1, 2, 4, 8, 16]
    c: Literal[1, 2, 4, 8, 16]


class CoopShape(Strict):
    """One cooperative-matrix MMA shape: (m x k) @ (k x n), as the device reports it."""

    m: Literal[8, 16, 32]
    n: Literal[8, 16, 32]
    k: Literal[8, 16, 32, 64]


class Workgroup(Strict):
    x: int = Field(ge=1, le=1024)
    y: int = Field(default=1, ge=1, le=1024)
    z: int = Field(default=1, ge=1, le=64)


AxisValue = str | int | bool | Tile | Workgroup | CoopShape


class Matrix(Strict):
    """The axes a family is expanded over; every combination is a variant (minus excludes)."""

    input_layout: list[str] | None = None
    dtype: list[str] | None = None
    dot: list[str] | None = None
    tile: list[Tile] | None = None
    wg: list[Workgroup] | None = None
    coop: list[CoopShape] | None = Field(default=None, description="cooperative-matrix MMA shape")
    stage: list[bool] | None = Field(default=None, description="stage operand tiles in shared memory")

    @model_validator(mode="after")
    def _non_empty(self) -> Matrix:
        for name, values in self:
            if values is not None and len(values) == 0:
                raise ValueError(f"axis '{name}' lists no values")
        return self


class Override(Strict):
    """Extra settings for the variants whose axis values match `when`."""

    when: dict[str, Any]
    template: str | None = None
    features: list[Feature] = []
    params: dict[str, Any] = {}


class Family(Strict):
    template: str
    description: str = ""
    role: Literal["im2col", "gemm", "test", "bench_copy", "bench_dot_peak", "float_im2col", "float_gemm"] = Field(
        description="what the runtime uses the family for"
    )
    features: list[Feature] = []
    params: dict[str, Any] = Field(default={}, description="constants passed to the template and manifest")
    matrix: Matrix
    exclude: list[dict[str, Any]] = []
    overrides: list[Override] = []


class VariantsFile(Strict):
    layouts: dict[str, LayoutDef]
    dtypes: dict[str, DtypeDef]
    dot_modes: dict[str, ModeDef] = {}
    families: dict[str, Family]

    @model_validator(mode="after")
    def _references_exist(self) -> VariantsFile:
        tables: dict[str, dict[str, Any]] = {
            "input_layout": self.layouts, "dtype": self.dtypes, "dot": self.dot_modes
        }
        problems = []
        for fname, fam in self.families.items():
            for axis, table in tables.items():
                for i, value in enumerate(getattr(fam.matrix, axis) or []):
                    allowed: set[str] = set(table) | ({"generic"} if axis == "input_layout" else set())
                    if value not in allowed:
                        problems.append(
                            f"families.{fname}.matrix.{axis}[{i}]: unknown value {value!r}, "
                            f"expected one of {sorted(allowed)}"
                        )
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _loc_to_path(loc: tuple[Any, ...], raw: Any = None) -> str:
    """Turn a pydantic error location into `a.b[1].c`, dropping union-branch tags.

    A part that is a key of the input at that point is always kept, so user-chosen names such as a
    family `Conv2D` or a layout `NHWC` are not mistaken for tags.
    """
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(part, str) and (part[:1].isupper() or "[" in part or part in ("str", "int", "bool")):
            continue  # pydantic names the union member tried, e.g. 'Tile' or 'list[str]'
        else:
            node = None
        out += f".{part}" if out else part
    return out


def _yaml_line(text: str, path: str) -> int | None:
    """Best-effort source line of a dotted key path, for messages a person can jump to."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    node: Any = root
    tokens = path.replace("[", ".[").split(".")
    line = None
    for tok in tokens:
        if not tok or node is None:
            continue
        if tok.startswith("[") and isinstance(node, yaml.SequenceNode):
            idx = int(tok[1:-1])
            node = node.value[idx] if idx < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == tok]
            if not match:
                break
            line = match[0][0].start_mark.line + 1
            node = match[0][1]
            continue
        else:
            break
        if node is not None:
            line = node.start_mark.line + 1
    return line


def _describe(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown key {err['loc'][-1]!r}"
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_variants_file(path: Path) -> tuple[VariantsFile, dict[str, Any]]:
    """Parse and validate a variants file; return the model and the raw mapping (for hashing)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        model = VariantsFile.model_validate(raw)
    except ValidationError as exc:
        lines = []
        seen = set()
        for err in exc.errors():
            key = _loc_to_path(err["loc"], raw)
            text_msg = _describe(err)
            if (key, text_msg) in seen:
                continue
            seen.add((key, text_msg))
            if not key:  # cross-reference problems, one `key.path: message` a line
                for sub in text_msg.splitlines():
                    sub_key = sub.split(":", 1)[0]
                    line = _yaml_line(text, sub_key)
                    lines.append(f"{path}{f':{line}' if line else ''}: {sub}")
                continue
            line = _yaml_line(text, key) if key else None
            where = f"{path}:{line}" if line else str(path)
            lines.append(f"{where}: {key or '<top>'}: {text_msg}")
        raise ConfigError("\n".join(lines)) from None
    return model, raw
