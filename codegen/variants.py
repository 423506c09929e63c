"""Expand the families of a variants file into concrete, uniquely named variant specs."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from codegen.errors import ConfigError
from codegen.names import MAX_VARIANT_NAME, is_safe_name
from codegen.patterns import matches
from codegen.schema import CoopShape, Family, Tile, VariantsFile, Workgroup


@dataclass(frozen=True)
class VariantSpec:
    """Everything needed to render, compile and describe one variant."""

    name: str
    family: str
    template: str
    role: str
    axes: dict[str, Any]
    features: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)

    def context(self, config: VariantsFile) -> dict[str, Any]:
        """The names a template sees: axes and params at top level, plus the shared tables."""
        ctx: dict[str, Any] = {
            "variant_name": self.name,
            "family": self.family,
            "features": list(self.features),
            "layouts": {k: v.model_dump() for k, v in config.layouts.items()},
            "dtypes": {k: v.model_dump() for k, v in config.dtypes.items()},
        }
        ctx.update(self.params)
        ctx.update(self.axes)
        if "dtype" in self.axes:
            ctx["dtype_info"] = config.dtypes[self.axes["dtype"]].model_dump()
        if "dot" in self.axes:
            ctx["dot_info"] = config.dot_modes[self.axes["dot"]].model_dump()
        return ctx

    def fingerprint_data(self, config: VariantsFile) -> str:
        """Canonical JSON of what this variant's output depends on (besides template sources)."""
        return json.dumps(
            {"spec": self.to_json(), "ctx": self.context(config)}, sort_keys=True, default=str
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "template": self.template,
            "role": self.role,
            "axes": self.axes,
            "features": list(self.features),
            "params": self.params,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    return value


def _scalar_label(axis: str, value: Any) -> str:
    if isinstance(value, bool):
        return axis if value else f"no{axis}"
    return str(value).replace("-", "_")


def _label(axis: str, value: Any) -> str:
    """The part of a variant name one axis value contributes (docs/variants-yaml.md, Variant names)."""
    if isinstance(value, Tile):
        return f"t{value.w}x{value.c}"
    if isinstance(value, Workgroup):
        dims = [value.x] + ([value.y] if value.y > 1 or value.z > 1 else []) + ([value.z] if value.z > 1 else [])
        return "wg" + "x".join(str(d) for d in dims)
    if isinstance(value, CoopShape):
        return f"m{value.m}n{value.n}k{value.k}"
    if isinstance(value, dict):
        # free mapping: key + value per entry, in the order written, so {m: 16, n: 8} reads m16n8
        parts = [_scalar_label(k, v) if isinstance(v, bool) else f"{k}{_scalar_label(k, v)}" for k, v in value.items()]
        return "".join(parts)
    return _scalar_label(axis, value)


def expand_family(fname: str, fam: Family, config: VariantsFile) -> list[VariantSpec]:
    """All variants of one family, in matrix order."""
    axes_present = fam.matrix.axes()
    specs = []
    for combo in itertools.product(*(values for _, values in axes_present)):
        axes = {name: _plain(v) for (name, _), v in zip(axes_present, combo, strict=True)}
        if any(matches(axes, pattern) for pattern in fam.exclude):
            continue
        features = set(fam.features)
        if "dtype" in axes:
            features |= set(config.dtypes[axes["dtype"]].features)
        if "dot" in axes:
            features |= set(config.dot_modes[axes["dot"]].features)
        params = dict(fam.params)
        template = fam.template
        for ov in fam.overrides:
            if matches(axes, ov.when):
                features |= set(ov.features)
                params.update(ov.params)
                template = ov.template or template
        name = "_".join([fname] + [_label(n, v) for (n, _), v in zip(axes_present, combo, strict=True)])
        if not is_safe_name(name) or len(name) > MAX_VARIANT_NAME:
            raise ConfigError(
                f"families.{fname}: variant name {name!r} is not a valid file name "
                f"(letters, digits and '_', at most {MAX_VARIANT_NAME} characters)",
                ("families", fname),
            )
        specs.append(
            VariantSpec(
                name=name,
                family=fname,
                template=template,
                role=fam.role,
                axes=axes,
                features=tuple(sorted(features)),
                params=params,
            )
        )
    return specs


def expand(config: VariantsFile) -> list[VariantSpec]:
    """All variants of all families; names are checked to be unique, ignoring case (they are file
    names, and some file systems do not tell `A.spv` from `a.spv`)."""
    specs: list[VariantSpec] = []
    owner: dict[str, tuple[str, str]] = {}  # lower-cased name -> (name, family)
    for fname, fam in config.families.items():
        fam_specs = expand_family(fname, fam, config)
        loc = ("families", fname)
        if not fam_specs:
            raise ConfigError(f"families.{fname}: every combination is excluded; the family has no variant", loc)
        for spec in fam_specs:
            other = owner.get(spec.name.lower())
            if other and other[0] == spec.name:
                raise ConfigError(
                    f"families.{fname}: variant name {spec.name!r} is produced twice "
                    f"(also by family {other[1]!r}); give the axes distinct values",
                    loc,
                )
            if other:
                raise ConfigError(
                    f"families.{fname}: variant names {spec.name!r} and {other[0]!r} (family {other[1]!r}) differ "
                    "only in case; they would share a file on a case-insensitive file system",
                    loc,
                )
            owner[spec.name.lower()] = (spec.name, fname)
            specs.append(spec)
    return specs
