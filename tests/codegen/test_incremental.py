"""Incremental builds by rendered GLSL (`unchanged`), and the no-op fast path's stamp: it answers only
when nothing at all changed, and any change to any input or output falls through to the full build."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegen import stamp
from codegen.build import BuildReport, Project, build, load_specs
from tests.codegen.codegen_fixtures import (
    ALPHA_NAMES,
    BETA_NAMES,
    PYTHON,
    REAL_TEMPLATES,
    REAL_VARIANTS,
    REPO,
    TINY_NAMES,
    TINY_YAML,
    Quiet,
    TinyProject,
    assert_consistent,
    make_tiny,
)

NEW_LAYOUT = "  4w:\n    description: a new one\n    packed_dim: W\n    block: 4\n    order: [N, C, H, W]\n"
# a family whose template reads the layouts table: the only one a layout edit can change
GAMMA = "  gamma:\n    template: gamma.glsl.j2\n    role: test\n    matrix:\n      wg: [{x: 4}]\n"
GAMMA_TEMPLATE = """\
#version 450
layout(local_size_x = {{ wg.x }}) in;
layout(set = 0, binding = 0, std430) buffer Data { uint t_data[]; };
void main() {
  t_data[gl_GlobalInvocationID.x] = {{ layouts | length }}u;
}
"""


def outcome(report: BuildReport) -> tuple[list[str], list[str], int]:
    return report.compiled_names, report.unchanged_names, report.cached


def test_layout_edits_recompile_nothing_no_template_reads(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    spv = tiny.spv_bytes()
    tiny.edit(tiny.variants_file, "    packed_dim: C\n", "    description: channels last\n    packed_dim: C\n")
    report = tiny.build()
    assert outcome(report) == ([], sorted(TINY_NAMES), 0)
    assert report.summary().startswith("shaderkit build: 5 variants, 0 compiled, 0 cached, 5 unchanged, 0 failed, ")
    assert tiny.manifest()["layouts"]["4c"]["description"] == "channels last"
    assert tiny.spv_bytes() == spv
    assert tiny.build().cached == 5  # the refreshed keys hit next time

    tiny.edit(tiny.variants_file, "dtypes:\n", NEW_LAYOUT + "dtypes:\n")
    assert outcome(tiny.build()) == ([], sorted(TINY_NAMES), 0)
    assert set(tiny.manifest()["layouts"]) == {"4c", "4w"}
    assert_consistent(tiny.out)


def test_layout_edits_recompile_the_variants_whose_glsl_reads_them(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path, TINY_YAML + GAMMA)
    tiny.write_template("gamma.glsl.j2", GAMMA_TEMPLATE)
    assert tiny.build().ok
    tiny.edit(tiny.variants_file, "dtypes:\n", NEW_LAYOUT + "dtypes:\n")
    assert outcome(tiny.build()) == (["gamma_wg4"], sorted(TINY_NAMES), 0)
    assert "= 2u;" in (tiny.out / "glsl" / "gamma_wg4.comp").read_text()
    tiny.edit(tiny.variants_file, "description: a new one", "description: still one layout more")
    assert outcome(tiny.build()) == ([], sorted([*TINY_NAMES, "gamma_wg4"]), 0)


def test_spec_only_edits_refresh_the_entry_without_compiling(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    before = tiny.variants()
    # a role and a param no template reads: the manifest changes, the GLSL does not
    tiny.edit(
        tiny.variants_file,
        "    template: alpha.glsl.j2\n    role: test",
        "    template: alpha.glsl.j2\n    role: alpha_role\n    params: {unused: 1}",
    )
    report = tiny.build()
    assert outcome(report) == ([], sorted(ALPHA_NAMES), 1)
    after = tiny.variants()
    for name in ALPHA_NAMES:
        assert (after[name]["role"], after[name]["params"]) == ("alpha_role", {"unused": 1})
        assert after[name]["input_hash"] != before[name]["input_hash"]
        same = ("sha256", "glsl_hash", "bindings", "push_constants", "spec_constants", "local_size", "features")
        assert {k: after[name][k] for k in same} == {k: before[name][k] for k in same}
    assert after["beta_wg16"] == before["beta_wg16"]

    # features of the family move into the entries too (no capability implies them)
    tiny.edit(tiny.variants_file, "    role: alpha_role\n", "    role: alpha_role\n    features: [shaderInt64]\n")
    assert outcome(tiny.build()) == ([], sorted(ALPHA_NAMES), 1)
    assert tiny.variants()["alpha_float32_wg8"]["features"] == ["shaderInt64"]


def test_editing_one_family_recompiles_only_that_family(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    tiny.edit(tiny.variants_file, "params: {step: 3}", "params: {step: 4}")
    assert outcome(tiny.build()) == (list(BETA_NAMES), [], len(ALPHA_NAMES))
    tiny.edit(tiny.variants_file, "params: {step: 4}", "params: {step: 3}")
    # back to the GLSL of two builds ago: compiled again (only the last build's SPIR-V is kept)
    assert outcome(tiny.build()) == (list(BETA_NAMES), [], len(ALPHA_NAMES))


def test_unchanged_glsl_with_a_damaged_spv_is_compiled(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    (tiny.out / "spv" / "beta_wg16.spv").write_bytes(b"\x03\x02\x23\x07 not what the manifest says")
    tiny.edit(tiny.variants_file, "    packed_dim: C\n", "    description: x\n    packed_dim: C\n")
    assert outcome(tiny.build()) == (["beta_wg16"], sorted(ALPHA_NAMES), 0)
    assert_consistent(tiny.out)


def test_compiler_flags_are_part_of_the_glsl_key(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    report = build(tiny.project, jobs=2, progress=Quiet, optimize=True)
    assert sorted(report.compiled_names) == sorted(TINY_NAMES)
    assert tiny.manifest()["optimized"] is True


@pytest.fixture
def real_out(real_build: tuple[Project, BuildReport]) -> tuple[Path, int]:
    """The session's build of the real variants (tests/codegen/conftest.py); tests change copies."""
    project, report = real_build
    assert report.ok, report.failures
    return project.out_dir, report.variants


