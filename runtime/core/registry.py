"""Where families plug in: each one registers a :class:`Family`; the core finds them by discovery.

A family is one unit: its block(s) in variants.yaml, its templates folder, and one Python package
(`runtime/families/<name>/`) whose ``__init__`` calls :func:`register`. The core never imports a
family by name: :func:`families` imports every subpackage of ``runtime.families`` (and any package
named by a ``shaderkit.families`` entry point, so a family can also live outside this repo).

What a family declares:

* ``roles``: the `role:` values of its variants.yaml blocks (free strings; two families may not
  claim the same role). Variants are matched to their family by role.
* ``levels``: how variants are checked (:class:`Level`). A level names the roles it checks, its
  family's own or another family's (e.g. a linear op run on the conv family's GEMM variants); the
  generic property tests, the check/repro tool and the soak run every level on every variant of
  the roles it names. A level may declare coverage *cells* (:class:`Cell`): the property tests then
  run every cell of every variant, each with cases forced into it, and fail a cell none reached.
* ``ops``: public functions, reachable as ``runtime.<name>``.
* ``implements``: other ops this family can serve faster (e.g. a direct depthwise conv for
  ``conv2d_q8``). The op asks :func:`implementations` and calls each; one that declines returns
  ``NotImplemented``.
* ``bench``: optional hook the bench calls to time the family (see bench/).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .errors import ShaderkitError

FAMILIES_PACKAGE = "runtime.families"
ENTRY_POINT_GROUP = "shaderkit.families"

# check(variant name, case, device or None) -> None; raises AssertionError (VerificationError) on a mismatch
Checker = Callable[[str, dict[str, Any], Any], None]
# cases(variant entry, manifest) -> a Hypothesis strategy of JSON-able case dicts
Cases = Callable[[Any, Any], Any]


class VerificationError(AssertionError):
    """A variant disagreed with its family's oracle; the message says where and by how much."""


class RegistryError(ShaderkitError):
    """A family declared something that clashes with another family or is malformed."""


@dataclass(frozen=True)
class Cell:
    """One coverage cell of a level on one variant: an input layout the variant reads (None for a
    variant that reads no layout, e.g. a GEMM over a fixed matrix format) x a class of cases.

    ``cases`` is a Hypothesis strategy of cases forced into the cell. ``member`` tells, on its own
    and not from how ``cases`` forces it, whether a case is in the cell: the test run counts only
    the examples it accepts, so a strategy that stops forcing its class shows as an empty cell.
    """

    layout: str | None
    klass: str
    cases: Any
    member: Callable[[dict[str, Any]], bool]

    @property
    def id(self) -> str:
        """``<layout>-<class>`` (or the class alone): test ids carry it, so `pytest -k 4c1w` selects a layout."""
        return f"{self.layout}-{self.klass}" if self.layout else self.klass


# cells(variant entry, manifest) -> the level's coverage cells on that variant
Cells = Callable[[Any, Any], Sequence[Cell]]


@dataclass(frozen=True)
class Level:
    """One way of checking the variants of some roles against the family's oracle.

    ``cases`` builds the Hypothesis strategy lazily, so importing a family never imports
    Hypothesis. ``coverage`` (optional) names the coverage classes a case falls in; the test run
    counts them for a level without cells. ``cells`` (optional) lists the coverage cells of a
    variant that every test run must reach (:class:`Cell`); without it, the level's ``cases`` are
    drawn as they come.
    """

    name: str
    roles: tuple[str, ...]
    check: Checker
    cases: Cases
    doc: str = ""
    coverage: Callable[[dict[str, Any]], tuple[str, ...]] | None = None
    cells: Cells | None = None


@dataclass(frozen=True)
class Family:
    name: str
    roles: tuple[str, ...]
    levels: tuple[Level, ...] = ()
    ops: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    implements: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    bench: Callable[..., Any] | None = None
    doc: str = ""

    def level(self, name: str) -> Level:
        for level in self.levels:
            if level.name == name:
                return level
        raise ValueError(f"family {self.name!r} has no level {name!r}; its levels: {[lv.name for lv in self.levels]}")

    def levels_for(self, role: str) -> list[Level]:
        return [lv for lv in self.levels if role in lv.roles]


_registered: dict[str, Family] = {}
_lock = threading.RLock()
_discovered = False


def register(family: Family) -> Family:
    """Add a family (called from its package's ``__init__``); RegistryError on a clash."""
    with _lock:
        if family.name in _registered and _registered[family.name] is not family:
            raise RegistryError(f"family {family.name!r} is registered twice")
        for other in _registered.values():
            if other.name == family.name:
                continue
            shared_roles = set(other.roles) & set(family.roles)
            if shared_roles:
                raise RegistryError(
                    f"family {family.name!r} claims role(s) {sorted(shared_roles)}, already claimed by {other.name!r}"
                )
            shared_ops = set(other.ops) & set(family.ops)
            if shared_ops:
                raise RegistryError(
                    f"family {family.name!r} exports op(s) {sorted(shared_ops)}, as does {other.name!r}"
                )
        names = [lv.name for lv in family.levels]
        if len(set(names)) != len(names):
            raise RegistryError(f"family {family.name!r} declares a level name twice: {names}")
        _registered[family.name] = family
        return family


def _discover() -> None:
    global _discovered
    with _lock:
        if _discovered:
            return
        _discovered = True  # set first: a family's import may ask the registry again
        try:
            package = importlib.import_module(FAMILIES_PACKAGE)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                if info.ispkg and not info.name.startswith("_"):
                    _load(f"{FAMILIES_PACKAGE}.{info.name}", importlib.import_module)
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                _load(f"{ep.value} (entry point {ep.name!r})", lambda _name, ep=ep: ep.load())  # type: ignore[misc]
        except BaseException:
            _discovered = False  # the next call reports the same problem instead of a partial registry
            raise


def _load(name: str, loader: Callable[[str], Any]) -> None:
    try:
        loader(name)
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"family {name} failed to load: {type(exc).__name__}: {exc}") from exc


def families() -> dict[str, Family]:
    """Every registered family, by name (discovers them on first use)."""
    _discover()
    return dict(sorted(_registered.items()))


def family_of_role(role: str) -> Family | None:
    return next((f for f in families().values() if role in f.roles), None)


def levels_for_role(role: str) -> list[tuple[Family, Level]]:
    """Every (family, level) that checks variants of `role`, owner first."""
    owner = family_of_role(role)
    out = [(owner, lv) for lv in owner.levels_for(role)] if owner else []
    return out + [(f, lv) for f in families().values() if f is not owner for lv in f.levels_for(role)]


def op(name: str) -> Callable[..., Any] | None:
    """The public op `name` some family exports, or None."""
    return next((f.ops[name] for f in families().values() if name in f.ops), None)


def op_names() -> list[str]:
    return sorted(name for f in families().values() for name in f.ops)


def implementations(op_name: str) -> list[Callable[..., Any]]:
    """Alternative implementations other families offer for `op_name`, in family-name order."""
    return [f.implements[op_name] for f in families().values() if op_name in f.implements]
