"""variants.yaml validation: every error names the file, the line, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen.build import Project, load_specs
from codegen.errors import CodegenError, ConfigError
from codegen.schema import load_variants_file
from tests.codegen.codegen_fixtures import TINY_NAMES, TINY_YAML, line_of

# A compact file using every table and most matrix axes; each test plants one defect in it.
BASE = """\
layouts:
  4c:
    packed_dim: C
    block: 4
    order: [N, H, W, C]
  4w4c:
    packed_dim: C
    block: 4
    outer_dim: W
    outer_block: 4
    order: [N, H, W, C]
dtypes:
  float32: {glsl: float, numpy: float32, size: 4}
  float16: {glsl: float16_t, numpy: float16, size: 2, features: [storageBuffer16BitAccess]}
dot_modes:
  dot: {features: [shaderIntegerDotProduct]}
  int: {}
families:
  alpha:
    template: alpha.glsl.j2
    role: test
    matrix:
      input_layout: [generic, 4c]
      dtype: [float32, float16]
      dot: [dot, int]
      tile:
        - {w: 4, c: 4}
        - {w: 4, c: 8}
      wg: [{x: 64}]
      stage: [true, false]
    exclude:
      - {dtype: float16, dot: int}
    overrides:
      - when: {input_layout: 4c}
        params: {fast: true}
  beta:
    template: beta.glsl.j2
    role: test
    matrix:
      wg: [{x: 16}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    return path


def planted(old: str, new: str, base: str = BASE) -> str:
    assert base.count(old) == 1, f"{old!r} must occur once"
    return base.replace(old, new)


def load_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    """The message of the ConfigError that loading (and expanding) `text` raises."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_specs(Project(path, tmp_path / "templates", tmp_path / "out"))
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "Traceback" not in message
    return path, message


def test_base_file_is_valid(tmp_path: Path) -> None:
    config, specs = load_specs(Project(write(tmp_path, BASE), tmp_path, tmp_path / "out"))
    # 2 layouts x 2 dtypes x 2 dots x 2 tiles x 1 wg x 2 stages = 32, minus float16+int (8), plus beta
    assert len(specs) == 32 - 8 + 1
    names = [s.name for s in specs]
    assert "alpha_generic_float32_dot_t4x4_wg64_stage" in names
    assert "alpha_4c_float16_dot_t4x8_wg64_nostage" in names
    assert not any("float16_int" in n for n in names)
    fast = {s.name for s in specs if s.params.get("fast")}
    assert fast == {n for n in names if n.startswith("alpha_4c_")}
    f16 = next(s for s in specs if s.name == "alpha_4c_float16_dot_t4x8_wg64_nostage")
    assert f16.features == ("shaderIntegerDotProduct", "storageBuffer16BitAccess")
    assert set(config.families) == {"alpha", "beta"}


def test_tiny_fixture_file_is_valid(tmp_path: Path) -> None:
    _, specs = load_specs(Project(write(tmp_path, TINY_YAML), tmp_path, tmp_path / "out"))
    assert sorted(s.name for s in specs) == sorted(TINY_NAMES)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_variants_file(missing)
    assert str(info.value).startswith(f"{missing}: cannot read: ")


@pytest.mark.parametrize(
    ("old", "new", "bad_line_start"),
    [
        # PyYAML notices the unclosed mapping where the next key's ':' appears
        ("size: 4}\n  float16", "size: 4\n  float16", "  float16:"),
        ("    block: 4\n    order: [N, H, W, C]\n  4w4c", "    block: 4\n   order: [N, H, W, C]\n  4w4c", "   order:"),
        ("      wg: [{x: 64}]", "      wg: [{x: 64}]]", "      wg: [{x: 64}]]"),
        ("  int: {}", "\tint: {}", "\tint"),
    ],
    ids=["unclosed_flow_mapping", "bad_indent", "stray_bracket", "tab"],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, old: str, new: str, bad_line_start: str) -> None:
    text = planted(old, new)
    path, message = load_error(tmp_path, text)
    (line,) = [i for i, t in enumerate(text.split("\n"), start=1) if t.startswith(bad_line_start)]
    assert message.startswith(f"{path}:{line}: malformed YAML: "), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "list"), ("just a string\n", "str"), ("", "NoneType"), ("42\n", "int")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path, message = load_error(tmp_path, text)
    assert message == f"{path}: expected a mapping at the top level, got {got}"


@pytest.mark.parametrize(
    ("old", "new", "key_line", "key_path", "key"),
    [
        ("dot_modes:", "colour: red\ndot_modes:", "colour: red", "colour", "colour"),
        (
            "    block: 4\n    order: [N, H, W, C]\n  4w4c",
            "    block: 4\n    colour: 1\n    order: [N, H, W, C]\n  4w4c",
            "colour: 1",
            "layouts.4c.colour",
            "colour",
        ),
        (
            "    template: alpha.glsl.j2",
            "    template: alpha.glsl.j2\n    bogus: 1",
            "bogus: 1",
            "families.alpha.bogus",
            "bogus",
        ),
        ("        - {w: 4, c: 8}", "        - {w: 4, c: 8, m8: 1}", "m8: 1", "families.alpha.matrix.tile[1].m8", "m8"),
        ("      wg: [{x: 64}]", "      wg: [{x: 64, q: 2}]", "q: 2", "families.alpha.matrix.wg[0].q", "q"),
        (
            "        params: {fast: true}",
            "        params: {fast: true}\n        colour: 3",
            "colour: 3",
            "families.alpha.overrides[0].colour",
            "colour",
        ),
    ],
    ids=["top", "layout", "family", "tile_item", "wg_item", "override"],
)
def test_unknown_key_at_any_depth(tmp_path: Path, old: str, new: str, key_line: str, key_path: str, key: str) -> None:
    text = planted(old, new)
    path, message = load_error(tmp_path, text)
    assert message == f"{path}:{line_of(text, key_line)}: {key_path}: unknown key {key!r}"


def test_several_problems_are_all_reported_one_a_line(tmp_path: Path) -> None:
    text = planted("      wg: [{x: 64}]", "      wg: [{x: 64, q: 2}]")
    text = planted("  int: {}", "  int: {speed: 9}", text)
    path, message = load_error(tmp_path, text)
    assert message.splitlines() == [
        f"{path}:{line_of(text, 'speed: 9')}: dot_modes.int.speed: unknown key 'speed'",
        f"{path}:{line_of(text, 'q: 2')}: families.alpha.matrix.wg[0].q: unknown key 'q'",
    ]


@pytest.mark.parametrize(
    ("old", "new", "key_line", "key_path", "expected"),
    [
        (
            "    block: 4\n    order: [N, H, W, C]\n  4w4c",
            '    block: "four"\n    order: [N, H, W, C]\n  4w4c',
            'block: "four"',
            "layouts.4c.block",
            "Input should be 1, 2 or 4",
        ),
        (
            "    outer_dim: W",
            "    outer_dim: Q",
            "outer_dim: Q",
            "layouts.4w4c.outer_dim",
            "Input should be 'N', 'C', 'H' or 'W'",
        ),
        (
            "  float32: {glsl: float, numpy: float32, size: 4}",
            "  float32: {glsl: float, numpy: float32, size: 3}",
            "size: 3",
            "dtypes.float32.size",
            "Input should be 1, 2, 4 or 8",
        ),
        (
            "    template: alpha.glsl.j2",
            "    template: [alpha.glsl.j2]",
            "template: [alpha",
            "families.alpha.template",
            "Input should be a valid string",
        ),
        (
            "      wg: [{x: 64}]",
            "      wg: [{x: 0}]",
            "wg: [{x: 0}]",
            "families.alpha.matrix.wg[0].x",
            "Input should be greater than or equal to 1",
        ),
        (
            "      stage: [true, false]",
            "      stage: [true, maybe]",
            "stage: [true, maybe]",
            "families.alpha.matrix.stage[1]",
            "Input should be a valid boolean",
        ),
        (
            "        - {w: 4, c: 8}",
            "        - {w: 3, c: 8}",
            "{w: 3, c: 8}",
            "families.alpha.matrix.tile[1].w",
            "Input should be 1, 2, 4, 8 or 16",
        ),
        (
            "    role: test\n    matrix:\n      input_layout",
            "    role: te-st\n    matrix:\n      input_layout",
            "role: te-st",
            "families.alpha.role",
            "'te-st' is not a valid name: use letters, digits and '_', starting with a letter or digit",
        ),
        (
            "  dot: {features: [shaderIntegerDotProduct]}",
            "  dot: {features: [integerDot]}",
            "integerDot",
            "dot_modes.dot.features[0]",
            "Input should be 'shaderIntegerDotProduct'",
        ),
        (
            "      - {dtype: float16, dot: int}",
            "      - float16",
            "      - float16",
            "families.alpha.exclude[0]",
            "Input should be a valid dictionary",
        ),
    ],
    ids=[
        "block_four",
        "outer_dim",
        "dtype_size",
        "template_list",
        "wg_zero",
        "stage_maybe",
        "tile_w3",
        "role",
        "feature",
        "exclude_str",
    ],
)
def test_wrong_type_or_value(tmp_path: Path, old: str, new: str, key_line: str, key_path: str, expected: str) -> None:
    text = planted(old, new)
    path, message = load_error(tmp_path, text)
    assert message.startswith(f"{path}:{line_of(text, key_line)}: {key_path}: {expected}"), message


def test_missing_required_keys(tmp_path: Path) -> None:
    text = planted("    template: alpha.glsl.j2\n", "")
    path, message = load_error(tmp_path, text)
    assert message == f"{path}:{line_of(text, '  alpha:')}: families.alpha.template: required key is missing"

    text = planted("    packed_dim: C\n    block: 4\n    outer_dim: W", "    block: 4\n    outer_dim: W")
    path, message = load_error(tmp_path, text)
    assert message == f"{path}:{line_of(text, '  4w4c:')}: layouts.4w4c.packed_dim: required key is missing"

    text = planted("families:\n", "familys:\n")
    path, message = load_error(tmp_path, text)
    assert message.splitlines() == [
        f"{path}: families: required key is missing",
        f"{path}:{line_of(text, 'familys:')}: familys: unknown key 'familys'",
    ]


@pytest.mark.parametrize(
    ("old", "new", "key_path", "value", "allowed"),
    [
        (
            "      input_layout: [generic, 4c]",
            "      input_layout: [generic, 4c, 4c1w]",
            "input_layout[2]",
            "4c1w",
            ["4c", "4w4c", "generic"],
        ),
        (
            "      dtype: [float32, float16]",
            "      dtype: [float32, float16, float64]",
            "dtype[2]",
            "float64",
            ["float16", "float32"],
        ),
        ("      dot: [dot, int]", "      dot: [dp4a, int]", "dot[0]", "dp4a", ["dot", "int"]),
    ],
    ids=["layout", "dtype", "dot"],
)
def test_unknown_table_value_in_matrix(
    tmp_path: Path, old: str, new: str, key_path: str, value: str, allowed: list[str]
) -> None:
    text = planted(old, new)
    path, message = load_error(tmp_path, text)
    assert message == (
        f"{path}:{line_of(text, new.strip())}: families.alpha.matrix.{key_path}: "
        f"unknown value {value!r}, expected one of {allowed}"
    )


def test_several_unknown_table_values_each_get_a_line(tmp_path: Path) -> None:
    text = planted("      dtype: [float32, float16]", "      dtype: [float32, float16, bf16]")
    text = planted("      dot: [dot, int]", "      dot: [dot, int, int4]", text)
    path, message = load_error(tmp_path, text)
    assert message.splitlines() == [
        f"{path}:{line_of(text, 'bf16')}: families.alpha.matrix.dtype[2]: unknown value 'bf16', "
        "expected one of ['float16', 'float32']",
        f"{path}:{line_of(text, 'int4')}: families.alpha.matrix.dot[2]: unknown value 'int4', "
        "expected one of ['dot', 'int']",
    ]


@pytest.mark.parametrize(
    ("order", "shown"),
    [("[N, H, W, W]", "['N', 'H', 'W', 'W']"), ("[N, H, W]", "['N', 'H', 'W']"), ("[N, C, H, W, C]", None)],
    ids=["repeated", "short", "long"],
)
def test_layout_order_must_be_a_permutation(tmp_path: Path, order: str, shown: str | None) -> None:
    text = planted("    block: 4\n    order: [N, H, W, C]\n  4w4c", f"    block: 4\n    order: {order}\n  4w4c")
    path, message = load_error(tmp_path, text)
    expected = f"{path}:{line_of(text, f'order: {order}')}: layouts.4c.order: must list each of N, C, H, W once"
    assert message.startswith(expected), message
    if shown:
        assert message.endswith(f"got {shown}")


def test_layout_outer_block_needs_outer_dim(tmp_path: Path) -> None:
    text = planted("    outer_dim: W\n", "")
    path, message = load_error(tmp_path, text)
    assert message == f"{path}:{line_of(text, '  4w4c:')}: layouts.4w4c: outer_block needs an outer_dim"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("      - {dtype: float16, dot: int}", "      - {dtype: float16, dots: int}", "exclude[0]"),
        ("      - when: {input_layout: 4c}", "      - when: {layout: 4c}", "overrides[0].when"),
    ],
    ids=["exclude", "override"],
)
def test_pattern_naming_an_unknown_axis(tmp_path: Path, old: str, new: str, where: str) -> None:
    text = planted(old, new)
    path, message = load_error(tmp_path, text)
    bad = "dots" if "dots" in new else "layout"
    assert message == (
        f"{path}:{line_of(text, new.strip())}: families.alpha.{where}.{bad}: unknown axis {bad!r}, "
        "expected one of ['input_layout', 'dtype', 'dot', 'tile', 'wg', 'stage']"
    )


def test_every_combination_excluded(tmp_path: Path) -> None:
    text = BASE + "    exclude: [{wg: {x: 16, y: 1, z: 1}}]\n"  # appended to beta
    path, message = load_error(tmp_path, text)
    line = line_of(text, "  beta:")
    assert message == f"{path}:{line}: families.beta: every combination is excluded; the family has no variant"


def test_duplicate_variant_names_across_families(tmp_path: Path) -> None:
    text = BASE + "  beta_wg16:\n    template: beta.glsl.j2\n    role: test\n    matrix: {}\n"
    path, message = load_error(tmp_path, text)
    assert message == (
        f"{path}:{line_of(text, '  beta_wg16:')}: families.beta_wg16: variant name 'beta_wg16' is produced twice "
        "(also by family 'beta'); give the axes distinct values"
    )


def test_duplicate_variant_names_within_a_family(tmp_path: Path) -> None:
    # {x: 16} and {x: 16, z: 1} are the same workgroup, so both are labelled wg16
    text = planted("      wg: [{x: 16}]\n", "      wg: [{x: 16}, {x: 16, z: 1}]\n")
    path, message = load_error(tmp_path, text)
    line = line_of(text, "  beta:")
    assert message.startswith(f"{path}:{line}: families.beta: variant name 'beta_wg16' is produced twice"), message


@pytest.mark.parametrize("axis", ["input_layout", "dtype", "dot", "tile", "wg", "stage"])
def test_empty_axis_list(tmp_path: Path, axis: str) -> None:
    lines = BASE.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"      {axis}:"))
    end = start + 1
    while lines[end].startswith("        "):  # the block list of tiles
        end += 1
    text = "\n".join([*lines[:start], f"      {axis}: []", *lines[end:]])
    path, message = load_error(tmp_path, text)
    matrix_line = text.split("\n").index("    matrix:") + 1  # alpha's
    assert message == f"{path}:{matrix_line}: families.alpha.matrix: axis {axis!r} lists no values"


@pytest.mark.parametrize(
    ("old", "new", "key_path"),
    [
        ("  alpha:\n    template:", "  Conv2D:\n    colour: 1\n    template:", "families.Conv2D.colour"),
        ("  4c:\n    packed_dim: C\n", "  NHWC:\n    colour: 1\n    packed_dim: C\n", "layouts.NHWC.colour"),
        ("  int: {}", "  int: {colour: 1}", "dot_modes.int.colour"),
        (
            "  float32: {glsl: float, numpy: float32, size: 4}",
            "  Float: {glsl: float, numpy: float32, size: 4, colour: 1}",
            "dtypes.Float.colour",
        ),
    ],
    ids=["family", "layout", "int_key", "dtype"],
)
def test_key_path_keeps_names_that_look_like_type_tags(tmp_path: Path, old: str, new: str, key_path: str) -> None:
    """User names such as `Conv2D`, `NHWC` or the dot mode `int` used to vanish from the key path (and line)."""
    text = planted(old, new)
    path, message = load_error(tmp_path, text)
    assert message == f"{path}:{line_of(text, 'colour: 1')}: {key_path}: unknown key 'colour'"


def test_config_error_is_a_codegen_error(tmp_path: Path) -> None:
    assert issubclass(ConfigError, CodegenError)
    with pytest.raises(CodegenError):
        load_variants_file(write(tmp_path, "[1, 2"))
