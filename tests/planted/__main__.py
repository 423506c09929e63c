"""`python -m tests.planted [--only NAME ...]`: plant each bug in a copy, build it, run the CI-profile
property tests of the variants it touches, print the table (docs/testing.md keeps one).

Per bug: templates/ and variants.yaml are copied to a temporary root and edited there; the copy is
built with codegen (the repository's build/ is copied in as a cache, so only the variants whose
GLSL the bug changes compile: those are the *touched* variants); then the property tests of the
touched variants (narrowed by the bug's `tests` / `per_variant`, see bugs.py) run with
HYPOTHESIS_PROFILE=ci against the copy's build ($SHADERKIT_BUILD), and the ledger they leave
(tests/coverage.py) says which failed and after how many examples.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.differential import variant_of
from tests.planted.bugs import BUGS, Bug, by_name

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


@dataclass
class Row:
    bug: Bug
    caught: str  # "build", "tests", "NO", "does not apply", "build broke"
    detail: str = ""
    failed: int = 0
    ran: int = 0
    selected: int = 0
    first: int | None = None  # fewest examples any failing (level, variant) ran before failing
    seconds: float = 0.0

    def markdown(self) -> str:
        b = self.bug
        if self.caught == "tests":
            result = f"caught: {self.failed} of {self.ran} tests run fail ({self.selected} selected)"
            first = str(self.first) if self.first is not None else "?"
        elif self.caught == "build":
            result, first = "caught by the build", "0 (build)"
        else:
            result, first = f"**{self.caught}**", "-"
        return f"| `{b.name}` | {b.klass} | {b.where} | {result} | {first} | {self.detail} |"


def _copy_root(root: Path, base_build: Path) -> None:
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copy(REPO / "variants.yaml", root / "variants.yaml")
    shutil.copytree(base_build, root / "build", ignore=shutil.ignore_patterns(".lock", "*.tmp", "opt"))


def _apply(bug: Bug, root: Path) -> str | None:
    """Edit the copy; the problem when an edit's text is not there exactly once."""
    for edit in bug.edits:
        path = root / edit.path
        text = path.read_text()
        if text.count(edit.old) != 1:
            return f"{edit.path} holds {text.count(edit.old)} copies of the text the bug replaces"
        path.write_text(text.replace(edit.old, edit.new))
    return None


def _build(root: Path, jobs: int | None) -> tuple[bool, list[str], str]:
    """(ok, touched variants, error text) of building the copy."""
    from codegen.build import Project, build  # codegen only: the tool runs under the repo's venv
    from codegen.errors import CodegenError

    try:
        report = build(Project(root / "variants.yaml", root / "templates", root / "build"), jobs=jobs)
    except CodegenError as exc:
        return False, [], str(exc)
    # compiled: the GLSL differs from the cached build's (the bug reached it); unchanged: rendered the same
    touched = sorted(set(report.compiled_names) | set(report.failures))
    errors = "\n".join(f"{name}: {msg}" for name, msg in sorted(report.failures.items()))
    return report.ok, touched, errors


