"""`exclude` / `overrides[].when` patterns: which axis values a pattern value selects."""

from __future__ import annotations

from typing import Any


def value_matches(value: Any, want: Any) -> bool:
    """A mapping matches when the keys it gives do (so `{x: 256}` selects every workgroup of width
    256), a key given as null where the value lacks it (an optional key left at its default);
    anything else must be equal. bool and int never match each other (`true` is not `1`)."""
    if isinstance(want, dict):
        return isinstance(value, dict) and all(
            k not in value if w is None else k in value and value_matches(value[k], w) for k, w in want.items()
        )
    if isinstance(want, bool) or isinstance(value, bool):
        return isinstance(want, bool) and isinstance(value, bool) and want == value
    return bool(value == want)


def matches(axes: dict[str, Any], pattern: dict[str, Any]) -> bool:
    """Every key of the pattern names an axis whose value matches."""
    return all(k in axes and value_matches(axes[k], v) for k, v in pattern.items())
