"""Hostile input to the build and the CLI: each a clean one-line `error: ...` with exit status 1 or 2
(never a traceback), or, for a damaged manifest, a rebuild over the damage."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from codegen.build import Project, load_specs
from codegen.errors import ConfigError
from codegen.manifest import FORMAT_VERSION
from tests.codegen.codegen_fixtures import (
    ALPHA_NAMES,
    TINY_NAMES,
    TINY_YAML,
    TinyProject,
    assert_consistent,
    assert_valid_manifest,
    line_of,
    make_tiny,
)


def one_line_error(proc, status: int) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return str(lines[0])


def test_out_is_an_existing_file(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.out.write_text("not a directory")
    line = one_line_error(tiny.cli("build"), 1)
    assert line == f"error: {tiny.out}: the build directory is not a directory; remove it or pick another --out"
    assert tiny.out.read_text() == "not a directory"


def test_out_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    tiny = make_tiny(tmp_path)
    proc = tiny.cli("--out", str(blocker / "sub" / "build"), "build")
    line = one_line_error(proc, 1)
    assert line == f"error: {blocker / 'sub' / 'build'}: cannot create the build directory: Not a directory"


@pytest.mark.parametrize("sub", ["spv", "glsl"])
def test_out_subfolder_is_a_file(tmp_path: Path, sub: str) -> None:
    tiny = make_tiny(tmp_path)
    tiny.out.mkdir()
    (tiny.out / sub).write_text("x")
    line = one_line_error(tiny.cli("build"), 1)
    assert line.startswith(f"error: {tiny.out}: cannot create the build directory: "), line


def test_read_only_build_dir(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    tiny.edit_template("beta.glsl.j2", "#version 450", "#version 450\n// changed")
    for folder in (tiny.out, tiny.out / "spv", tiny.out / "glsl"):
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(tiny.out, os.W_OK):
            pytest.skip("permissions do not apply to this user (root); test_out_under_a_file covers the failure")
        line = one_line_error(tiny.cli("build"), 1)
        assert line == f"error: {tiny.out}: the build directory is not writable"
    finally:
        for folder in (tiny.out, tiny.out / "spv", tiny.out / "glsl"):
            folder.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("jobs", ["-1", "0", "two", "1.5"])
def test_bad_jobs_is_a_usage_error(tmp_path: Path, jobs: str) -> None:
    tiny = make_tiny(tmp_path)
    line = one_line_error(tiny.cli("build", "-j", jobs), 2)
    assert line == (
        f"error: argument -j/--jobs: expected a positive number of parallel compiles, got {jobs!r} "
        "(see `python -m codegen build --help`)"
    )
    assert not tiny.out.exists()


def test_unknown_command_and_option_are_usage_errors(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert one_line_error(tiny.cli("bild"), 2).startswith("error: argument command: invalid choice: 'bild'")
    assert "unrecognized arguments: --fast" in one_line_error(tiny.cli("build", "--fast"), 2)


def test_options_after_the_command(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    other = tmp_path / "other"
    proc = tiny.cli("build", "-j", "2", "--out", str(other))
    assert proc.returncode == 0, proc.stderr
    assert set(assert_consistent(other)) == set(TINY_NAMES)
    assert not tiny.out.exists()


def test_manifest_is_a_directory(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    (tiny.out / "manifest.json").mkdir(parents=True)
    line = one_line_error(tiny.cli("build"), 1)
    assert line == f"error: {tiny.out / 'manifest.json'}: is not a file (a directory?); remove it, the build writes it"
    assert not list((tiny.out / "spv").glob("*.spv"))  # it stopped before compiling anything


def _damage(doc: dict, how: str) -> dict:  # type: ignore[type-arg]
    variants = doc["variants"]
    if how == "entry_is_a_string":
        variants["beta_wg16"] = "beta_wg16"
    elif how == "entry_lacks_spv":
        del variants["beta_wg16"]["spv"]
    elif how == "entry_lacks_sha256":
        del variants["beta_wg16"]["sha256"]
    elif how == "bindings_not_a_list":
        variants["beta_wg16"]["bindings"] = {"0": 1}
    elif how == "spv_points_outside":
        variants["beta_wg16"]["spv"] = "../../../etc/passwd"
    elif how == "name_mismatch":
        variants["beta_wg16"]["name"] = "alpha_float32_wg8"
    elif how == "unsafe_key":
        variants["../beta"] = variants["beta_wg16"]
    elif how == "variants_a_list":
        doc["variants"] = list(variants.values())
    elif how == "variants_null":
        doc["variants"] = None
    elif how == "top_a_list":
        return [doc]  # type: ignore[return-value]
    return doc


DAMAGE = [
    "entry_is_a_string",
    "entry_lacks_spv",
    "entry_lacks_sha256",
    "bindings_not_a_list",
    "spv_points_outside",
    "name_mismatch",
    "unsafe_key",
    "variants_a_list",
    "variants_null",
    "top_a_list",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_malformed_manifest_entries_are_rebuilt_over(tmp_path: Path, how: str) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    reference = tiny.variants()
    manifest = tiny.out / "manifest.json"
    manifest.write_text(json.dumps(_damage(json.loads(manifest.read_text()), how)))
    proc = tiny.cli("build", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    whole_file = how in ("variants_a_list", "variants_null", "top_a_list")
    expected_compiled = len(TINY_NAMES) if whole_file else 0 if how == "unsafe_key" else 1
    assert f"{expected_compiled} compiled" in proc.stdout, proc.stdout
    assert tiny.variants() == reference
    assert_consistent(tiny.out)
    assert_valid_manifest(tiny.out)


def test_manifest_of_another_format_is_ignored(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    manifest = tiny.out / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["format"] = FORMAT_VERSION + 1
    manifest.write_text(json.dumps(doc))
    assert tiny.build().compiled == len(TINY_NAMES)


DOT_BASE = TINY_YAML.replace(
    "      dtype: [float32, float16]\n", "      dtype: [float32, float16]\n      dot: [int, sdot]\n"
).replace("  int: {description: plain integer math}\n", "  int: {description: plain integer math}\n  sdot: {}\n")


@pytest.mark.parametrize(
    ("addition", "key_path", "shown", "values"),
    [
        ("    exclude: [{dot: sdott}]\n", "families.alpha.exclude[0].dot", "'sdott'", "['int', 'sdot']"),
        (
            "    overrides:\n      - when: {dtype: float61}\n        params: {x: 1}\n",
            "families.alpha.overrides[0].when.dtype",
            "'float61'",
            "['float32', 'float16']",
        ),
        (
            "    exclude: [{wg: {x: 8, y: 3}}]\n",
            "families.alpha.exclude[0].wg",
            "{'x': 8, 'y': 3}",
            "[{'x': 8, 'y': 1, 'z': 1}, {'x': 4, 'y': 2, 'z': 1}]",
        ),
        ("    exclude: [{wg: {w: 8}}]\n", "families.alpha.exclude[0].wg", "{'w': 8}", "[{'x': 8, 'y': 1, 'z': 1}"),
        ("    exclude: [{dot: [int, sdot]}]\n", "families.alpha.exclude[0].dot", "['int', 'sdot']", "['int', 'sdot']"),
    ],
    ids=["exclude_typo", "when_typo", "partial_mapping", "mapping_key_typo", "list_value"],
)
def test_pattern_value_matching_no_axis_value(
    tmp_path: Path, addition: str, key_path: str, shown: str, values: str
) -> None:
    anchor = "        - {x: 4, y: 2}\n"
    text = DOT_BASE.replace(anchor, anchor + addition)
    tiny = make_tiny(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_specs(tiny.project)
    message = str(info.value)
    line = line_of(text, addition.strip().splitlines()[-1] if "when" not in addition else "when:")
    axis = key_path.rsplit(".", 1)[1]
    assert message.startswith(
        f"{tiny.variants_file}:{line}: {key_path}: {shown} matches no value of axis {axis!r}; its values are {values}"
    ), message
    line = one_line_error(tiny.cli("build"), 1)
    assert line == f"error: {message}"


def test_list_unknown_family(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    line = one_line_error(tiny.cli("list", "--family", "nope"), 2)
    assert line == "error: unknown family 'nope'; known families: alpha, beta"


def test_missing_template_dir_fails_each_variant_cleanly(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny = TinyProject(tmp_path, Project(tiny.variants_file, tmp_path / "no_templates", tiny.out))
    proc = tiny.cli("build")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("template not found") == len(TINY_NAMES)
    assert all(f"error: {n}:" in proc.stderr for n in ALPHA_NAMES)


def test_variants_file_is_a_directory_or_binary(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.variants_file.unlink()
    tiny.variants_file.mkdir()
    assert one_line_error(tiny.cli("build"), 1).startswith(f"error: {tiny.variants_file}: cannot read: ")
    tiny.variants_file.rmdir()
    tiny.variants_file.write_bytes(b"\xff\xfe\x00garbage")
    assert one_line_error(tiny.cli("list"), 1).startswith(f"error: {tiny.variants_file}: cannot read: not UTF-8 text")
