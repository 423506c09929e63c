"""The build: counts, failure isolation, incremental rebuilds, the manifest, --emit-cpp and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from codegen.build import BuildReport, Project, build, load_specs
from codegen.compile import spirv_capabilities
from codegen.cpp import write_cpp_header
from tests.codegen.codegen_fixtures import (
    ALPHA_NAMES,
    BETA_NAMES,
    REAL_TEMPLATES,
    REAL_VARIANTS,
    TINY_NAMES,
    TINY_YAML,
    Quiet,
    assert_consistent,
    assert_valid_manifest,
    make_tiny,
)

GXX = ("g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wno-pragma-once-outside-header", "-x", "c++")
SUMMARY_RE = re.compile(
    r"^shaderkit build: (\d+) variants, (\d+) compiled, (\d+) cached, (\d+) unchanged, (\d+) failed, \d+\.\d\d s$",
    re.M,
)


def counts(report: BuildReport) -> tuple[int, int, int, int]:
    return report.variants, report.compiled, report.cached, len(report.failures)


# --- the real variants.yaml: built once per session (tests/codegen/conftest.py) -----------------


def test_every_real_variant_builds_and_validates(real_build: tuple[Project, BuildReport]) -> None:
    project, report = real_build
    _, specs = load_specs(project)
    assert report.ok, report.failures
    assert counts(report) == (len(specs), len(specs), 0, 0)
    variants = assert_consistent(project.out_dir)
    assert list(variants) == sorted(s.name for s in specs)  # the manifest is written with sorted keys
    for name, entry in variants.items():
        spv = project.out_dir / entry["spv"]
        val = subprocess.run(["spirv-val", "--target-env", "vulkan1.2", str(spv)], capture_output=True, text=True)
        assert val.returncode == 0, f"{name}: {val.stderr}"
        assert spv.read_bytes()[:4] == b"\x03\x02\x23\x07"  # SPIR-V magic, little-endian
        assert (project.out_dir / "glsl" / f"{name}.comp").is_file()


def test_real_build_is_deterministic(real_build: tuple[Project, BuildReport], tmp_path: Path) -> None:
    project, _ = real_build
    again = Project(REAL_VARIANTS, REAL_TEMPLATES, tmp_path / "out")
    assert build(again, jobs=2, progress=Quiet).ok
    first = {p.name: p.read_bytes() for p in (project.out_dir / "spv").glob("*.spv")}
    second = {p.name: p.read_bytes() for p in (again.out_dir / "spv").glob("*.spv")}
    assert first.keys() == second.keys() and len(first) >= 24
    assert [n for n in first if first[n] != second[n]] == []
    doc1 = json.loads((project.out_dir / "manifest.json").read_text())
    doc2 = json.loads((again.out_dir / "manifest.json").read_text())
    assert doc1["variants"] == doc2["variants"]
    assert doc1 == doc2  # nothing in the manifest depends on the build dir
    assert (project.out_dir / "manifest.json").read_bytes() == (again.out_dir / "manifest.json").read_bytes()


def test_real_noop_rebuild_is_all_cached(
    real_build: tuple[Project, BuildReport], capsys: pytest.CaptureFixture[str]
) -> None:
    project, first = real_build
    manifest_before = (project.out_dir / "manifest.json").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (project.out_dir / "spv").iterdir()}
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        report = build(project, jobs=2, progress=Quiet)
        runs.append(time.perf_counter() - start)
        assert counts(report) == (first.variants, 0, first.variants, 0)
        assert report.compiled_names == []
    assert (project.out_dir / "manifest.json").read_bytes() == manifest_before
    assert {p.name: p.stat().st_mtime_ns for p in (project.out_dir / "spv").iterdir()} == mtimes
    per_variant_ms = min(runs) / first.variants * 1000
    with capsys.disabled():
        print(
            f"\n[no-op rebuild] {first.variants} variants cached in {min(runs) * 1000:.1f} ms "
            f"(best of 3, incl. loading variants.yaml and `glslc --version`): {per_variant_ms:.2f} ms per variant"
        )


def _entry(project: Project, family: str, **axes: Any) -> dict[str, Any]:
    """The first real variant of `family` whose axes include `axes` (names change as axes are added)."""
    variants = json.loads((project.out_dir / "manifest.json").read_text())["variants"]
    for name in sorted(variants):
        v = variants[name]
        if v["family"] == family and all(v["axes"].get(k) == want for k, want in axes.items()):
            return dict(v)
    raise AssertionError(f"no {family} variant with axes {axes}")


def test_real_manifest_matches_the_json_schema(real_build: tuple[Project, BuildReport]) -> None:
    project, _ = real_build
    doc = assert_valid_manifest(project.out_dir)
    assert doc["optimized"] is False


def test_real_manifest_gemm_fields(real_build: tuple[Project, BuildReport]) -> None:
    project, _ = real_build
    v = _entry(project, "q8ta_gemm", dot="dot", dtype="float16", tile={"w": 4, "c": 4}, wg={"x": 64, "y": 1, "z": 1})
    assert [(b["set"], b["binding"], b["kind"], b["access"], b["element"]) for b in v["bindings"]] == [
        (0, 0, "storage_buffer", "write", "int"),
        (0, 1, "storage_buffer", "read", "ivec4"),
        (0, 2, "storage_buffer", "read", "int"),
        (0, 3, "storage_buffer", "read", "int"),
        (0, 4, "storage_buffer", "read", "float16_t"),
        (0, 5, "storage_buffer", "read", "float16_t"),
    ]
    assert [b["name"] for b in v["bindings"]] == ["t_out", "t_a", "t_w", "t_wsum", "t_scale", "t_bias"]
    assert [b["element_size"] for b in v["bindings"]] == [4, 16, 4, 4, 2, 2]
    push = v["push_constants"]
    assert [(m["name"], m["offset"], m["type"]) for m in push["members"]] == [
        ("dims", 0, "ivec4"),
        ("dims2", 16, "ivec4"),
        ("scales", 32, "vec4"),
    ]
    assert push["size"] == 48
    assert (0, "ACTIVATION", 0) in [(s["id"], s["name"], s["default"]) for s in v["spec_constants"]]
    assert v["local_size"] == [64, 1, 1]
    assert v["entry_point"] == "main"
    assert {"shaderIntegerDotProduct", "storageBuffer16BitAccess", "shaderFloat16"} <= set(v["features"])
    assert v["family"] == "q8ta_gemm" and v["role"] == "gemm" and v["template"] == "q8ta_conv2d/q8ta_gemm.glsl.j2"
    assert v["spv"] == f"spv/{v['name']}.spv"
    assert _entry(project, "q8ta_gemm", dot="int", tile={"w": 8, "c": 8})["local_size"][0] in (64, 128)
    assert _entry(project, "q8ta_gemm", wg={"x": 128, "y": 1, "z": 1})["local_size"] == [128, 1, 1]


def test_real_manifest_im2col_fields(real_build: tuple[Project, BuildReport]) -> None:
    project, _ = real_build
    generic = _entry(project, "q8ta_im2col", input_layout="generic", matrix="upstream", work={"strip": 4})
    assert [(b["set"], b["binding"], b["kind"], b["access"], b["element"]) for b in generic["bindings"]] == [
        (0, 0, "storage_buffer", "write", "ivec4"),
        (0, 1, "storage_buffer", "read", "int"),
        (0, 2, "uniform_buffer", "read", "block"),
    ]
    assert generic["bindings"][2]["block_size"] == 104  # 3 uvec4[2] + uvec2, std140
    members = generic["push_constants"]["members"]
    assert [(m["name"], m["offset"]) for m in members] == [
        ("in_whcn", 0),
        ("kernel", 16),
        ("pad_dil", 32),
        ("out_geom", 48),
        ("units", 64),
        ("matrix", 80),
        ("flat_rows", 96),
        ("x_zp", 100),
        ("kh_parts", 104),
        ("kh_rows", 108),
        ("stream_iters", 112),
        ("stage_rows", 116),
        ("stage_width", 120),
    ]
    assert generic["push_constants"]["size"] == 124  # within the 128 bytes Vulkan guarantees
    spec = {s["name"]: (s["id"], s["default"]) for s in generic["spec_constants"]}
    assert spec["LAYOUT_HASH"] == (0, 0)
    assert {"KW_SPEC", "PATH", "SW_SPEC", "KH_SPEC", "CG_SPEC", "GPW_SPEC", "STREAM_FIXED", "STAGE_WORDS"} <= set(spec)
    assert generic["local_size"] == [generic["axes"]["wg"]["x"], 1, 1]  # the wg axis sets it
    assert generic["features"] == []
    special = _entry(project, "q8ta_im2col", input_layout="4w4c", matrix="native")
    assert special["template"] == "q8ta_conv2d/q8ta_im2col_4w4c.glsl.j2"  # the override picked the specialized template
    assert [b["binding"] for b in special["bindings"]] == [0, 1]
    assert special["bindings"][1]["element"] == "ivec4"  # 16-byte input blocks
    assert "LAYOUT_HASH" not in {s["name"] for s in special["spec_constants"]}
    assert special["local_size"] == [special["axes"]["wg"]["x"], 1, 1]


def test_real_manifest_features_follow_axes_and_capabilities(real_build: tuple[Project, BuildReport]) -> None:
    project, _ = real_build
    variants = json.loads((project.out_dir / "manifest.json").read_text())["variants"]
    gemms = {n: v for n, v in variants.items() if v["family"] == "q8ta_gemm"}
    assert len(gemms) >= 20
    for name, v in gemms.items():
        features = set(v["features"])
        caps = set(spirv_capabilities((project.out_dir / v["spv"]).read_bytes()))
        packed = v["axes"]["dot"] in ("dot", "sdot")
        assert ("shaderIntegerDotProduct" in features) == packed, name
        assert ({6018, 6019} <= caps) == packed, name  # DotProduct(Input4x8BitPacked)
        assert ("storageBuffer16BitAccess" in features) == (v["axes"]["dtype"] == "float16"), name
        assert (4433 in caps) == (v["axes"]["dtype"] == "float16"), name  # StorageBuffer16BitAccess
        assert v["features"] == sorted(v["features"])
    for name, v in variants.items():
        if v["family"] == "q8ta_im2col":
            assert v["features"] == [], name


_BINDING_RE = re.compile(
    r"layout\(set = (\d+), binding = (\d+), std(?:430|140)\) ?(readonly|writeonly|coherent)? ?"
    r"(buffer|uniform) \w+ \{([^}]*)\}"
)
_SPEC_RE = re.compile(r"layout\(constant_id = (\d+)\) const (\w+) (\w+) = ([-\w.]+);")
_LOCAL_RE = re.compile(r"layout\(local_size_x = (\d+), local_size_y = (\d+), local_size_z = (\d+)\) in;")
_LOCAL_ID_RE = re.compile(r"local_size_([xyz])_id = (\d+)")
_PUSH_RE = re.compile(r"layout\(push_constant\) uniform \w+ \{([^}]*)\}")
# std430 size and alignment of the scalar and vector types push constants use
_STD430 = {"int": (4, 4), "uint": (4, 4), "float": (4, 4), "bool": (4, 4)}
_STD430.update({f"{p}vec{n}": (4 * n, 8 if n == 2 else 16) for p in ("", "i", "u") for n in (2, 3, 4)})


def test_real_manifest_matches_the_glsl_declarations(real_build: tuple[Project, BuildReport]) -> None:
    """Bindings, spec constants, local size and push-constant offsets in the manifest (from SPIR-V
    reflection) agree with what the rendered GLSL declares, for every real variant."""
    project, _ = real_build
    variants = json.loads((project.out_dir / "manifest.json").read_text())["variants"]
    for name, v in variants.items():
        glsl = re.sub(r"//[^\n]*", "", (project.out_dir / "glsl" / f"{name}.comp").read_text())
        declared = []
        for set_, binding, qualifier, kind, body in _BINDING_RE.findall(glsl):
            runtime_array = re.fullmatch(r"\s*(\w+) \w+\[\];\s*", body)
            declared.append(
                {
                    "set": int(set_),
                    "binding": int(binding),
                    "kind": "storage_buffer" if kind == "buffer" else "uniform_buffer",
                    "access": {"readonly": "read", "writeonly": "write"}.get(
                        qualifier, "read_write" if kind == "buffer" else "read"
                    ),
                    "element": runtime_array[1] if runtime_array and kind == "buffer" else "block",
                }
            )
        got = [{k: b[k] for k in ("set", "binding", "kind", "access", "element")} for b in v["bindings"]]
        assert got == sorted(declared, key=lambda b: (b["set"], b["binding"])), name
        assert declared, name

        # an unsigned literal is written `0u`; reflection reports the number
        specs = {(int(i), t, n, d.removesuffix("u")) for i, t, n, d in _SPEC_RE.findall(glsl)}
        # a local_size_x_id constant has no declaration of its own in the GLSL (checked with the local size)
        got_specs = {(s["id"], s["type"], s["name"], str(s["default"]).lower()) for s in v["spec_constants"]
                     if s["id"] not in v["local_size_spec_ids"]}
        assert got_specs == specs, name

        local_ids = {a: int(i) for a, i in _LOCAL_ID_RE.findall(glsl)}
        if local_ids:  # sizes from spec constants: 0 in local_size, the id in local_size_spec_ids
            want_ids = [local_ids.get(axis) for axis in "xyz"]
            assert v["local_size_spec_ids"] == want_ids, name
            assert [s == 0 for s in v["local_size"]] == [i is not None for i in want_ids], name
        else:
            (local,) = _LOCAL_RE.findall(glsl)
            assert v["local_size"] == [int(x) for x in local], name

        pushes = _PUSH_RE.findall(glsl)
        if not pushes:
            assert v["push_constants"] is None, name
            continue
        members, offset = [], 0
        for type_, member in re.findall(r"(\w+) (\w+);", pushes[0]):
            size, align = _STD430[type_]
            offset = (offset + align - 1) // align * align
            members.append({"name": member, "offset": offset, "type": type_, "size": size})
            offset += size
        assert v["push_constants"] == {"size": offset, "members": members}, name


def test_real_emit_cpp_header_compiles(real_build: tuple[Project, BuildReport], tmp_path: Path) -> None:
    project, _ = real_build
    header = tmp_path / "shaderkit_real.hpp"
    write_cpp_header(project.out_dir, header)
    names = list(json.loads((project.out_dir / "manifest.json").read_text())["variants"])
    _check_header(header, names, tmp_path)


def _check_header(header: Path, names: list[str], tmp_path: Path) -> None:
    text = header.read_text()
    listed = re.findall(r'^  \{"([^"]+)", "', text, re.M)
    assert listed == sorted(names)
    main = tmp_path / "use_header.cpp"
    main.write_text(
        f'#include "{header}"\n'
        f"static_assert(sizeof(shaderkit::kVariants) / sizeof(shaderkit::kVariants[0]) == {len(names)});\n"
        "static_assert(shaderkit::kVariants[0].spirv[0] == 0x07230203u);\n"
        "int main() { return 0; }\n"
    )
    for source in (header, main):
        gxx = subprocess.run(
            [*GXX, str(source)],
            capture_output=True,
            text=True,
        )
        assert gxx.returncode == 0, gxx.stderr


# --- the tiny project ---------------------------------------------------------------------------


def test_first_build_counts_and_summary(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    report = tiny.build()
    assert counts(report) == (5, 5, 0, 0)
    assert report.ok
    assert report.compiled_names == sorted(TINY_NAMES)
    assert SUMMARY_RE.fullmatch(report.summary()).groups() == ("5", "5", "0", "0", "0")  # type: ignore[union-attr]
    assert list(assert_consistent(tiny.out)) == sorted(TINY_NAMES)
    assert sorted(p.name for p in (tiny.out / "glsl").iterdir()) == sorted(f"{n}.comp" for n in TINY_NAMES)


def test_tiny_manifest_fields(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    v = tiny.variants()
    f16 = v["alpha_float16_wg4x2"]
    assert [(b["set"], b["binding"], b["kind"], b["access"], b["element"]) for b in f16["bindings"]] == [
        (0, 0, "storage_buffer", "write", "float"),
        (0, 1, "storage_buffer", "read", "float16_t"),
    ]
    assert f16["push_constants"] == {
        "size": 8,
        "members": [
            {"name": "count", "offset": 0, "type": "int", "size": 4},
            {"name": "gain", "offset": 4, "type": "float", "size": 4},
        ],
    }
    assert f16["spec_constants"] == [{"id": 0, "name": "MODE", "type": "int", "default": 0}]
    assert f16["local_size"] == [4, 2, 1]
    assert f16["features"] == ["shaderFloat16", "storageBuffer16BitAccess"]
    assert v["alpha_float32_wg8"]["features"] == []
    beta = v["beta_wg16"]
    assert beta["bindings"][0]["access"] == "read_write"
    assert beta["push_constants"] is None and beta["spec_constants"] == []
    assert beta["params"] == {"step": 3}
    doc = tiny.manifest()
    assert doc["format"] == 1
    assert set(doc["layouts"]) == {"4c"} and set(doc["dtypes"]) == {"float32", "float16"}
    assert "glslc" in doc["compiler"] or "shaderc" in doc["compiler"]


def test_outputs_are_readable_like_plain_files(tmp_path: Path) -> None:
    """manifest.json and the glsl files used to be created 0600 (mkstemp), unlike the .spv files."""
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    header = tmp_path / "kernels.hpp"
    write_cpp_header(tiny.out, header)
    spv_mode = stat.S_IMODE((tiny.out / "spv" / "beta_wg16.spv").stat().st_mode)
    for path in (tiny.out / "manifest.json", tiny.out / "glsl" / "beta_wg16.comp", header):
        assert stat.S_IMODE(path.stat().st_mode) == spv_mode, path


def test_one_failing_variant_does_not_stop_the_others(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    planted = '{% if variant_name == "alpha_float16_wg8" %}oops{% endif %}\n'
    tiny.edit_template("alpha.glsl.j2", "void main() {", planted + "void main() {")
    report = tiny.build()
    assert counts(report) == (5, 4, 0, 1)
    assert list(report.failures) == ["alpha_float16_wg8"]
    assert "error" in report.failures["alpha_float16_wg8"]
    assert not report.ok
    variants = assert_consistent(tiny.out)
    assert sorted(variants) == sorted(set(TINY_NAMES) - {"alpha_float16_wg8"})
    # the failed variant's rendered GLSL stays for the person reading the error
    assert "oops" in (tiny.out / "glsl" / "alpha_float16_wg8.comp").read_text()

    # the CLI, on a clean dir: exit 1, the failure as `error:` lines, the others built
    shutil.rmtree(tiny.out)
    proc = tiny.cli("build", "-j", "2")
    assert proc.returncode == 1, proc.stderr
    assert "error: alpha_float16_wg8:\n  templates/alpha.glsl.j2:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert SUMMARY_RE.search(proc.stdout).groups() == ("5", "4", "0", "0", "1")  # type: ignore[union-attr]
    assert len(assert_consistent(tiny.out)) == 4


def test_noop_rebuild_compiles_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    manifest = (tiny.out / "manifest.json").read_bytes()
    start = time.perf_counter()
    report = tiny.build()
    seconds = time.perf_counter() - start
    assert counts(report) == (5, 0, 5, 0)
    assert (tiny.out / "manifest.json").read_bytes() == manifest
    with capsys.disabled():
        print(f"\n[no-op rebuild, tiny] {seconds / 5 * 1000:.2f} ms per variant")
    proc = tiny.cli("build")
    assert proc.returncode == 0
    assert SUMMARY_RE.search(proc.stdout).groups() == ("5", "0", "5", "0", "0")  # type: ignore[union-attr]
    assert proc.stderr == ""  # no progress lines when nothing is compiled


def test_editing_a_template_rebuilds_only_its_variants(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    before = tiny.spv_bytes()
    tiny.edit_template("beta.glsl.j2", "t_data[]; };", "t_data[]; };\n// a comment")
    report = tiny.build()
    assert report.compiled_names == list(BETA_NAMES)
    assert counts(report) == (5, 1, 4, 0)
    assert tiny.spv_bytes() == before  # a comment changes the input hash, not the SPIR-V

    tiny.edit_template("alpha.glsl.j2", "* p.gain;", "* p.gain * 0.5;")
    report = tiny.build()
    assert report.compiled_names == sorted(ALPHA_NAMES)
    after = tiny.spv_bytes()
    assert all(after[f"{n}.spv"] != before[f"{n}.spv"] for n in ALPHA_NAMES)
    assert after["beta_wg16.spv"] == before["beta_wg16.spv"]
    assert_consistent(tiny.out)


def test_editing_one_family_rebuilds_only_that_family(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    tiny.edit(tiny.variants_file, "params: {step: 3}", "params: {step: 5}")
    report = tiny.build()
    assert report.compiled_names == list(BETA_NAMES)
    assert tiny.variants()["beta_wg16"]["params"] == {"step": 5}
    assert "t_data[i] += 5u;" in (tiny.out / "glsl" / "beta_wg16.comp").read_text()

    # a new axis value: only the new variants compile
    tiny.edit(tiny.variants_file, "        - {x: 4, y: 2}\n", "        - {x: 4, y: 2}\n        - {x: 32}\n")
    report = tiny.build()
    assert report.compiled_names == ["alpha_float16_wg32", "alpha_float32_wg32"]
    assert counts(report) == (7, 2, 5, 0)

    # a family's description is not part of any output
    tiny.edit(tiny.variants_file, "    params: {step", "    description: the beta family\n    params: {step")
    assert counts(tiny.build()) == (7, 0, 7, 0)


def test_editing_an_include_rebuilds_its_dependents_only(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    tiny.edit_template("include/other.glsl.j2", "void bump", "// bumps one element\nvoid bump")
    assert tiny.build().compiled_names == list(BETA_NAMES)
    tiny.edit_template("include/util.glsl.j2", "}}(2);", "}}(3);")
    assert tiny.build().compiled_names == sorted(ALPHA_NAMES)
    # an include nobody uses changes nothing
    tiny.write_template("include/unused.glsl.j2", "{% macro nothing() %}{% endmacro %}\n")
    assert tiny.build().compiled == 0


def test_variant_switching_template_by_override(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.write_template("alpha_wide.glsl.j2", (tiny.template_dir / "alpha.glsl.j2").read_text() + "// wide\n")
    tiny.edit(
        tiny.variants_file,
        "        - {x: 4, y: 2}\n",
        "        - {x: 4, y: 2}\n"
        "    overrides:\n"
        "      - when: {wg: {x: 4, y: 2, z: 1}}\n"
        "        template: alpha_wide.glsl.j2\n",
    )
    assert tiny.build().ok
    assert {n: v["template"] for n, v in tiny.variants().items() if n.startswith("alpha")} == {
        "alpha_float32_wg8": "alpha.glsl.j2",
        "alpha_float32_wg4x2": "alpha_wide.glsl.j2",
        "alpha_float16_wg8": "alpha.glsl.j2",
        "alpha_float16_wg4x2": "alpha_wide.glsl.j2",
    }
    tiny.edit_template("alpha_wide.glsl.j2", "// wide", "// wider")
    assert tiny.build().compiled_names == ["alpha_float16_wg4x2", "alpha_float32_wg4x2"]


def test_stale_outputs_of_removed_variants_are_deleted(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    tiny.edit(tiny.variants_file, "        - {x: 4, y: 2}\n", "")
    report = tiny.build()
    assert counts(report) == (3, 0, 3, 0)
    kept = {"alpha_float32_wg8", "alpha_float16_wg8", "beta_wg16"}
    assert set(assert_consistent(tiny.out)) == kept
    assert {p.stem for p in (tiny.out / "glsl").iterdir()} == kept

    # a whole family removed
    text = tiny.variants_file.read_text()
    tiny.write_yaml(text[: text.index("  beta:")])
    report = tiny.build()
    assert counts(report) == (2, 0, 2, 0)
    assert set(assert_consistent(tiny.out)) == {"alpha_float32_wg8", "alpha_float16_wg8"}
    assert not (tiny.out / "glsl" / "beta_wg16.comp").exists()


def test_emit_cpp_header_compiles_and_lists_every_variant(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    header = tmp_path / "include" / "shaderkit_kernels.hpp"
    proc = tiny.cli("build", "-j", "2", "--emit-cpp", str(header))
    assert proc.returncode == 0, proc.stderr
    _check_header(header, list(TINY_NAMES), tmp_path)
    text = header.read_text()
    assert '"alpha_float16_wg4x2", "alpha"' in text
    assert '"shaderFloat16,storageBuffer16BitAccess"}' in text
    assert 'inline constexpr PushMember beta_wg16_push[] = {{"", 0, ""}};' in text  # no push constants
    assert 'inline constexpr PushMember alpha_float32_wg8_push[] = {{"count", 0, "int"}, {"gain", 4, "float"}};' in text


def test_emit_cpp_is_skipped_when_the_build_fails(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "{{ wg.x }}", "{{ wg.xx }}")
    header = tmp_path / "kernels.hpp"
    proc = tiny.cli("build", "--emit-cpp", str(header))
    assert proc.returncode == 1
    assert not header.exists()


def test_cli_list(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    proc = tiny.cli("list")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "alpha_float32_wg8\talpha\t-",
        "alpha_float32_wg4x2\talpha\t-",
        "alpha_float16_wg8\talpha\tshaderFloat16,storageBuffer16BitAccess",
        "alpha_float16_wg4x2\talpha\tshaderFloat16,storageBuffer16BitAccess",
        "beta_wg16\tbeta\t-",
    ]
    assert tiny.cli("list", "--family", "beta").stdout == "beta_wg16\tbeta\t-\n"
    assert not tiny.out.exists()  # listing builds nothing


@pytest.mark.parametrize(
    ("yaml_text", "expected_lines"),
    [
        (TINY_YAML.replace("    params: {step: 3}", "    params: {\n    x"), [r":\d+: malformed YAML: "]),
        ("- just\n- a list\n", [r": expected a mapping at the top level, got list$"]),
        (
            TINY_YAML.replace(
                "      dtype: [float32, float16]", "      dtype: [float32, float16]\n      colour: [dark red]"
            ).replace("{x: 16}", "{x: 0}"),
            [
                r":\d+: families\.alpha\.matrix\.colour\[0\]: 'dark red' is not a valid name: ",
                r":\d+: families\.beta\.matrix\.wg\[0\]\.x: Input should be greater than or equal to 1$",
            ],
        ),
        (
            TINY_YAML.replace("dtype: [float32, float16]", "dtype: [float32, bf16]"),
            [
                r":\d+: families\.alpha\.matrix\.dtype\[1\]: unknown value 'bf16', "
                r"expected one of \['float16', 'float32'\]"
            ],
        ),
    ],
    ids=["malformed", "not_mapping", "two_problems", "unknown_dtype"],
)
def test_cli_reports_bad_yaml_without_traceback(tmp_path: Path, yaml_text: str, expected_lines: list[str]) -> None:
    tiny = make_tiny(tmp_path, yaml_text)
    for command in (["build", "-j", "2"], ["list"], ["show", "beta_wg16"]):
        proc = tiny.cli(*command)
        assert proc.returncode == 1, proc
        assert proc.stdout == ""
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == len(expected_lines), proc.stderr
        for i, (line, pattern) in enumerate(zip(lines, expected_lines, strict=True)):
            prefix = "error: " if i == 0 else ""
            assert line.startswith(f"{prefix}{tiny.variants_file}"), line
            assert re.search(pattern, line), (line, pattern)
    assert not (tiny.out / "manifest.json").exists()


def test_cli_reports_missing_variants_file(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.variants_file.unlink()
    proc = tiny.cli("build")
    assert proc.returncode == 1
    assert proc.stderr == f"error: {tiny.variants_file}: cannot read: No such file or directory\n"
