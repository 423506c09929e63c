"""Errors the build reports to a person: one clear message, no traceback."""


class CodegenError(Exception):
    """Base class; str(error) is the whole message shown to the user."""


class ConfigError(CodegenError):
    """variants.yaml is malformed or inconsistent."""


class TemplateError(CodegenError):
    """A template is missing, has a syntax error or uses an undefined name."""


class CompileError(CodegenError):
    """glslc or spirv-val rejected a variant."""
