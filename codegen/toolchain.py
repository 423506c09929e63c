"""Toolchain constants and tool lookup. Stdlib only, so the no-op fast path can use them."""

from __future__ import annotations

import os

TARGET_ENV = "vulkan1.2"
# no -O by default: spirv-opt strips the OpNames that reflection reports; drivers optimize anyway.
# `build --optimize` ships -O SPIR-V but still reflects the unoptimized module (codegen/compile.py).
GLSLC_FLAGS = ("-fshader-stage=compute", f"--target-env={TARGET_ENV}")
OPTIMIZE_FLAG = "-O"
TOOLS = ("glslc", "spirv-val", "spirv-cross")
INSTALL_HINT = "sudo apt-get install -y glslc spirv-tools spirv-cross (or run `make shaders`, which installs them)"


def glslc_flags(optimize: bool) -> tuple[str, ...]:
    return (*GLSLC_FLAGS, OPTIMIZE_FLAG) if optimize else GLSLC_FLAGS


def find_tool(name: str) -> str | None:
    """Like shutil.which, without importing shutil (the fast path counts milliseconds)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None
