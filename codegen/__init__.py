"""shaderkit codegen: variants.yaml -> Jinja2 GLSL -> validated SPIR-V + manifest."""

from codegen.build import BuildReport, Project, build
from codegen.errors import CodegenError, CompileError, ConfigError, TemplateError

__all__ = ["BuildReport", "CodegenError", "CompileError", "ConfigError", "Project", "TemplateError", "build"]