def _collect(build: Path) -> list[str]:
    env = dict(os.environ, SHADERKIT_BUILD=str(build), HYPOTHESIS_PROFILE="ci")
    proc = subprocess.run([PY, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/test_properties.py"], capture_output=True, text=True, cwd=REPO, env=env)
    return [line for line in proc.stdout.splitlines() if "::test_" in line and "[" in line]


def _select(bug: Bug, ids: list[str], touched: list[str]) -> list[str]:
    chosen = [i for i in ids if variant_of(i) in touched and (not bug.tests or any(t in i for t in bug.tests))]
    if not bug.per_variant:
        return chosen
    kept: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for i in chosen:
        key = (variant_of(i), i.rsplit("[", 1)[-1].split("-", 1)[0])  # (variant, family.level)
        if kept[key] < bug.per_variant:
            kept[key] += 1
            out.append(i)
    return out


def _layout_of(nodeid: str) -> str | None:
    """The layout of a cell test id `...-<variant>-<layout>-<class>]`, else None."""
    parts = nodeid.rsplit("[", 1)[-1].rstrip("]").split("-")
    return parts[2] if len(parts) == 4 else None


def run_bug(bug: Bug, work: Path, base_build: Path, ids: list[str], jobs: int | None, maxfail: int) -> Row:
    start = time.monotonic()
    root = work / bug.name
    _copy_root(root, base_build)
    problem = _apply(bug, root)
    if problem:
        return Row(bug, "does not apply", problem)
    ok, touched, errors = _build(root, jobs)
    if bug.build_fails_with is not None:
        caught = not ok and bug.build_fails_with in errors
        lines = errors.splitlines() or ["the build succeeded"]
        line = next((ln for ln in lines if bug.build_fails_with in ln), lines[0])
        return Row(bug, "build" if caught else "NO", line.split(": golden example")[0],
                   seconds=time.monotonic() - start)
    if not ok:
        return Row(bug, "build broke", errors.splitlines()[0] if errors else "", seconds=time.monotonic() - start)
    selected = _select(bug, ids, touched)
    if not selected:
        return Row(bug, "NO", f"no property test selected ({len(touched)} variants touched)")
    (root / "ids.txt").write_text("\n".join(selected) + "\n")
    ledger = root / "ledger.json"
    env = dict(os.environ, SHADERKIT_BUILD=str(root / "build"), HYPOTHESIS_PROFILE="ci", SHADERKIT_LEDGER=str(ledger))
    limit = bug.maxfail if bug.maxfail is not None else maxfail
    subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--maxfail={limit}", f"@{root / 'ids.txt'}"],
                   cwd=REPO, env=env, capture_output=True, text=True)
    doc = json.loads(ledger.read_text()) if ledger.exists() else {}
    outcomes = doc.get("outcomes", {})
    failed = sum(1 for o, _ in outcomes.values() if o == "failed")
    firsts = [n for _, _, n in doc.get("first_failure", [])]
    first_fail = next((m for o, m in outcomes.values() if o == "failed"), "")
    detail = (bug.notes + "; " if bug.notes else "") + first_fail.split(": ", 1)[-1][:110].replace("|", "/")
    layouts = {lay for i, (o, _) in outcomes.items() if o == "failed" and (lay := _layout_of(i))}
    if layouts:
        passed = {lay for i, (o, _) in outcomes.items() if o == "passed" and (lay := _layout_of(i))}
        detail = f"failing cells' layouts: {sorted(layouts)} (passing: {sorted(passed)}); " + detail
    return Row(bug, "tests" if failed else "NO", detail, failed, len(outcomes), len(selected),
               min(firsts) if firsts else None, time.monotonic() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.planted", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", default=None, help="bug names (default: all)")
    p.add_argument("--work", type=Path, default=None, help="keep the copies here (default: a temp dir, removed)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel compiles")
    p.add_argument("--maxfail", type=int, default=5, help="stop a bug's tests after this many failures")
    args = p.parse_args(argv)
    bugs = by_name(args.only) if args.only else list(BUGS)
    work = args.work or Path(tempfile.mkdtemp(prefix="shaderkit-planted-"))
    try:
        base = work / "_base"  # the unplanted copy, built once: every bug's cache and test list
        _copy_root(base, REPO / "build")
        ok, _, errors = _build(base, args.jobs)
        if not ok:
            print(f"error: the unplanted templates do not build: {errors}", file=sys.stderr)
            return 1
        ids = _collect(base / "build")
        print("| bug | class | planted | result (CI profile) | examples to first failure | first failure / note |")
        print("| --- | --- | --- | --- | --- | --- |")
        rows = []
        for bug in bugs:
            row = run_bug(bug, work, base / "build", ids, args.jobs, args.maxfail)
            rows.append(row)
            print(row.markdown(), flush=True)
        print(f"{sum(r.caught in ('tests', 'build') for r in rows)} of {len(rows)} caught; "
              f"{sum(r.seconds for r in rows):.0f} s", file=sys.stderr)
        return 0 if all(r.caught in ("tests", "build") for r in rows) else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
