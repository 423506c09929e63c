"""Template rendering: error locations, `fail()`, the output -> template line map and `show`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codegen.build import Project, _build_one, _Env, _Job, load_specs
from codegen.cli import main
from codegen.compile import ToolRunner, compiler_identity
from codegen.errors import CompileError, TemplateError
from codegen.render import Renderer
from codegen.variants import VariantSpec
from tests.codegen.codegen_fixtures import (
    ALPHA_NAMES,
    ALPHA_TEMPLATE,
    BETA_NAMES,
    REAL_TEMPLATES,
    REAL_VARIANTS,
    UTIL_INCLUDE,
    TinyProject,
    line_of,
    make_tiny,
)


def render(tiny: TinyProject, name: str) -> str:
    config, specs = load_specs(tiny.project)
    spec = next(s for s in specs if s.name == name)
    return Renderer(tiny.template_dir).render(spec.template, spec.context(config), spec.name).glsl


def render_error(tiny: TinyProject, name: str) -> str:
    with pytest.raises(TemplateError) as info:
        render(tiny, name)
    return str(info.value)


def test_tiny_templates_render_cleanly(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    glsl = render(tiny, "alpha_float16_wg4x2")
    assert glsl.startswith("#version 450\n#extension GL_EXT_shader_16bit_storage : require\n")
    assert "layout(local_size_x = 4, local_size_y = 2, local_size_z = 1) in;" in glsl
    assert "readonly buffer In { float16_t t_in[]; };" in glsl
    assert "float scale_value(float v) {\n  return v * float(2);\n}" in glsl
    assert "@@" not in glsl
    assert "t_data[i] += 3u;" in render(tiny, "beta_wg16")


# --- StrictUndefined ---------------------------------------------------------------------------


def test_undefined_name_in_template(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("alpha.glsl.j2", "local_size_x = {{ wg.x }}", "local_size_x = {{ wg_x }}")
    line = line_of(ALPHA_TEMPLATE, "local_size_x")
    assert render_error(tiny, "alpha_float32_wg8") == (
        f"templates/alpha.glsl.j2:{line}: undefined name: 'wg_x' is undefined (variant alpha_float32_wg8)"
    )


def test_undefined_attribute_in_template(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("alpha.glsl.j2", "{{ dtype_info.glsl }}", "{{ dtype_info.glsl_type }}")
    message = render_error(tiny, "alpha_float16_wg8")
    line = line_of(ALPHA_TEMPLATE, "dtype_info.glsl }}")
    assert message.startswith(f"templates/alpha.glsl.j2:{line}: undefined name: ")
    assert "glsl_type" in message
    assert message.endswith("(variant alpha_float16_wg8)")


def test_undefined_name_inside_an_included_macro(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("include/util.glsl.j2", "v * {{ type }}(2)", "v * {{ type }}({{ factor }})")
    line = line_of(UTIL_INCLUDE, "return v *")
    assert render_error(tiny, "alpha_float32_wg4x2") == (
        f"templates/include/util.glsl.j2:{line}: undefined name: 'factor' is undefined (variant alpha_float32_wg4x2)"
    )


def test_undefined_name_fails_only_its_variants_in_a_build(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template(
        "alpha.glsl.j2", "{{ dtype_info.glsl }} t_in", "{{ dtype_info.glsl if dtype == 'float32' else f16 }} t_in"
    )
    report = tiny.build()
    line = line_of(ALPHA_TEMPLATE, "t_in[]")
    assert set(report.failures) == {"alpha_float16_wg8", "alpha_float16_wg4x2"}
    for name, message in report.failures.items():
        assert message == f"templates/alpha.glsl.j2:{line}: undefined name: 'f16' is undefined (variant {name})"
    assert report.compiled == 3


# --- Jinja syntax errors -----------------------------------------------------------------------


def test_syntax_error_in_template(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("alpha.glsl.j2", "void main() {", "{% if %}\nvoid main() {")
    line = line_of(ALPHA_TEMPLATE, "void main() {")
    expected = (
        f"templates/alpha.glsl.j2:{line}: template syntax error: Expected an expression, got 'end of statement block'"
    )
    assert render_error(tiny, "alpha_float32_wg8") == expected
    report = tiny.build()  # the build finds it while hashing dependencies: same message, alpha only
    assert report.failures == dict.fromkeys(ALPHA_NAMES, expected)
    assert report.compiled_names == list(BETA_NAMES)


def test_syntax_error_in_include(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    macro = "{% macro scale_fn(type) -%}"
    tiny.edit_template("include/util.glsl.j2", macro, macro + "\n{{ type + }}")
    line = line_of(UTIL_INCLUDE, "macro scale_fn") + 1
    message = render_error(tiny, "alpha_float32_wg8")
    assert message.startswith(f"templates/include/util.glsl.j2:{line}: template syntax error: "), message
    report = tiny.build()
    assert set(report.failures) == set(ALPHA_NAMES)
    assert all(m == message for m in report.failures.values())


def test_unclosed_block(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "#version 450", "{% if wg.x > 4 %}\n#version 450")
    message = render_error(tiny, "beta_wg16")
    assert re.match(r"templates/beta\.glsl\.j2:\d+: template syntax error: Unexpected end of template", message)
    assert "'endif'" in message


# --- missing templates -------------------------------------------------------------------------


def test_missing_family_template(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit(tiny.variants_file, "template: beta.glsl.j2", "template: gamma.glsl.j2")
    assert render_error(tiny, "beta_wg16") == "templates/gamma.glsl.j2: template not found (variant beta_wg16)"
    report = tiny.build()
    assert report.failures == {"beta_wg16": "templates/gamma.glsl.j2: template not found"}
    assert sorted(report.compiled_names) == sorted(ALPHA_NAMES)


def test_missing_include(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "include/other.glsl.j2", "include/missing.glsl.j2")
    message = render_error(tiny, "beta_wg16")
    assert message == "templates/include/missing.glsl.j2: template not found (variant beta_wg16)"
    report = tiny.build()
    assert report.failures == {
        "beta_wg16": "templates/include/missing.glsl.j2: template not found (imported by templates/beta.glsl.j2)"
    }
    assert report.compiled == len(ALPHA_NAMES)


# --- fail() ------------------------------------------------------------------------------------


def test_fail_from_real_gemm_template_for_unhandled_tile(tmp_path: Path) -> None:
    """A GEMM tile of 2x4 rows x channels passes the schema but the template rejects it."""
    text = REAL_VARIANTS.read_text()
    assert "        - {w: 4, c: 4}\n" in text
    variants = tmp_path / "variants.yaml"
    variants.write_text(text.replace("        - {w: 4, c: 4}\n", "        - {w: 4, c: 4}\n        - {w: 2, c: 4}\n", 1))
    project = Project(variants, REAL_TEMPLATES, tmp_path / "out")
    config, specs = load_specs(project)
    spec = next(s for s in specs if s.family == "q8ta_gemm" and s.axes.get("tile") == {"w": 2, "c": 4})
    with pytest.raises(TemplateError) as info:
        Renderer(project.template_dir).render(spec.template, spec.context(config), spec.name)
    line = line_of((REAL_TEMPLATES / "q8ta_conv2d" / "q8ta_gemm.glsl.j2").read_text(), 'fail("tile "')
    message = str(info.value)
    assert message.startswith(f"templates/q8ta_conv2d/q8ta_gemm.glsl.j2:{line}: tile 2x4 is not handled: "), message
    assert message.endswith(f"(variant {spec.name})")
    assert "_t2x4_" in spec.name


@pytest.mark.parametrize(
    ("family", "stages", "template", "needle", "message"),
    [
        ("q8ta_gemm_coopmat_pipe", "{s: 1, d: 3}", "include/coopmat.glsl.j2", 'fail("prefetch depth',
         "prefetch depth 3: 1 or 2 K steps in registers"),
        ("q8ta_igemm_coopmat", "{s: 2, d: 2}", "q8ta_igemm/q8ta_igemm_coopmat.glsl.j2", 'fail("stages d',
         "stages d 2: the gathered A tile has one register set, so one K step in registers (d 1)"),
    ],
)
def test_fail_from_real_coopmat_templates_for_unhandled_prefetch_depth(
    tmp_path: Path, family: str, stages: str, template: str, needle: str, message: str,
) -> None:
    """`stages.d` (K steps held in registers) outside what the pipelined main loop, or a family's own
    loaders, handle fails the variant at the template line that says why."""
    text = REAL_VARIANTS.read_text()
    axis = text.index("      stages: [", text.index(f"  {family}:\n"))
    end = text.index("]\n", axis)
    variants = tmp_path / "variants.yaml"
    variants.write_text(text[:end] + f", {stages}" + text[end:])  # one more value of the axis
    project = Project(variants, REAL_TEMPLATES, tmp_path / "out")
    config, specs = load_specs(project)
    depth = int(stages.split("d: ")[1].rstrip("}"))
    spec = next(s for s in specs if s.family == family and s.axes["stages"].get("d") == depth)
    with pytest.raises(TemplateError) as info:
        Renderer(project.template_dir).render(spec.template, spec.context(config), spec.name)
    line = line_of((REAL_TEMPLATES / template).read_text(), needle)
    assert str(info.value) == f"templates/{template}:{line}: {message} (variant {spec.name})"


@pytest.mark.parametrize(
    ("edit", "scratch", "message"),
    [
        ("{wm: 64, wn: 32, scratch: col}", "col",
         "warp scratch col: row (a row of MMA tiles, 32 columns) or tile (one MMA tile, 8 columns)"),
        # 64-lane subgroups: one m16n8 tile is 32 output words, half a pass
        ("lanes: 64", "tile", "epilogue scratch of 16 x 8 int32 is not a whole number of 64-lane passes of 4 columns"),
    ],
)
def test_fail_from_real_coopmat_include_for_unhandled_epilogue_scratch(
    tmp_path: Path, edit: str, scratch: str, message: str,
) -> None:
    """A `warp.scratch` the epilogue does not know, or a scratch that is no whole number of passes of the
    subgroup's lanes, fails the variant at the line of include/coopmat.glsl.j2 that says why."""
    text = REAL_VARIANTS.read_text()
    start = text.index("  q8ta_gemm_coopmat_pipe:\n")
    if edit.startswith("lanes"):
        text = text[:start] + text[start:].replace("      lanes: 32\n", f"      {edit}\n", 1)
    else:
        anchor = "        - {wm: 64, wn: 32, scratch: tile}\n"
        text = text[:start] + text[start:].replace(anchor, anchor + f"        - {edit}\n", 1)
    variants = tmp_path / "variants.yaml"
    variants.write_text(text)
    project = Project(variants, REAL_TEMPLATES, tmp_path / "out")
    config, specs = load_specs(project)
    spec = next(s for s in specs if s.family == "q8ta_gemm_coopmat_pipe" and s.axes["warp"].get("scratch") == scratch
                and "m16n8k32" in s.name)
    with pytest.raises(TemplateError) as info:
        Renderer(project.template_dir).render(spec.template, spec.context(config), spec.name)
    needle = 'fail("warp scratch' if scratch == "col" else 'fail("epilogue scratch'
    line = line_of((REAL_TEMPLATES / "include" / "coopmat.glsl.j2").read_text(), needle)
    assert str(info.value) == f"templates/include/coopmat.glsl.j2:{line}: {message} (variant {spec.name})"


