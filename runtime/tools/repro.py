"""Rerun one property-test case: `python -m runtime.tools.repro --level conv --variant NAME --case '{...}'`."""

from __future__ import annotations

import argparse
import json
import sys

from runtime.core.errors import ShaderkitError
from runtime.tools.check import VerificationError, check, levels_of


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runtime.tools.repro", description=__doc__)
    p.add_argument("--level", required=True, help="the check level, as printed by the failing test")
    p.add_argument("--variant", required=True, help="variant name from the manifest")
    p.add_argument("--case", required=True, help="the case as JSON, as printed by a failing test")
    args = p.parse_args(argv)
    try:
        case = json.loads(args.case)
    except ValueError as exc:
        print(f"error: --case is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(case, dict):
        print("error: --case must be a JSON object", file=sys.stderr)
        return 2
    try:
        levels_of(args.variant)
        check(args.level, args.variant, case)
    except VerificationError as exc:
        print(f"FAIL: {exc}")
        return 1
    except (ShaderkitError, ValueError, TypeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"PASS: {args.level} check of {args.variant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
