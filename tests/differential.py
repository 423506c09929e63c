"""The compiler-optimizer differential of `make fuzz`: compare the property-test runs on the plain
build and on the `-O` build, and report every difference as a finding naming the variant.

    python -m tests.differential PLAIN_LEDGER OPT_LEDGER --plain-manifest build/manifest.json \\
        --opt-manifest build/opt/manifest.json

The ledgers are the JSON dumps the test run writes where $SHADERKIT_LEDGER says (tests/coverage.py).
Findings: a variant the plain build has and the -O build lacks (its -O compile failed or changed the
interface: `python -m codegen build -O` printed why); a test that passes on one build and fails or
is missing on the other. Both runs draw the same cases when given the same --hypothesis-seed.
Exit status 1 when there is a finding.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Finding:
    variant: str
    what: str

    def line(self) -> str:
        return f"FINDING {self.variant}: {self.what}"


def variant_of(nodeid: str) -> str:
    """The variant of a property test id `...[family.level-VARIANT(-LAYOUT)-CLASS]`."""
    params = nodeid.rsplit("[", 1)[-1].rstrip("]")
    parts = params.split("-")
    return parts[1] if len(parts) > 1 else params


def _load(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {what} {path}: cannot read it: {exc}") from None


def findings(plain: dict[str, Any], opt: dict[str, Any], plain_variants: set[str],
             opt_variants: set[str]) -> list[Finding]:
    """Every difference between the two runs (ledger dumps) and builds (variant names)."""
    out = [Finding(v, "in the plain build, missing from the -O build (its -O compile failed or changed "
                      "the interface; see the `codegen build -O` output)")
           for v in sorted(plain_variants - opt_variants)]
    a, b = plain.get("outcomes", {}), opt.get("outcomes", {})
    for nodeid in sorted(set(a) | set(b)):
        variant = variant_of(nodeid)
        if variant in plain_variants - opt_variants:
            continue
        was, now = a.get(nodeid, ["missing", ""]), b.get(nodeid, ["missing", ""])
        if was[0] == now[0] or "skipped" in (was[0], now[0]):
            continue
        test = nodeid.rsplit("[", 1)[-1].rstrip("]")
        detail = now[1] if now[0] == "failed" else was[1]
        what = f"{test}: {was[0]} without -O, {now[0]} with -O"
        out.append(Finding(variant, what + (f": {detail}" if detail else "")))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.differential", description=__doc__.split("\n\n")[0])
    p.add_argument("plain", type=Path, help="ledger of the run on the plain build")
    p.add_argument("opt", type=Path, help="ledger of the run on the -O build")
    p.add_argument("--plain-manifest", type=Path, default=Path("build/manifest.json"))
    p.add_argument("--opt-manifest", type=Path, default=Path("build/opt/manifest.json"))
    args = p.parse_args(argv)
    plain_variants = set(_load(args.plain_manifest, "manifest")["variants"])
    opt_variants = set(_load(args.opt_manifest, "manifest")["variants"])
    found = findings(_load(args.plain, "ledger"), _load(args.opt, "ledger"), plain_variants, opt_variants)
    for finding in found:
        print(finding.line())
    compared = len(_load(args.opt, "ledger").get("outcomes", {}))
    print(f"optimizer differential: {len(found)} finding(s); {compared} property tests compared on "
          f"{len(opt_variants & plain_variants)} variants built both ways", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
