"""Ctrl-C during `codegen build`: it stops promptly, keeps what finished, and the next build does the rest."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from codegen.build import BuildInterrupted, build
from tests.codegen.codegen_fixtures import (
    ALPHA_NAMES,
    REPO,
    Quiet,
    assert_consistent,
    assert_valid_manifest,
    make_tiny,
    many_yaml,
)

WIDTHS = 30  # 61 variants: seconds of compiling on 2 cores


@pytest.mark.parametrize("target", ["build", "group"])
def test_sigint_stops_promptly_and_keeps_what_finished(tmp_path: Path, target: str) -> None:
    """`build`: SIGINT to the build process only; `group`: to its process group, as a terminal's
    Ctrl-C does, so running glslc processes die of it too (which is not a compile failure)."""
    tiny = make_tiny(tmp_path, many_yaml(WIDTHS))
    total = 2 * WIDTHS + 1
    proc = subprocess.Popen(
        tiny.cli_args("build", "-j", "2"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    spv = tiny.out / "spv"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if spv.is_dir() and len(list(spv.glob("*.spv"))) >= 6:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    sent = time.monotonic()
    if target == "build":
        proc.send_signal(signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - sent
    print(f"exited {seconds:.2f} s after SIGINT; {out.strip()}")

    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert "(interrupted: " in out and "interrupted: the manifest keeps every variant that finished" in err
    assert " 0 failed" in out and "error:" not in err
    kept = assert_consistent(tiny.out)  # whole manifest, every entry's .spv matching, no stray files
    assert_valid_manifest(tiny.out)
    assert 6 <= len(kept) < total

    report = tiny.build()
    # promptly: far sooner than finishing the queue would have taken (which the old build did)
    assert seconds < min(2.0, report.seconds / 3), f"took {seconds:.2f} s to stop; the rest took {report.seconds:.2f} s"
    assert report.cached == len(kept)
    assert len(report.compiled_names) == total - len(kept)
    assert not set(report.compiled_names) & set(kept)
    assert len(assert_consistent(tiny.out)) == total


def test_interrupt_keeps_previous_good_entries_for_the_rest(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """In-process: Ctrl-C after a few jobs of a rebuild; unbuilt variants keep their previous entries."""
    tiny = make_tiny(tmp_path, many_yaml(10))
    assert tiny.build().ok
    before = tiny.variants()
    tiny.edit_template("alpha.glsl.j2", "* p.gain;", "* p.gain * 2.0;")

    class InterruptAfter(Quiet):
        def step(self, name: str, status: str) -> None:
            super().step(name, status)
            if self.done == 3:
                raise KeyboardInterrupt

    try:
        build(tiny.project, jobs=1, progress=InterruptAfter)
    except BuildInterrupted as exc:
        report = exc.report
    else:
        raise AssertionError("no BuildInterrupted")
    assert report.interrupted and not report.ok
    assert report.compiled >= 3  # a 4th may finish while the interrupt is handled; it is kept too
    after = assert_consistent(tiny.out)
    assert set(after) == set(before)  # the 17 not rebuilt keep their previous (good) entries
    changed = [n for n in after if after[n]["sha256"] != before[n]["sha256"]]
    assert sorted(changed) == report.compiled_names
    again = tiny.build()
    assert again.compiled == 20 - report.compiled and again.cached == 1 + report.compiled


def test_a_tool_killed_from_outside_is_a_failure_not_a_silent_gap(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "glslc"
    real = subprocess.run(["sh", "-c", "command -v glslc"], capture_output=True, text=True, check=True).stdout.strip()
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *beta_wg16*) kill -9 $$;; esac\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(tiny.cli_args("build", "-j", "2"), cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "error: beta_wg16:\n  glslc was stopped by signal 9 while building beta_wg16" in proc.stderr
    assert set(assert_consistent(tiny.out)) == set(ALPHA_NAMES)
