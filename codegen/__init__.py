"""shaderkit codegen: variants.yaml -> Jinja2 GLSL -> validated SPIR-V + manifest.

Everything but the errors loads on first use, so `python -m codegen build` can answer a no-op
build from its stamp (codegen/stamp.py) before pydantic, Jinja2 or even dataclasses are imported.
The build function is `codegen.build.build`; `codegen.build` itself is the module.
"""

from __future__ import annotations

from codegen.errors import CodegenError, CompileError, ConfigError, TemplateError

__all__ = ["BuildReport", "CodegenError", "CompileError", "ConfigError", "Project", "TemplateError"]


def __getattr__(name: str) -> object:
    if name == "BuildReport":
        from codegen.build import BuildReport

        return BuildReport
    if name == "Project":
        from codegen.project import Project

        return Project
    raise AttributeError(f"module 'codegen' has no attribute {name!r}")
