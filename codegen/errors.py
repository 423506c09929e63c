"""Errors the build reports to a person: one clear message, no traceback."""

from __future__ import annotations


class CodegenError(Exception):
    """Base class; str(error) is the whole message shown to the user."""


class ConfigError(CodegenError):
    """variants.yaml is malformed or inconsistent.

    `loc` is the key path the message is about (e.g. ("families", "alpha")), when known, so the
    loader can prefix the file's line; str(error) already starts with that path.
    """

    def __init__(self, message: str, loc: tuple[str | int, ...] | None = None) -> None:
        super().__init__(message)
        self.loc = loc


class TemplateError(CodegenError):
    """A template is missing, has a syntax error or uses an undefined name."""


class CompileError(CodegenError):
    """glslc or spirv-val rejected a variant."""