def test_fail_from_real_common_include_for_unhandled_dot_mode(tmp_path: Path) -> None:
    text = REAL_VARIANTS.read_text()
    anchor = "  int:\n    description: plain"
    assert anchor in text
    text = text.replace(anchor, "  dp2:\n    description: not handled\n" + anchor)
    text = text.replace("dot: [dot, sdot, int]", "dot: [dp2]")
    text = text.replace("      - {matrix: upstream, dot: dot}\n", "")  # an exclude naming a dot mode now gone
    variants = tmp_path / "variants.yaml"
    variants.write_text(text)
    project = Project(variants, REAL_TEMPLATES, tmp_path / "out")
    config, specs = load_specs(project)
    spec = next(s for s in specs if s.axes.get("dot") == "dp2")
    with pytest.raises(TemplateError) as info:
        Renderer(project.template_dir).render(spec.template, spec.context(config), spec.name)
    line = line_of((REAL_TEMPLATES / "include" / "common.glsl.j2").read_text(), 'fail("dot mode')
    assert str(info.value) == (
        f"templates/include/common.glsl.j2:{line}: dot mode dp2 is not handled; expected 'dot', 'sdot' or 'int' "
        f"(variant {spec.name})"
    )


def test_fail_in_a_build_names_template_line_and_variant(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template(
        "alpha.glsl.j2",
        "layout(constant_id",
        '{% if wg.y > 1 %}{{ fail("wg " ~ wg.x ~ "x" ~ wg.y ~ " is not handled") }}{% endif %}\nlayout(constant_id',
    )
    line = line_of(ALPHA_TEMPLATE, "layout(constant_id")
    report = tiny.build()
    assert report.failures == {
        name: f"templates/alpha.glsl.j2:{line}: wg 4x2 is not handled (variant {name})"
        for name in ALPHA_NAMES
        if name.endswith("wg4x2")
    }
    assert report.compiled == 3


# --- GLSL errors mapped back to template lines -------------------------------------------------


def _rendered_line(message: str) -> tuple[Path, int]:
    match = re.search(r"rendered (\S+\.comp):(\d+)\]", message)
    assert match, message
    return Path(match[1]), int(match[2])


def test_glsl_error_in_template_line_is_mapped_back(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("alpha.glsl.j2", "float v = float(t_in[i])", "float v = float(t_in[i]) + no_such_var")
    line = line_of(ALPHA_TEMPLATE, "float v = ")
    report = tiny.build()
    assert set(report.failures) == set(ALPHA_NAMES)
    assert report.compiled_names == list(BETA_NAMES)
    for name, message in report.failures.items():
        assert message.startswith(f"templates/alpha.glsl.j2:{line}: error: 'no_such_var' : undeclared identifier")
        assert f"[variant {name}; rendered {tiny.out / 'glsl' / name}.comp:" in message
        rendered, out_line = _rendered_line(message)
        assert rendered == tiny.out / "glsl" / f"{name}.comp"
        # float16 variants have two more #extension lines: the output line differs, the template line not
        assert "no_such_var" in rendered.read_text().split("\n")[out_line - 1]
        assert "@@" not in rendered.read_text()


def test_glsl_error_inside_included_macro_is_mapped_to_the_include(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("include/util.glsl.j2", "return v * {{ type }}(2);", "return v * {{ type }}(2) * bogus_scale;")
    line = line_of(UTIL_INCLUDE, "return v *")
    report = tiny.build()
    assert set(report.failures) == set(ALPHA_NAMES)
    for name, message in report.failures.items():
        assert message.startswith(f"templates/include/util.glsl.j2:{line}: error: 'bogus_scale' : undeclared")
        assert f"[variant {name}; rendered " in message
        rendered, out_line = _rendered_line(message)
        assert "bogus_scale" in rendered.read_text().split("\n")[out_line - 1]


def test_glsl_error_is_a_compile_error(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "bump(gl_GlobalInvocationID.x);", "bump(gl_GlobalInvocationID.x)")
    config, specs = load_specs(tiny.project)

    (spec,) = [s for s in specs if s.name == "beta_wg16"]
    (tiny.out / "spv").mkdir(parents=True)
    with pytest.raises(CompileError) as info:
        env = _Env(config, Renderer(tiny.template_dir), tiny.out, compiler_identity(), False, ToolRunner())
        _build_one(_Job(spec, "x", None), env)
    template_line = line_of(tiny.template_dir.joinpath("beta.glsl.j2").read_text(), "bump(gl_")
    assert str(info.value).startswith(f"templates/beta.glsl.j2:{template_line + 1}: error: ")  # the '}' after it
    assert "variant beta_wg16" in str(info.value)
    assert not list((tiny.out / "spv").iterdir())  # no .spv, no temp file


def _template_line(label_root: Path, src: tuple[str, int]) -> str:
    return (label_root / src[0]).read_text().split("\n")[src[1] - 1]


@pytest.mark.parametrize("template_dir", ["tiny", "real"])
def test_line_map_points_every_output_line_at_its_template_line(tmp_path: Path, template_dir: str) -> None:
    """Each output line matches its template line with `{{ ... }}` read as a wildcard."""
    if template_dir == "tiny":
        project = make_tiny(tmp_path).project
    else:
        project = Project(REAL_VARIANTS, REAL_TEMPLATES, tmp_path / "out")
    config, specs = load_specs(project)
    renderer = Renderer(project.template_dir)
    checked = 0
    for spec in specs:
        rendered = renderer.render(spec.template, spec.context(config), spec.name)
        lines = rendered.glsl.split("\n")
        assert len(lines) == len(rendered.line_map)
        for i, (line, src) in enumerate(zip(lines, rendered.line_map, strict=True), start=1):
            if src is None:  # e.g. the blank line a macro called from a multi-line {{ ... }} ends with
                assert not line.strip(), f"{spec.name}:{i}: {line!r} has no template line"
                continue
            tline = _template_line(project.template_dir.parent, src)
            # whitespace control (`-%}`) may strip a line's indentation, nothing else
            pattern = ".*".join(re.escape(part) for part in re.split(r"\{\{.*?\}\}", tline.strip()))
            assert re.fullmatch(pattern, line.strip()), f"{spec.name}:{i}: {line!r} came from {src}: {tline!r}"
            assert rendered.source_of(i) == src
            checked += 1
    assert checked > 20 * len(specs)


# --- show ----------------------------------------------------------------------------------------


def test_show_prints_clean_glsl_identical_to_the_built_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = make_tiny(tmp_path)
    args = ["--variants", str(tiny.variants_file), "--templates", str(tiny.template_dir), "--out", str(tiny.out)]
    assert main([*args, "show", "alpha_float16_wg8"]) == 0
    shown = capsys.readouterr().out
    assert "/*@@" not in shown and "@@*/" not in shown
    assert shown.startswith("#version 450\n#extension GL_EXT_shader_16bit_storage : require\n")
    assert "local_size_x = 8, local_size_y = 1, local_size_z = 1" in shown
    assert tiny.build().ok
    assert shown == (tiny.out / "glsl" / "alpha_float16_wg8.comp").read_text()


def test_show_every_real_variant_has_no_markers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--variants", str(REAL_VARIANTS), "--templates", str(REAL_TEMPLATES), "--out", str(tmp_path / "out")]
    assert main([*args, "list"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    _, specs = load_specs(Project(REAL_VARIANTS, REAL_TEMPLATES, tmp_path / "out"))
    assert names == [s.name for s in specs] and len(names) >= 24
    for name in names:
        assert main([*args, "show", name]) == 0
        shown = capsys.readouterr().out
        assert shown.startswith("#version 450\n")
        assert "/*@@" not in shown and "@@" not in shown, name
        assert "void main()" in shown


def test_show_unknown_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = make_tiny(tmp_path)
    args = ["--variants", str(tiny.variants_file), "--templates", str(tiny.template_dir), "--out", str(tiny.out)]
    assert main([*args, "show", "alpha_wg8"]) == 1
    err = capsys.readouterr().err
    assert err == "error: unknown variant 'alpha_wg8'; `python -m codegen list` shows them all\n"
    assert main([*args, "show", "float16"]) == 1
    assert capsys.readouterr().err == (
        "error: unknown variant 'float16'; similar: alpha_float16_wg8, alpha_float16_wg4x2\n"
    )


def test_show_reports_template_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "{{ wg.x }}", "{{ wg.w }}")
    args = ["--variants", str(tiny.variants_file), "--templates", str(tiny.template_dir), "--out", str(tiny.out)]
    assert main([*args, "show", "beta_wg16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: templates/beta.glsl.j2:3: undefined name: ")
    assert err.rstrip().endswith("(variant beta_wg16)")
    assert "Traceback" not in err


def test_variant_spec_context_exposes_axes_params_and_tables(tmp_path: Path) -> None:
    config, specs = load_specs(make_tiny(tmp_path).project)
    by_name: dict[str, VariantSpec] = {s.name: s for s in specs}
    ctx = by_name["alpha_float16_wg4x2"].context(config)
    assert ctx["wg"] == {"x": 4, "y": 2, "z": 1}
    assert ctx["dtype"] == "float16"
    assert ctx["dtype_info"]["glsl"] == "float16_t"
    assert ctx["variant_name"] == "alpha_float16_wg4x2"
    assert set(ctx["layouts"]) == {"4c"}
    assert by_name["beta_wg16"].context(config)["step"] == 3
