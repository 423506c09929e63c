"""Shared helpers for the codegen tests: a tiny self-contained project in a tmp dir.

The tiny project has two families so that incremental builds can be checked per family:

* `alpha` (template alpha.glsl.j2, which imports include/util.glsl.j2): dtype x wg = 4 variants
* `beta` (template beta.glsl.j2, which imports include/other.glsl.j2): 1 variant

Every build goes to the tmp dir, never to the repository's build/.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.build import BuildReport, Progress, Project, build

REPO = Path(__file__).resolve().parents[2]
REAL_VARIANTS = REPO / "variants.yaml"
REAL_TEMPLATES = REPO / "templates"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))

TINY_YAML = """\
layouts:
  4c:
    packed_dim: C
    block: 4
    order: [N, H, W, C]
dtypes:
  float32: {glsl: float, numpy: float32, size: 4}
  float16:
    glsl: float16_t
    numpy: float16
    size: 2
    features: [shaderFloat16, storageBuffer16BitAccess]
    extensions: [GL_EXT_shader_16bit_storage, GL_EXT_shader_explicit_arithmetic_types_float16]
dot_modes:
  int: {description: plain integer math}
families:
  alpha:
    template: alpha.glsl.j2
    role: test
    matrix:
      dtype: [float32, float16]
      wg:
        - {x: 8}
        - {x: 4, y: 2}
  beta:
    template: beta.glsl.j2
    role: test
    params: {step: 3}
    matrix:
      wg: [{x: 16}]
"""

ALPHA_NAMES = ("alpha_float32_wg8", "alpha_float32_wg4x2", "alpha_float16_wg8", "alpha_float16_wg4x2")
BETA_NAMES = ("beta_wg16",)
TINY_NAMES = ALPHA_NAMES + BETA_NAMES

UTIL_INCLUDE = """\
{#- helpers shared by the tiny family -#}
{% macro header(extensions=[]) -%}
#version 450
{% for ext in extensions %}
#extension {{ ext }} : require
{% endfor %}
{%- endmacro %}

{% macro scale_fn(type) -%}
{{ type }} scale_value({{ type }} v) {
  return v * {{ type }}(2);
}
{%- endmacro %}
"""

OTHER_INCLUDE = """\
{% macro bump(step) -%}
void bump(uint i) {
  t_data[i] += {{ step }}u;
}
{%- endmacro %}
"""

ALPHA_TEMPLATE = """\
{% import "include/util.glsl.j2" as util %}
{{ util.header(dtype_info.extensions) }}
layout(local_size_x = {{ wg.x }}, local_size_y = {{ wg.y }}, local_size_z = {{ wg.z }}) in;
layout(set = 0, binding = 0, std430) writeonly buffer Out { float t_out[]; };
layout(set = 0, binding = 1, std430) readonly buffer In { {{ dtype_info.glsl }} t_in[]; };
layout(push_constant) uniform Params {
  int count;
  float gain;
} p;
layout(constant_id = 0) const int MODE = 0;
{{ util.scale_fn("float") }}

void main() {
  const int i = int(gl_GlobalInvocationID.x);
  if (i >= p.count) {
    return;
  }
  float v = float(t_in[i]) * p.gain;
  t_out[i] = MODE == 1 ? scale_value(v) : v;
}
"""

BETA_TEMPLATE = """\
{% import "include/other.glsl.j2" as other %}
#version 450
layout(local_size_x = {{ wg.x }}) in;
layout(set = 0, binding = 0, std430) buffer Data { uint t_data[]; };
{{ other.bump(step) }}
void main() {
  bump(gl_GlobalInvocationID.x);
}
"""

TINY_TEMPLATES = {
    "include/util.glsl.j2": UTIL_INCLUDE,
    "include/other.glsl.j2": OTHER_INCLUDE,
    "alpha.glsl.j2": ALPHA_TEMPLATE,
    "beta.glsl.j2": BETA_TEMPLATE,
}


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line of `text` containing `needle`."""
    hits = [i for i, line in enumerate(text.split("\n"), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} found on lines {hits}"
    return hits[0]


class Quiet(Progress):
    """Progress that writes nowhere, so test output stays readable."""

    def __init__(self, total: int) -> None:
        super().__init__(total, stream=io.StringIO())


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class TinyProject:
    root: Path
    project: Project

    @property
    def variants_file(self) -> Path:
        return self.project.variants_file

    @property
    def template_dir(self) -> Path:
        return self.project.template_dir

    @property
    def out(self) -> Path:
        return self.project.out_dir

    def write_yaml(self, text: str) -> None:
        self.variants_file.write_text(text)

    def write_template(self, name: str, text: str) -> None:
        path = self.template_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def edit(self, path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))

    def edit_template(self, name: str, old: str, new: str) -> None:
        self.edit(self.template_dir / name, old, new)

    def build(self, jobs: int = 2) -> BuildReport:
        return build(self.project, jobs=jobs, progress=Quiet)

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.out / "manifest.json").read_text())

    def variants(self) -> dict[str, dict[str, Any]]:
        return self.manifest()["variants"]

    def spv_bytes(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.out / "spv").glob("*.spv"))}

    def cli_args(self, *args: str) -> list[str]:
        return [
            PYTHON,
            "-m",
            "codegen",
            "--variants",
            str(self.variants_file),
            "--templates",
            str(self.template_dir),
            "--out",
            str(self.out),
            *args,
        ]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cli_args(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )


def make_tiny(tmp_path: Path, yaml_text: str = TINY_YAML, out_name: str = "out") -> TinyProject:
    """Write the tiny variants file and templates under tmp_path; nothing is built yet."""
    tdir = tmp_path / "templates"
    for name, text in TINY_TEMPLATES.items():
        path = tdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    vfile = tmp_path / "variants.yaml"
    vfile.write_text(yaml_text)
    return TinyProject(tmp_path, Project(vfile, tdir, tmp_path / out_name))


MANIFEST_SCHEMA = REPO / "codegen" / "manifest.schema.json"


def schema_errors(doc: Any) -> list[str]:
    """Every way `doc` breaks codegen/manifest.schema.json, as `path: message` lines."""
    import jsonschema  # a dev dependency; only the tests validate against the schema

    schema = json.loads(MANIFEST_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def assert_valid_manifest(out: Path) -> dict[str, Any]:
    doc = json.loads((out / "manifest.json").read_text())
    errors = schema_errors(doc)
    assert not errors, errors[:10]
    return dict(doc)


def many_yaml(widths: int) -> str:
    """The tiny file with `widths` workgroup widths for alpha: 2 * widths + 1 variants."""
    wgs = "".join(f"        - {{x: {x}}}\n" for x in range(1, widths + 1))
    text = TINY_YAML.replace("        - {x: 8}\n        - {x: 4, y: 2}\n", wgs)
    assert text != TINY_YAML
    return text


def tree(root: Path) -> dict[str, int]:
    """Every path under `root` (files and folders) with its size, to compare before and after."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in sorted(root.rglob("*"))}


def assert_consistent(out: Path) -> dict[str, dict[str, Any]]:
    """Every manifest entry's .spv exists and matches its sha256; no .spv lacks an entry; no temp files."""
    doc = json.loads((out / "manifest.json").read_text())
    variants = doc["variants"]
    for name, entry in variants.items():
        path = out / entry["spv"]
        assert path.is_file(), f"{name}: {path} missing"
        assert sha256_file(path) == entry["sha256"], f"{name}: {path} does not match the manifest sha256"
    on_disk = {p.stem for p in (out / "spv").glob("*.spv")}
    assert on_disk == set(variants), f"spv files without manifest entries: {sorted(on_disk - set(variants))}"
    leftovers = [str(p) for p in out.rglob("*.tmp")]
    assert not leftovers, f"temp files left behind: {leftovers}"
    return variants
