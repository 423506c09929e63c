"""Free axes and roles (a new family needs no codegen edit), the one safe-name rule, template paths
that stay inside the template directory, and that hostile names never write outside the build dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codegen.build import load_specs
from codegen.errors import ConfigError
from codegen.names import SAFE_NAME
from codegen.variants import VariantSpec
from tests.codegen.codegen_fixtures import (
    BETA_NAMES,
    REPO,
    TINY_YAML,
    assert_consistent,
    assert_valid_manifest,
    line_of,
    make_tiny,
    tree,
)

NAME_HINT = f"is not a valid name: use letters, digits and '_', starting with a letter or digit ({SAFE_NAME})"

# a new family with a free role and three free axes: a string, a bool and a mapping axis
GAMMA = """\
  gamma:
    template: gamma/gamma.glsl.j2
    role: my_new_role
    params: {bias: 2}
    matrix:
      precision: [fast, exact]
      unroll: [true, false]
      shape:
        - {m: 16, n: 8}
        - {m: 32, n: 8, packed: true}
      wg: [{x: 32}]
      coop: [emulated]
    exclude:
      - {precision: exact, shape: {m: 32}}
    overrides:
      - when: {unroll: false, shape: {packed: true}}
        params: {bias: 7}
"""
GAMMA_TEMPLATE = """\
#version 450
layout(local_size_x = {{ wg.x }}) in;
layout(set = 0, binding = 0, std430) buffer Data { uint t_data[]; };
// {{ variant_name }} {{ precision }} {{ coop }} {{ dtypes | length }}
void main() {
  uint v = t_data[gl_GlobalInvocationID.x] * {{ shape.m }}u + {{ shape.n }}u + {{ bias }}u;
{% if unroll %}
  v += 1u;
{% endif %}
{% if shape.packed is defined and shape.packed %}
  v ^= 3u;
{% endif %}
  t_data[gl_GlobalInvocationID.x] = v;
}
"""
GAMMA_NAMES = [
    "gamma_wg32_emulated_fast_unroll_m16n8",
    "gamma_wg32_emulated_fast_unroll_m32n8packed",
    "gamma_wg32_emulated_fast_nounroll_m16n8",
    "gamma_wg32_emulated_fast_nounroll_m32n8packed",
    "gamma_wg32_emulated_exact_unroll_m16n8",
    "gamma_wg32_emulated_exact_nounroll_m16n8",
]


def with_gamma(tmp_path: Path, yaml_text: str = TINY_YAML + GAMMA):  # type: ignore[no-untyped-def]
    tiny = make_tiny(tmp_path, yaml_text)
    tiny.write_template("gamma/gamma.glsl.j2", GAMMA_TEMPLATE)
    return tiny


def test_free_role_and_axes_expand_label_and_reach_the_template(tmp_path: Path) -> None:
    tiny = with_gamma(tmp_path)
    config, specs = load_specs(tiny.project)
    gamma: dict[str, VariantSpec] = {s.name: s for s in specs if s.family == "gamma"}
    # named axes first in their fixed order (wg, coop), then the free ones as written
    assert list(gamma) == GAMMA_NAMES
    spec = gamma["gamma_wg32_emulated_fast_nounroll_m32n8packed"]
    assert spec.role == "my_new_role"
    assert spec.axes == {
        "wg": {"x": 32, "y": 1, "z": 1},
        "coop": "emulated",
        "precision": "fast",
        "unroll": False,
        "shape": {"m": 32, "n": 8, "packed": True},
    }
    assert spec.params == {"bias": 7}  # the override's `when` matched the free axes
    ctx = spec.context(config)
    assert (ctx["precision"], ctx["unroll"], ctx["shape"]["m"], ctx["coop"]) == ("fast", False, 32, "emulated")

    report = tiny.build()
    assert report.ok, report.failures
    variants = assert_consistent(tiny.out)
    assert_valid_manifest(tiny.out)
    entry = variants["gamma_wg32_emulated_fast_nounroll_m32n8packed"]
    assert entry["role"] == "my_new_role" and entry["template"] == "gamma/gamma.glsl.j2"
    assert entry["axes"]["shape"] == {"m": 32, "n": 8, "packed": True}
    glsl = (tiny.out / "glsl" / "gamma_wg32_emulated_fast_nounroll_m32n8packed.comp").read_text()
    assert "* 32u + 8u + 7u;" in glsl and "v ^= 3u;" in glsl and "v += 1u;" not in glsl
    assert "// gamma_wg32_emulated_fast_nounroll_m32n8packed fast emulated 2" in glsl


@pytest.mark.parametrize(
    ("pattern", "left_out"),
    [
        # null: the optional key is absent (left at its default), so `packed: true` stays
        ("{shape: {packed: null}}", {"m16n8"}),
        ("{unroll: false, shape: {m: 16, packed: null}}", {"nounroll_m16n8"}),
        ("{shape: {packed: true}}", {"m32n8packed"}),
    ],
)
def test_a_null_key_in_a_pattern_matches_a_mapping_without_it(tmp_path: Path, pattern: str, left_out: set[str]) -> None:
    text = (TINY_YAML + GAMMA).replace("    exclude:\n      - {precision: exact, shape: {m: 32}}\n",
                                       f"    exclude:\n      - {pattern}\n")
    _, specs = load_specs(make_tiny(tmp_path, text).project)
    names = {s.name for s in specs if s.family == "gamma"}
    every = {f"gamma_wg32_emulated_{p}_{u}_{s}" for p in ("fast", "exact") for u in ("unroll", "nounroll")
             for s in ("m16n8", "m32n8packed")}
    assert names == {n for n in every if not any(n.endswith("_" + x) for x in left_out)}


def test_a_null_key_every_axis_value_has_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = (TINY_YAML + GAMMA).replace("      - {precision: exact, shape: {m: 32}}\n", "      - {shape: {m: null}}\n")
    with pytest.raises(ConfigError) as info:
        load_specs(make_tiny(tmp_path, text).project)
    line = line_of(text, "{shape: {m: null}}")
    assert f":{line}: families.gamma.exclude[0].shape: {{'m': None}} matches no value" in str(info.value)


def test_existing_axes_keep_their_labels_beside_coop_names(tmp_path: Path) -> None:
    yaml_text = TINY_YAML.replace(
        "      wg: [{x: 16}]\n",
        "      wg: [{x: 16}]\n      coop:\n        - {m: 16, n: 8, k: 32}\n        - emulated\n"
        "      stage: [true, false]\n",
    )
    _, specs = load_specs(make_tiny(tmp_path, yaml_text).project)
    assert [s.name for s in specs if s.family == "beta"] == [
        "beta_wg16_m16n8k32_stage",
        "beta_wg16_m16n8k32_nostage",
        "beta_wg16_emulated_stage",
        "beta_wg16_emulated_nostage",
    ]


def test_scalar_labels(tmp_path: Path) -> None:
    yaml_text = TINY_YAML.replace(
        "      wg: [{x: 16}]\n", "      wg: [{x: 16}]\n      level: [3, -1, hi, true, false]\n"
    )
    _, specs = load_specs(make_tiny(tmp_path, yaml_text).project)
    assert [s.name for s in specs if s.family == "beta"] == [
        "beta_wg16_3",
        "beta_wg16__1",
        "beta_wg16_hi",
        "beta_wg16_level",
        "beta_wg16_nolevel",
    ]


@pytest.mark.parametrize(
    ("old", "new", "key_line", "key_path", "expected"),
    [
        ("  beta:\n", "  Beta-2:\n", "  Beta-2:", "families['Beta-2']", f"'Beta-2' {NAME_HINT}"),
        ("  4c:\n", "  4c.x:\n", "  4c.x:", "layouts['4c.x']", f"'4c.x' {NAME_HINT}"),
        ("  float32: {", "  _f32: {", "_f32", "dtypes._f32", f"'_f32' {NAME_HINT}"),
        ("  int: {", "  int 4: {", "int 4", "dot_modes['int 4']", f"'int 4' {NAME_HINT}"),
        (
            "    role: test\n    params",
            "    role: my role\n    params",
            "my role",
            "families.beta.role",
            f"'my role' {NAME_HINT}",
        ),
        ("params: {step: 3}", "params: {step-size: 3}", "step-size", "families.beta.params['step-size']", NAME_HINT),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      my-axis: [a]",
            "my-axis",
            "families.beta.matrix['my-axis']",
            NAME_HINT,
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      mode: [fast, a.b]",
            "a.b",
            "families.beta.matrix.mode[1]",
            NAME_HINT,
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      shape: [{m: 1.5}]",
            "m: 1.5",
            "families.beta.matrix.shape[0]",
            "key 'm': values inside a mapping must be strings, integers or booleans, got float 1.5",
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      shape: [{m: {deep: 1}}]",
            "deep",
            "families.beta.matrix.shape[0]",
            "key 'm': values inside a mapping must be strings, integers or booleans",
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      shape: [{}]",
            "shape",
            "families.beta.matrix.shape[0]",
            "a mapping value needs at least one key",
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      shape: [[1]]",
            "shape",
            "families.beta.matrix.shape[0]",
            "expected a string, integer, boolean or flat mapping of those, got list [1]",
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      coop: [emu-lated]",
            "coop",
            "families.beta.matrix.coop[0]",
            NAME_HINT,
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      coop: [{m: 12, n: 8, k: 32}]",
            "coop",
            "families.beta.matrix.coop[0].m",
            "Input should be 8, 16 or 32",
        ),
        (
            "      wg: [{x: 16}]",
            "      wg: [{x: 16}]\n      layouts: [a]",
            "layouts: [a]",
            "families.beta.matrix.layouts",
            "axis name 'layouts' is reserved",
        ),
        (
            "params: {step: 3}",
            "params: {step: 3, wg: 1}",
            "params: {step",
            "families.beta.params.wg",
            "param 'wg' has the name of an axis",
        ),
    ],
    ids=[
        "family",
        "layout",
        "dtype",
        "dot_mode",
        "role",
        "param_key",
        "axis_name",
        "axis_value",
        "map_float",
        "map_nested",
        "map_empty",
        "list_value",
        "coop_name",
        "coop_shape",
        "reserved_axis",
        "param_shadows_axis",
    ],
)
def test_unsafe_or_clashing_names_are_errors_at_their_line(
    tmp_path: Path, old: str, new: str, key_line: str, key_path: str, expected: str
) -> None:
    assert TINY_YAML.count(old) == 1
    text = TINY_YAML.replace(old, new)
    tiny = make_tiny(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_specs(tiny.project)
    message = str(info.value)
    assert message.startswith(f"{tiny.variants_file}:{line_of(text, key_line)}: {key_path}: "), message
    assert expected in message, message


@pytest.mark.parametrize(
    "template",
    [
        "../../x.glsl.j2",
        "/abs/path.glsl.j2",
        "a/../../b.glsl.j2",
        "./beta.glsl.j2",
        "a\\\\b.glsl.j2",
        "a//b.glsl.j2",
        "",
    ],
)
def test_template_must_be_a_relative_path_inside_the_template_dir(tmp_path: Path, template: str) -> None:
    text = TINY_YAML.replace("template: beta.glsl.j2", f'template: "{template}"')
    tiny = make_tiny(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_specs(tiny.project)
    line = line_of(text, 'template: "')
    assert str(info.value).startswith(f"{tiny.variants_file}:{line}: families.beta.template: ")
    assert "is not a template path" in str(info.value)

    # the same in an override
    text = TINY_YAML.replace(
        "    params: {step: 3}\n", f'    params: {{step: 3}}\n    overrides: [{{when: {{}}, template: "{template}"}}]\n'
    )
    tiny = make_tiny(tmp_path / "override", text)
    with pytest.raises(ConfigError) as info:
        load_specs(tiny.project)
    assert "families.beta.overrides[0].template: " in str(info.value)
    assert "is not a template path" in str(info.value)


def test_symlinked_template_or_import_leading_outside_fails_its_variants(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path / "proj")
    outside = tmp_path / "outside.glsl.j2"
    outside.write_text((tiny.template_dir / "beta.glsl.j2").read_text())
    (tiny.template_dir / "beta.glsl.j2").unlink()
    os.symlink(outside, tiny.template_dir / "beta.glsl.j2")
    report = tiny.build()
    assert list(report.failures) == list(BETA_NAMES)
    assert "resolves outside the template directory" in report.failures["beta_wg16"]
    assert report.compiled == 4

    tiny = make_tiny(tmp_path / "proj2")
    tiny.edit_template("beta.glsl.j2", '"include/other.glsl.j2"', '"../include/other.glsl.j2"')
    report = tiny.build()
    assert "is not a template path" in report.failures["beta_wg16"]
    assert "(imported by templates/beta.glsl.j2)" in report.failures["beta_wg16"]


HOSTILE = [
    ("  beta:\n", "  ../../x:\n"),
    ("  beta:\n", "  /abs/path:\n"),
    ("  4c:\n", "  ../../x:\n"),
    ("template: beta.glsl.j2", "template: ../../x"),
    ("template: beta.glsl.j2", "template: /abs/path"),
    ("      wg: [{x: 16}]", "      wg: [{x: 16}]\n      mode: ['../../x']"),
    ("      wg: [{x: 16}]", "      wg: [{x: 16}]\n      mode: ['/abs/path']"),
    ("      wg: [{x: 16}]", "      wg: [{x: 16}]\n      ../../x: [a]"),
    ("      wg: [{x: 16}]", "      wg: [{x: 16}]\n      coop: ['../../x']"),
    ("params: {step: 3}", "params: {'/abs/path': 3}"),
]


@pytest.mark.parametrize(("old", "new"), HOSTILE, ids=[f"{i}" for i in range(len(HOSTILE))])
def test_hostile_names_write_nothing_anywhere(tmp_path: Path, old: str, new: str) -> None:
    tiny = make_tiny(tmp_path / "proj", TINY_YAML.replace(old, new))
    before = tree(tmp_path)
    with pytest.raises(ConfigError):
        tiny.build()
    for command in (["build", "-j", "2"], ["list"], ["show", "beta_wg16"]):
        proc = tiny.cli(*command)
        assert proc.returncode == 1, proc
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {tiny.variants_file}:"), proc.stderr
        assert "Traceback" not in proc.stderr
    assert tree(tmp_path) == before  # not even the build dir was created
    assert not tiny.out.exists()
    assert not Path("/abs").exists() and not Path("/x").exists()


def test_hostile_names_keep_an_existing_build_intact(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path / "proj")
    assert tiny.build(jobs=2).ok
    before = tree(tmp_path)
    for old, new in HOSTILE:
        tiny.write_yaml(TINY_YAML.replace(old, new))
        proc = tiny.cli("build")
        assert proc.returncode == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert tree(tmp_path).keys() - {"proj/variants.yaml"} == before.keys() - {"proj/variants.yaml"}
    tiny.write_yaml(TINY_YAML)
    assert tiny.build().compiled == 0


def test_a_new_family_builds_with_no_codegen_edit_through_the_cli(tmp_path: Path) -> None:
    tiny = with_gamma(tmp_path)
    proc = tiny.cli("build", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    assert set(GAMMA_NAMES) <= set(assert_consistent(tiny.out))
    proc = tiny.cli("list", "--family", "gamma")
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == GAMMA_NAMES
    assert tiny.build(jobs=2).compiled == 0


def test_the_documented_free_axis_example(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "variants-yaml.md").read_text()
    block = doc.split("**Free axes.**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    tiny = make_tiny(tmp_path, TINY_YAML + block)
    _, specs = load_specs(tiny.project)
    names = [s.name for s in specs if s.family == "my_family"]
    assert "my_family_wg64_fast_unroll_m16n8" in doc and "my_family_wg64_fast_unroll_m16n8" in names
    assert len(names) == 8