def test_real_layout_edit_compiles_nothing(tmp_path: Path, real_out: tuple[Path, int]) -> None:
    """The real templates read no layout table: adding a layout reuses every SPIR-V."""
    out, count = real_out
    shutil.copytree(out, tmp_path / "out")
    variants = tmp_path / "variants.yaml"
    text = REAL_VARIANTS.read_text()
    variants.write_text(text)
    project = Project(variants, REAL_TEMPLATES, tmp_path / "out")
    count = build(project, jobs=2, progress=Quiet).variants  # up to date even if the repo moved on meanwhile
    variants.write_text(text.replace("layouts:\n", "layouts:\n" + NEW_LAYOUT, 1))
    report = build(project, jobs=2, progress=Quiet)
    assert (report.compiled, report.unchanged, report.cached) == (0, count, 0)
    assert build(project, jobs=2, progress=Quiet).cached == count


# --- the no-op fast path ------------------------------------------------------------------------

PROBE = (
    "import sys; from codegen.cli import main; rc = main(sys.argv[1:]); "
    "print('FULL' if 'pydantic' in sys.modules else 'FAST', file=sys.stderr); sys.exit(rc)"
)


def probe(
    tiny: TinyProject, *args: str, env: dict[str, str] | None = None
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run `build` through the CLI; 'FAST' when it answered without importing pydantic."""
    cmd = [PYTHON, "-c", PROBE, *tiny.cli_args("build", *args)[3:]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.strip().splitlines()[-1], proc


def test_noop_build_takes_the_fast_path_and_prints_the_same_summary(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    path, proc = probe(tiny)
    assert path == "FULL" and "5 compiled" in proc.stdout
    path, proc = probe(tiny)
    assert path == "FAST"
    assert proc.stdout.startswith("shaderkit build: 5 variants, 0 compiled, 5 cached, 0 unchanged, 0 failed, ")
    assert proc.stderr == "FAST\n"
    assert probe(tiny, "-O")[0] == "FULL"  # other flags: the stamp is for the last build only
    assert probe(tiny, "-O")[0] == "FAST"
    assert probe(tiny)[0] == "FULL"


def _edit_variants(t: TinyProject) -> None:
    t.edit(t.variants_file, "families:", "# a comment\nfamilies:")


def _touch_variants(t: TinyProject) -> None:
    t.variants_file.write_text(t.variants_file.read_text())  # same bytes: still up to date


def _add_template(t: TinyProject) -> None:
    t.write_template("include/unused.glsl.j2", "{# nobody imports this #}\n")


def _remove_template(t: TinyProject) -> None:
    t.write_template("include/unused.glsl.j2", "x")
    build(t.project, jobs=2, progress=Quiet)
    (t.template_dir / "include" / "unused.glsl.j2").unlink()


def _edit_include(t: TinyProject) -> None:
    t.edit_template("include/other.glsl.j2", "void bump", "// a comment\nvoid bump")


def _same_size_template_edit(t: TinyProject) -> None:
    path = t.template_dir / "beta.glsl.j2"
    st = path.stat()
    path.write_text(path.read_text().replace("buffer Data {", "buffer Dat2 {"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the bytes tell


def _flip_spv_byte(t: TinyProject) -> None:
    path = t.out / "spv" / "alpha_float32_wg8.spv"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _delete_spv(t: TinyProject) -> None:
    (t.out / "spv" / "beta_wg16.spv").unlink()


def _extra_spv(t: TinyProject) -> None:
    (t.out / "spv" / "stray.spv").write_bytes(b"x")


def _delete_glsl(t: TinyProject) -> None:
    (t.out / "glsl" / "beta_wg16.comp").unlink()


def _edit_manifest(t: TinyProject) -> None:
    (t.out / "manifest.json").write_text((t.out / "manifest.json").read_text() + " ")


def _leftover_tmp(t: TinyProject) -> None:
    (t.out / ".manifest.json.abc.tmp").write_text("half")


def _delete_stamp(t: TinyProject) -> None:
    (t.out / stamp.STAMP_NAME).unlink()


def _garbage_stamp(t: TinyProject) -> None:
    (t.out / stamp.STAMP_NAME).write_text("{not json")


def _other_stamp_version(t: TinyProject) -> None:
    doc = json.loads((t.out / stamp.STAMP_NAME).read_text())
    doc["version"] = 99
    (t.out / stamp.STAMP_NAME).write_text(json.dumps(doc))


CHANGES = {
    "variants_file": (_edit_variants, "FULL"),
    "variants_file_touched": (_touch_variants, "FAST"),
    "template_added": (_add_template, "FULL"),
    "template_removed": (_remove_template, "FULL"),
    "include_edited": (_edit_include, "FULL"),
    "template_same_size_and_mtime": (_same_size_template_edit, "FULL"),
    "spv_byte_flipped_same_mtime": (_flip_spv_byte, "FULL"),
    "spv_deleted": (_delete_spv, "FULL"),
    "stray_spv": (_extra_spv, "FULL"),
    "glsl_deleted": (_delete_glsl, "FULL"),
    "manifest_edited": (_edit_manifest, "FULL"),
    "temp_file_left": (_leftover_tmp, "FULL"),
    "stamp_deleted": (_delete_stamp, "FULL"),
    "stamp_garbage": (_garbage_stamp, "FULL"),
    "stamp_other_version": (_other_stamp_version, "FULL"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_falls_through_to_the_full_build(tmp_path: Path, change: str) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    apply, expected = CHANGES[change]
    apply(tiny)
    path, _ = probe(tiny)
    assert path == expected
    assert_consistent(tiny.out)
    assert probe(tiny)[0] == "FAST"  # and the full build left a fresh stamp


def test_a_changed_tool_binary_falls_through(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "glslc"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("glslc")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path, proc = probe(tiny, env=env)
    assert path == "FULL" and "5 cached" in proc.stdout  # same `glslc --version`: nothing to compile
    assert probe(tiny, env=env)[0] == "FAST"
    wrapper.write_text(wrapper.read_text() + "# another build of the compiler\n")
    assert probe(tiny, env=env)[0] == "FULL"


def test_codegen_sources_and_packages_are_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = make_tiny(tmp_path)
    copy = tmp_path / "codegen_copy"
    shutil.copytree(REPO / "codegen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(stamp, "_CODEGEN_DIR", str(copy))
    key = stamp.project_inputs(tiny.project, False)
    assert stamp.project_inputs(tiny.project, False) == key
    assert stamp.project_inputs(tiny.project, True) != key
    elsewhere = tmp_path / "elsewhere.yaml"
    shutil.copy(tiny.variants_file, elsewhere)  # same bytes, another file: another build's inputs
    assert stamp.input_fingerprint(str(elsewhere), str(tiny.template_dir), False) != key
    (copy / "manifest.py").write_text((copy / "manifest.py").read_text() + "\n# changed\n")
    changed = stamp.project_inputs(tiny.project, False)
    assert changed != key
    monkeypatch.setattr(stamp, "_PACKAGES", (*stamp._PACKAGES, "hypothesis"))
    assert stamp.project_inputs(tiny.project, False) != changed


def test_an_edit_during_a_build_leaves_a_stamp_that_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inputs are fingerprinted before they are read: an edit racing the build is seen next time."""
    tiny = make_tiny(tmp_path)
    real_load = load_specs

    def load_then_edit(project: Project):  # type: ignore[no-untyped-def]
        result = real_load(project)
        tiny.edit_template("beta.glsl.j2", "#version 450", "#version 450\n// edited while building")
        return result

    monkeypatch.setattr("codegen.build.load_specs", load_then_edit)
    assert tiny.build().ok
    monkeypatch.undo()
    path, proc = probe(tiny)
    assert path == "FULL" and "0 compiled, 5 cached" in proc.stdout  # the build had already used the edit
    assert "// edited while building" in (tiny.out / "glsl" / "beta_wg16.comp").read_text()
    assert probe(tiny)[0] == "FAST"


def test_a_failed_build_leaves_no_stamp(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    tiny.edit_template("beta.glsl.j2", "{{ wg.x }}", "{{ wg.q }}")
    assert not tiny.build().ok
    assert not (tiny.out / stamp.STAMP_NAME).exists()
    proc = tiny.cli("build")
    assert proc.returncode == 1 and "error: beta_wg16:" in proc.stderr


def _best_ms(cmd: list[str], runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def test_real_noop_cli_build_costs_under_1ms_per_variant(
    tmp_path: Path, real_out: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    out, count = real_out
    shutil.copytree(out, tmp_path / "out")
    cmd = [PYTHON, "-m", "codegen", "build", "--out", str(tmp_path / "out")]
    # the first run brings the copy up to date if variants.yaml or a template changed since the
    # session's build (someone editing while the tests run); from then on it is a no-op
    subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    printed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    count = int(printed.split(" variants,")[0].rsplit(" ", 1)[1])
    assert printed.startswith(f"shaderkit build: {count} variants, 0 compiled, {count} cached"), printed
    noop = _best_ms(cmd)
    bare = _best_ms([PYTHON, "-c", "pass"])
    per_variant = (noop - bare) / count
    with capsys.disabled():
        print(
            f"\n[no-op CLI build] {count} variants: {noop:.1f} ms, `python -c pass` {bare:.1f} ms: "
            f"{per_variant:.2f} ms per variant beyond start-up (best of 7; {sys.platform})"
        )
    assert per_variant <= 1.0
