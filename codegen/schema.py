"""Pydantic schema of variants.yaml and the loader that reports errors as `file:line: key.path: message`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from codegen.errors import ConfigError
from codegen.layout_formula import element_offset
from codegen.names import format_loc, name_problem, template_path_problem
from codegen.patterns import value_matches

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
# names the build puts in every template context: an axis or param of the same name would hide them
RESERVED_CONTEXT_NAMES = ("variant_name", "family", "features", "layouts", "dtypes", "dtype_info", "dot_info", "fail")


def _safe_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _template_path(value: str) -> str:
    problem = template_path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
TemplatePath = Annotated[str, AfterValidator(_template_path)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayoutExample(Strict):
    """A golden example of a layout: where its author says element `index` of a tensor of `shape`
    lives. The build checks it with its own reading of the formula (codegen/layout_formula.py)."""

    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=4, max_length=4, description="N, C, H, W")
    index: list[Annotated[int, Field(ge=0)]] = Field(min_length=4, max_length=4, description="n, c, h, w")
    offset: int = Field(ge=0, description="element offset (int8: byte offset, word * 4 + byte)")

    @model_validator(mode="after")
    def _inside(self) -> LayoutExample:
        if any(i >= n for i, n in zip(self.index, self.shape, strict=True)):
            raise ValueError(f"index {self.index} lies outside shape {self.shape}")
        return self


class LayoutDef(Strict):
    """An activation memory layout; see runtime/layouts.py for the index formula."""

    description: str = ""
    packed_dim: Literal["N", "C", "H", "W"]
    block: Literal[1, 2, 4]
    outer_dim: Literal["N", "C", "H", "W"] | None = None
    outer_block: Literal[1, 2, 4] = 1
    order: list[Literal["N", "C", "H", "W"]] = Field(description="block order, slowest -> fastest")
    # checked by the build, then left out of the manifest and the template context (exclude)
    examples: list[LayoutExample] = Field(default=[], exclude=True, description="golden offsets")

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


def _coop_kind(value: Any) -> str:
    return "Name" if isinstance(value, str) else "CoopShape"


# a shape, or a named code path such as `emulated` (the tags start upper-case: error paths drop them)
CoopValue = Annotated[
    Annotated[CoopShape, Tag("CoopShape")] | Annotated[SafeName, Tag("Name")], Discriminator(_coop_kind)
]


def _free_axis_value(value: Any) -> Any:
    """A free axis value: a string, integer or boolean, or a flat non-empty mapping of names to those."""
    if isinstance(value, dict):
        if not value:
            raise ValueError("a mapping value needs at least one key")
        for key, item in value.items():
            problem = name_problem(key)
            if problem is None and not isinstance(item, bool | int):
                problem = name_problem(item) if isinstance(item, str) else (
                    f"values inside a mapping must be strings, integers or booleans, got {type(item).__name__} {item!r}"
                )
                problem = problem and f"key {key!r}: {problem}"
            if problem:
                raise ValueError(problem)
        return value
    if isinstance(value, str):
        problem = name_problem(value)
        if problem:
            raise ValueError(problem)
    elif not isinstance(value, bool | int):
        raise ValueError(
            f"expected a string, integer, boolean or flat mapping of those, got {type(value).__name__} {value!r}"
        )
    return value


FreeAxisValue = Annotated[Any, AfterValidator(_free_axis_value)]
AxisValue = str | int | bool | Tile | Workgroup | CoopShape | dict[str, Any]


class Matrix(BaseModel):
    """The axes a family is expanded over; every combination is a variant (minus excludes).

    The named fields keep their typing and labels; any other key is a free axis (see
    docs/variants-yaml.md) whose values are scalars or flat mappings of scalars.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[SafeName, list[FreeAxisValue]]

    input_layout: list[SafeName] | None = None
    dtype: list[SafeName] | None = None
    dot: list[SafeName] | None = None
    tile: list[Tile] | None = None
    wg: list[Workgroup] | None = None
    coop: list[CoopValue] | None = Field(default=None, description="cooperative-matrix MMA shape, or a named path")
    stage: list[bool] | None = Field(default=None, description="stage operand tiles in shared memory")

    @model_validator(mode="after")
    def _non_empty(self) -> Matrix:
        for name, values in self:
            if values is not None and len(values) == 0:
                raise ValueError(f"axis '{name}' lists no values")
        return self

    def axes(self) -> list[tuple[str, list[Any]]]:
        """The present axes in variant-name order: the named ones, then free ones as written."""
        return [(name, values) for name, values in self if values is not None]


class Override(Strict):
    """Extra settings for the variants whose axis values match `when`."""

    when: dict[str, Any]
    template: TemplatePath | None = None
    features: list[Feature] = []
    params: dict[SafeName, Any] = {}


class Family(Strict):
    template: TemplatePath
    description: str = ""
    role: SafeName = Field(description="what the runtime uses the family for")
    features: list[Feature] = []
    params: dict[SafeName, Any] = Field(default={}, description="constants passed to the template and manifest")
    matrix: Matrix = Field(
        default_factory=lambda: Matrix.model_validate({}),
        description="axes; none: one variant named after the family",
    )
    exclude: list[dict[str, Any]] = []
    overrides: list[Override] = []


