"""`python -m bench.heuristic RESULTS.json`: how good is the GEMM heuristic on the device a bench ran on?

For every GEMM shape of a `python -m bench` results file, the variant the heuristic
(runtime.oplib.gemm_q8.gemm_preference) would pick among those the run timed on that shape (so exactly the
variants that ran on that device), and its measured TOPS as a share of the fastest one's. A second view
leaves the tensor-core variants out: the pick on a device like it without cooperative matrices.
Needs the build the results were measured with (build/manifest.json, or --manifest).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.core.manifest import Manifest, load_manifest
from runtime.oplib.gemm_q8 import gemm_accepts, gemm_preference

SHAPE_DESC = re.compile(r"M(\d+) K(\d+) N(\d+)")


@dataclass(frozen=True)
class Verdict:
    shape: str
    pick: str
    pick_tops: float
    best: str
    best_tops: float

    @property
    def share(self) -> float:
        return self.pick_tops / self.best_tops


def timed_gemms(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """(shape, desc) -> {variant: TOPS} of every GEMM row of a results file that was timed."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for row in results.get("rows", []):
        if row.get("kind") == "gemm" and row.get("tops"):
            out.setdefault((row["shape"], row["desc"]), {})[row["variant"]] = float(row["tops"])
    return out


def verdicts(results: dict[str, Any], manifest: Manifest,
             keep: Callable[[Mapping[str, Any]], bool] = lambda axes: True) -> list[Verdict]:
    """The heuristic's pick per GEMM shape among the timed variants `keep` accepts (by axes), and the fastest."""
    found = []
    accepts = gemm_accepts("native", "float32")
    for (shape, desc), tops in timed_gemms(results).items():
        sizes = SHAPE_DESC.search(desc)
        if sizes is None:
            continue
        M, K, N = (int(v) for v in sizes.groups())
        entries = [manifest.variants[v] for v in tops if v in manifest.variants]
        entries = [e for e in entries if keep(e.axes) and accepts(e.axes) is None]
        if not entries:
            continue
        pick = min(entries, key=gemm_preference(M, N, "float32", -(-K // 4)))
        best = max(entries, key=lambda e: tops[e.name])
        found.append(Verdict(shape, pick.name, tops[pick.name], best.name, tops[best.name]))
    return found


def report(title: str, found: Sequence[Verdict]) -> str:
    lines = [f"## {title}", "", "| shape | heuristic pick | TOPS | fastest timed | TOPS | pick / fastest |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {v.shape} | `{v.pick}` | {v.pick_tops:.4g} | `{v.best}` | {v.best_tops:.4g} | {100 * v.share:.1f} % |"
              for v in found]
    if found:
        shares = [v.share for v in found]
        mean = math.exp(sum(math.log(s) for s in shares) / len(shares))
        lines += ["", f"{len(found)} shapes: pick / fastest {100 * min(shares):.1f} % at worst, "
                      f"{100 * mean:.1f} % geometric mean"]
    else:
        lines += ["", "no timed GEMM shape"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.heuristic", description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, help="a results.json that `python -m bench` wrote")
    p.add_argument("--manifest", type=Path, help="the build's manifest.json (default: build/manifest.json)")
    args = p.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as e:
        p.error(f"{args.results}: {e}")
    manifest = load_manifest(args.manifest) if args.manifest else load_manifest()
    device = results.get("meta", {}).get("device", "?")
    print(report(f"every variant timed on {device}", verdicts(results, manifest)))
    print()
    print(report("without the tensor-core variants", verdicts(results, manifest, lambda axes: "coop" not in axes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
