"""Fault tolerance of the build dir: killed builds, concurrent builds, corrupted or missing outputs,
failed rebuilds. After any of them the next build must leave the same bytes as a clean build."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from codegen.manifest import FORMAT_VERSION
from tests.codegen.codegen_fixtures import (
    ALPHA_NAMES,
    BETA_NAMES,
    REPO,
    TINY_NAMES,
    TinyProject,
    assert_consistent,
    make_tiny,
    sha256_file,
)

SUMMARY_RE = re.compile(r"shaderkit build: (\d+) variants, (\d+) compiled, (\d+) cached, (\d+) unchanged, (\d+) failed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, dict]]:
    """SPIR-V bytes and manifest entries of one uninterrupted clean build of the tiny project."""
    tiny = make_tiny(tmp_path_factory.mktemp("reference"))
    assert tiny.build().ok
    return tiny.spv_bytes(), tiny.variants()


def assert_matches_reference(tiny: TinyProject, reference: tuple[dict[str, bytes], dict[str, dict]]) -> None:
    spv, variants = reference
    assert_consistent(tiny.out)
    assert tiny.spv_bytes() == spv
    assert tiny.variants() == variants


def _popen_build(tiny: TinyProject) -> subprocess.Popen[str]:
    # a session of its own, so the kill reaches glslc children too and nothing is left running
    return subprocess.Popen(
        tiny.cli_args("build", "-j", "2"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_at_a_random_moment_then_rebuild(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    seed = int(os.environ.get("SHADERKIT_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"SHADERKIT_KILL_SEED={seed}")  # shown on failure, to replay the same delays

    # how long the build itself takes here, to spread the kills over it
    timing = make_tiny(tmp_path / "timing")
    build_seconds = timing.build().seconds

    outcomes = []
    for attempt in range(6):
        tiny = make_tiny(tmp_path / f"try{attempt}")
        if attempt % 2:
            # an older build of different code is in the dir: its manifest no longer matches the sources
            tiny.edit_template("alpha.glsl.j2", "* p.gain;", "* p.gain * 3.0;")
            tiny.edit_template("include/other.glsl.j2", "{{ step }}u", "{{ step }}u + 1u")
            assert tiny.build().ok
            tiny.edit_template("alpha.glsl.j2", "* p.gain * 3.0;", "* p.gain;")
            tiny.edit_template("include/other.glsl.j2", "{{ step }}u + 1u", "{{ step }}u")
            shutil.rmtree(tiny.out / "glsl")  # its re-creation tells that the build has started
        proc = _popen_build(tiny)
        if attempt == 0:
            delay = rng.uniform(0.0, 0.5)  # anywhere, interpreter start-up included
        else:
            deadline = time.monotonic() + 60
            while not (tiny.out / "glsl").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            delay = rng.uniform(0.0, build_seconds * 1.2)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        manifest = tiny.out / "manifest.json"
        spv_count = len(list((tiny.out / "spv").glob("*.spv"))) if (tiny.out / "spv").exists() else 0
        outcomes.append(
            f"+{delay:.3f}s {'killed' if killed else 'finished'} ({spv_count} spv, "
            f"{'manifest' if manifest.exists() else 'no manifest'})"
        )
        if manifest.exists():  # whatever the moment, the manifest is whole (written by rename)
            json.loads(manifest.read_text())

        report = tiny.build()
        assert report.ok, (outcomes, report.failures)
        assert_matches_reference(tiny, reference)
        assert tiny.build().compiled == 0  # a second rebuild has nothing left to do
    print("kill outcomes:", outcomes)


def test_two_builds_at_once_both_succeed(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    tiny = make_tiny(tmp_path)
    procs = [_popen_build(tiny) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    summaries = [SUMMARY_RE.search(out) for out, _ in results]
    assert all(summaries), results
    # the lock serializes them: every variant is compiled exactly once, the other build finds it cached
    assert sum(int(m[2]) for m in summaries if m) == len(TINY_NAMES), results
    assert sorted(int(m[3]) for m in summaries if m) == [0, len(TINY_NAMES)], results
    assert_matches_reference(tiny, reference)


def test_build_in_process_while_a_cli_build_holds_the_lock(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    tiny = make_tiny(tmp_path)
    proc = _popen_build(tiny)
    report = tiny.build()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert report.ok
    assert report.compiled + int(SUMMARY_RE.search(out)[2]) == len(TINY_NAMES)  # type: ignore[index]
    assert_matches_reference(tiny, reference)


def test_corrupted_truncated_or_deleted_spv_is_rebuilt(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    spv = tiny.out / "spv"
    data = (spv / "alpha_float32_wg8.spv").read_bytes()
    (spv / "alpha_float32_wg8.spv").write_bytes(data[: len(data) // 2])  # truncated
    data = bytearray((spv / "alpha_float16_wg4x2.spv").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    (spv / "alpha_float16_wg4x2.spv").write_bytes(bytes(data))
    (spv / "beta_wg16.spv").write_bytes(b"")  # empty
    report = tiny.build()
    assert report.compiled_names == ["alpha_float16_wg4x2", "alpha_float32_wg8", "beta_wg16"]
    assert report.cached == 2
    assert_matches_reference(tiny, reference)

    (spv / "alpha_float16_wg8.spv").unlink()
    assert tiny.build().compiled_names == ["alpha_float16_wg8"]
    assert_matches_reference(tiny, reference)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated", "other_format", "no_variants"])
def test_missing_or_bad_manifest_means_full_rebuild(tmp_path: Path, reference: tuple[dict, dict], damage: str) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    manifest = tiny.out / "manifest.json"
    if damage == "deleted":
        manifest.unlink()
    elif damage == "garbage":
        manifest.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        manifest.write_bytes(manifest.read_bytes()[:100])
    elif damage == "other_format":
        doc = json.loads(manifest.read_text())
        doc["format"] = FORMAT_VERSION + 1
        manifest.write_text(json.dumps(doc))
    else:
        manifest.write_text(json.dumps({"format": FORMAT_VERSION, "variants": ["not", "a", "mapping"]}))
    report = tiny.build()
    assert (report.compiled, report.cached) == (len(TINY_NAMES), 0)
    assert_matches_reference(tiny, reference)


def test_temp_files_of_killed_builds_are_cleaned_up(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    leftovers = [
        tiny.out / "spv" / ".alpha_float32_wg8.4242.140000.tmp",
        tiny.out / "glsl" / ".beta_wg16.comp.abc123.tmp",
        tiny.out / ".manifest.json.xyz789.tmp",
        tiny.out / "spv" / "removed_variant.spv",
        tiny.out / "glsl" / "removed_variant.comp",
    ]
    for path in leftovers:
        path.write_bytes(b"half written")
    assert tiny.build().compiled == 0
    assert [p for p in leftovers if p.exists()] == []
    assert_matches_reference(tiny, reference)


def _assert_previous_kept(tiny: TinyProject, before_spv: dict[str, bytes], before: dict[str, dict], names) -> None:
    after = tiny.variants()
    for name in names:
        assert after[name] == before[name], name
        assert tiny.spv_bytes()[f"{name}.spv"] == before_spv[f"{name}.spv"], name
        assert sha256_file(tiny.out / after[name]["spv"]) == after[name]["sha256"], name
    assert_consistent(tiny.out)


@pytest.mark.parametrize(
    ("template", "old", "new", "names"),
    [
        ("beta.glsl.j2", "bump(gl_GlobalInvocationID.x);", "bump(gl_GlobalInvocationID.x) +;", BETA_NAMES),
        ("beta.glsl.j2", "{{ wg.x }}", "{{ wg.q }}", BETA_NAMES),  # render error
        ("include/util.glsl.j2", "{% macro scale_fn(type) -%}", "{% macro scale_fn(type -%}", ALPHA_NAMES),  # syntax
        # a push constant the reflection step rejects (after glslc and spirv-val passed): this one used to
        # replace the last good .spv before failing, leaving neither it nor its manifest entry
        ("alpha.glsl.j2", "  float gain;\n", "  float gain;\n  mat4 m;\n", ALPHA_NAMES),
    ],
    ids=["glsl_error", "undefined_name", "jinja_syntax", "reflection_reject"],
)
def test_failed_build_keeps_previous_good_outputs(
    tmp_path: Path, reference: tuple[dict, dict], template: str, old: str, new: str, names: tuple[str, ...]
) -> None:
    tiny = make_tiny(tmp_path)
    assert tiny.build().ok
    before_spv, before = tiny.spv_bytes(), tiny.variants()
    tiny.edit_template(template, old, new)

    report = tiny.build()
    assert set(report.failures) == set(names)
    assert report.compiled == 0 and report.cached == len(TINY_NAMES) - len(names)
    _assert_previous_kept(tiny, before_spv, before, names)

    proc = tiny.cli("build", "-j", "2")  # the CLI agrees: exit 1, the same outputs kept
    assert proc.returncode == 1
    assert all(f"error: {n}:" in proc.stderr for n in names), proc.stderr
    assert "Traceback" not in proc.stderr
    _assert_previous_kept(tiny, before_spv, before, names)

    tiny.edit_template(template, new, old)  # fixed again: nothing to compile, the kept entries are current
    report = tiny.build()
    assert (report.compiled, report.cached) == (0, len(TINY_NAMES))
    assert_matches_reference(tiny, reference)


def test_failed_first_build_of_a_variant_leaves_no_entry(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    tiny.edit_template("beta.glsl.j2", "bump(gl_GlobalInvocationID.x);", "bump(gl_GlobalInvocationID.x) +;")
    report = tiny.build()
    assert list(report.failures) == ["beta_wg16"]
    variants = assert_consistent(tiny.out)
    assert "beta_wg16" not in variants and len(variants) == len(ALPHA_NAMES)
    assert not (tiny.out / "spv" / "beta_wg16.spv").exists()