class ConfigProblems(ValueError):
    """Cross-reference problems, each with the key path it is about (the loader adds lines)."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("\n".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))
        self.problems = problems


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _pattern_problems(
    fname: str, where: tuple[str | int, ...], pattern: dict[str, Any], axes: dict[str, list[Any]]
) -> list[tuple[tuple[str | int, ...], str]]:
    problems = []
    loc = ("families", fname, *where)
    for key, want in pattern.items():
        if key not in axes:
            problems.append(((*loc, key), f"unknown axis {key!r}, expected one of {list(axes)}"))
        elif not any(value_matches(value, want) for value in axes[key]):
            problems.append(
                ((*loc, key), f"{want!r} matches no value of axis {key!r}; its values are {axes[key]}")
            )
    return problems


def _family_problems(fname: str, fam: Family, tables: dict[str, set[str]]) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []

    def problem(where: tuple[str | int, ...], message: str) -> None:
        problems.append((("families", fname, *where), message))

    axes = {name: [_plain(v) for v in values] for name, values in fam.matrix.axes()}
    for axis, allowed in tables.items():
        for i, value in enumerate(axes.get(axis, [])):
            if value not in allowed:
                problem(("matrix", axis, i), f"unknown value {value!r}, expected one of {sorted(allowed)}")
    for name in axes:
        if name in RESERVED_CONTEXT_NAMES:
            problem(("matrix", name), f"axis name {name!r} is reserved for the template context")
    param_sets: list[tuple[tuple[str | int, ...], dict[str, Any]]] = [(("params",), fam.params)]
    param_sets += [(("overrides", i, "params"), ov.params) for i, ov in enumerate(fam.overrides)]
    for where, params in param_sets:
        for key in params:
            if key in RESERVED_CONTEXT_NAMES:
                problem((*where, key), f"param name {key!r} is reserved for the template context")
            elif key in axes:
                problem((*where, key), f"param {key!r} has the name of an axis of the family")
    for i, pattern in enumerate(fam.exclude):
        problems += _pattern_problems(fname, ("exclude", i), pattern, axes)
    for i, ov in enumerate(fam.overrides):
        problems += _pattern_problems(fname, ("overrides", i, "when"), ov.when, axes)
    return problems


def _golden_problems(name: str, layout: LayoutDef) -> list[tuple[tuple[str | int, ...], str]]:
    """Golden examples the layout definition contradicts."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, ex in enumerate(layout.examples):
        got = element_offset(layout, ex.index, ex.shape)
        if got != ex.offset:
            problems.append((
                ("layouts", name, "examples", i),
                f"golden example {i} of layout {name!r}: element {ex.index} of shape {ex.shape} is at offset "
                f"{ex.offset} by the example but at {got} by the definition (packed_dim {layout.packed_dim}, "
                f"block {layout.block}, outer_dim {layout.outer_dim}, outer_block {layout.outer_block}, "
                f"order {layout.order}): the definition or the example is wrong",
            ))
    return problems


class VariantsFile(Strict):
    layouts: dict[SafeName, LayoutDef]
    dtypes: dict[SafeName, DtypeDef]
    dot_modes: dict[SafeName, ModeDef] = {}
    families: dict[SafeName, Family]

    @model_validator(mode="after")
    def _references_exist(self) -> VariantsFile:
        tables = {
            "input_layout": set(self.layouts) | {"generic"},
            "dtype": set(self.dtypes),
            "dot": set(self.dot_modes),
        }
        problems = []
        for name, layout in self.layouts.items():
            problems += _golden_problems(name, layout)
        for fname, fam in self.families.items():
            problems += _family_problems(fname, fam, tables)
        if problems:
            raise ConfigProblems(problems)
        return self


def _clean_loc(loc: tuple[Any, ...], raw: Any = None) -> tuple[str | int, ...]:
    """A pydantic error location without union-branch tags and `[key]` markers.

    A part that is a key of the input at that point is always kept, so user-chosen names such as a
    family `Conv2D` or a layout `NHWC` are not mistaken for tags.
    """
    out: list[str | int] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(part, int) and isinstance(node, list):
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(part, str) and (part[:1].isupper() or "[" in part or part in ("str", "int", "bool")):
            continue  # pydantic names the union member tried, e.g. 'Tile' or 'list[str]', or '[key]'
        else:
            node = None
        out.append(part)
    return tuple(out)


class YamlLocator:
    """Source lines of key paths in one YAML text, for messages a person can jump to."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self._root: Any = ...  # composed on the first error only: it costs as much as the load

    def line(self, loc: tuple[str | int, ...]) -> int | None:
        """Line of the deepest key of `loc` that exists (so a missing key points at its parent)."""
        if self._root is ...:
            try:
                self._root = yaml.compose(self.text)
            except yaml.YAMLError:
                self._root = None
        node = self._root
        line = None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
                if not match:
                    break
                line = match[0][0].start_mark.line + 1
                node = match[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def where(self, loc: tuple[str | int, ...]) -> str:
        """`file:line` (or just `file` when the key path has no line)."""
        line = self.line(loc) if loc else None
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, exc: ConfigError) -> ConfigError:
        """`exc` with `file:line: ` in front (its message already starts with the key path)."""
        prefix = self.where(exc.loc) if exc.loc else str(self.path)
        return ConfigError(f"{prefix}: {exc}", exc.loc)


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
    model, raw, _ = load_variants(path)
    return model, raw


def load_variants(path: Path) -> tuple[VariantsFile, dict[str, Any], YamlLocator]:
    """Like load_variants_file, plus a locator for later errors (e.g. from expansion)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    locator = YamlLocator(path, text)
    try:
        model = VariantsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("\n".join(_error_lines(exc, raw, locator))) from None
    return model, raw, locator


def _error_lines(exc: ValidationError, raw: Any, locator: YamlLocator) -> list[str]:
    lines: list[str] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigProblems):
            found = list(cause.problems)
        else:
            found = [(_clean_loc(err["loc"], raw), _describe(err))]
        for loc, msg in found:
            if (loc, msg) in seen:
                continue
            seen.add((loc, msg))
            lines.append(f"{locator.where(loc)}: {format_loc(loc) or '<top>'}: {msg}")
    return lines
