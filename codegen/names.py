"""The one safe-name rule and the template-path rule, shared by the schema, the build and the renderer.

Family, layout, dtype, dot-mode, role, param and axis names, string axis values and the generated
variant names all pass through here. Variant names become file names under the build directory,
so a name with `/`, `..`, spaces or a leading dot must never get that far. Stdlib only: the no-op
fast path imports this module before pydantic and Jinja2.
"""

from __future__ import annotations

import re

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_]*$"
_SAFE_NAME_RE = re.compile(SAFE_NAME)
# a variant name plus the build's temp-file decorations must stay under the usual 255-byte file-name limit
MAX_VARIANT_NAME = 200


def is_safe_name(value: object) -> bool:
    return isinstance(value, str) and _SAFE_NAME_RE.match(value) is not None


def name_problem(value: object) -> str | None:
    """Why `value` is not a safe name, or None."""
    if not isinstance(value, str):
        return f"a name must be a string, got {type(value).__name__} {value!r}"
    if _SAFE_NAME_RE.match(value) is None:
        return (
            f"{value!r} is not a valid name: use letters, digits and '_', starting with a letter or digit ({SAFE_NAME})"
        )
    return None


def template_path_problem(value: str) -> str | None:
    """Why `value` is not a relative template path that stays inside the template directory, or None."""
    bad = "\\" in value or "\0" in value or re.match(r"^[A-Za-z]:", value) is not None
    # split by hand: pathlib would drop the '.' and empty parts this rule is about
    if bad or any(part in ("", ".", "..") for part in value.split("/")):
        return (
            f"{value!r} is not a template path: give a relative path under the template directory, "
            "with '/' separators and no '.', '..' or empty parts"
        )
    return None


def format_loc(loc: tuple[str | int, ...]) -> str:
    """`a.b[1].c` for a key path; a part that is not a plain name is quoted: `layouts['../x']`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
