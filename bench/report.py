"""Turn a bench run into results.md (Markdown tables), results.json (everything) and roofline.png."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.clocks import summary as clock_summary
from bench.kernels import Row
from bench.measure import Stats
from bench.peer import PeerSet, PeerTiming
from bench.roofline import UNIT_PROBES, UNITS, Roofline

KIND_TITLES = {"gemm": "GEMM (int8, ops = 2*M*N*K)", "im2col": "im2col (GB/s = packed input read once + matrix "
               "written)", "conv": "conv2d (im2col + GEMM; ops = 2 * real multiply-adds)"}
PeerSets = Mapping[str, tuple[str, str, PeerSet]]


def slug(text: str) -> str:
    """Lower-case, alphanumerics and single dashes: a device name that is safe in a path."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.4g}"


def _med(stats: Stats | None) -> float | None:
    return None if stats is None else stats.median


def _spread(stats: Stats | None) -> str:
    if stats is None:
        return "n/a"
    return f"{_ms(stats.median)} [{_ms(stats.p10)}–{_ms(stats.p90)}]"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _code(name: str) -> str:
    return f"`{name}`"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def _status_or(row: Row, cell: str) -> str:
    return cell if row.status == "ok" else row.status


def _timed(rows: Iterable[Row], kind: str) -> list[Row]:
    """Rows of one kind, less the variants this device cannot run (listed once in the notes instead)."""
    return [r for r in rows if r.kind == kind and not r.status.startswith("n/a: device")]


def _name(row: Row, fastest: set[int]) -> str:
    return f"**{_code(row.variant)}**" if id(row) in fastest else _code(row.variant)


def _peer_label(peer: PeerTiming | None, reason: str = "") -> str:
    if peer is None:
        return f"n/a ({reason})" if reason else "n/a"
    return f"{peer.op} [{peer.layout}]"


def _peer_ms(peer: PeerTiming | None, mode: str) -> str:
    if peer is None:
        return "n/a"
    cell = _ms(peer.seconds(mode))
    if mode == "kernel" and peer.kernel is not None and not peer.kernel_method.startswith("profiler"):
        cell += f" ({peer.kernel_method})"
    return cell


def best_rows(rows: Sequence[Row]) -> list[Row]:
    """Per (kind, shape) the fastest timed row (kernel time) whose check did not fail."""
    best: dict[tuple[str, str], Row] = {}
    for r in rows:
        if r.kind == "conv-gemm-screen" or r.stats is None or r.check.startswith("FAILED"):
            continue
        key = (r.kind, r.shape)
        if key not in best or r.stats.median < (best[key].stats or r.stats).median:
            best[key] = r
    return list(best.values())


def _header(meta: dict[str, Any]) -> list[str]:
    rows = [
        ["device", f"{meta['device']} ({meta['device_type']}, vendor {meta['vendor_id']})"],
        ["driver", meta["driver"]],
        ["Vulkan API", meta["api_version"]],
        ["date", meta["date"]],
        ["suite", f"{meta['suite']}: medians [p10–p90]; kernel time over the calls of a stream of up to "
                  f"{meta['reps']} calls after {meta['warmup']} warm-up calls (fewer for slow variants)"],
        ["buffers", meta["buffer_memory"]],
        ["peer", meta["peer"]],
        *([["CUDA context", meta["cuda_context"]]] if "cuda_context" in meta else []),
        ["host", meta["host"] + (f"; {meta['host_load']}" if meta.get("host_load") else "")],
        ["command", f"`{meta['command']}`"],
    ]
    rows += [[f"clocks, {c['when']}", clock_summary(c)] for c in meta.get("clocks", [])]
    if "elapsed_s" in meta:
        rows.append(["elapsed", f"{meta['elapsed_s']} s"])
    return [f"# shaderkit benchmark: {meta['device']}", "", *_table(["", ""], rows)]


def _roofline(roof: Roofline) -> list[str]:
    out = ["", "## Roofline (measured in this run)", ""]
    units = {"tensor": "tensor-core int8 MMA (TOPS)", "packed-dot": "packed int8 dot product (TOPS)",
             "int-alu": "integer multiply-add (TOPS)", "copy": "copy bandwidth (GB/s, read + written)"}
    out += _table(["unit", "peak", "set by", "its variants"], [
        [units[u], f"**{_num(roof.peak(u), 4)}**", _code(roof.sources[u]) if u in roof.sources else UNIT_PROBES[u],
         {"tensor": "coopmat GEMMs", "packed-dot": "dot / sdot GEMMs", "int-alu": "int GEMMs",
          "copy": "im2col"}[u]] for u in UNITS
    ])
    spec = f"- spec-sheet dense int8 (tensor cores) of this GPU: **{roof.spec or 'unknown'}**"
    if roof.coop_tops is not None and roof.spec and roof.spec[0].isdigit():
        spec += f"; the measured tensor-core peak is {100 * roof.coop_tops / float(roof.spec.split()[0]):.0f}% of it"
    out += ["", spec,
            "- % peak = achieved / the unit's peak; % roofline = achieved / min(unit peak, ops per compulsory byte x "
            "copy bandwidth); for im2col both are % of copy bandwidth"]
    out += [f"- **PROBE BEATEN ({u})**: {why}" for u, why in roof.raised.items()]
    out += [""]
    out += _table(["probe", "result", "median ms [p10–p90]", "size", "check"], [
        [_code(p.variant), "n/a" if p.value is None else f"{p.value:.4g} {'GB/s' if p.kind == 'copy' else 'TOPS'}",
         _spread(p.stats), p.detail, p.check] for p in roof.probes
    ])
    return out


def _peers(peer_sets: PeerSets, global_reason: str) -> list[str]:
    lines: list[list[str]] = []
    for shape, (kind, desc, peers) in peer_sets.items():
        if kind != "gemm":
            continue
        best = peers.best
        for p in [*peers.candidates, *peers.references]:
            is_ref = p in peers.references
            label = f"{p.op} [{p.layout}]" + (" (reference)" if is_ref else "")
            label = f"**{label}**" if p is best else label
            note = p.reason if p.reason and p.reason != global_reason else ""
            lines.append([f"{shape} ({desc})", label, _peer_ms(p, "kernel"), _ms(p.graph.median if p.graph else None),
                          _ms(p.seconds("stream")), str(p.calls or "n/a"), note])
        if not peers.candidates and peers.reason and peers.reason != global_reason:
            lines.append([f"{shape} ({desc})", "n/a", "n/a", "n/a", "n/a", "n/a", peers.reason])
    if not lines:
        return []
    out = ["", "## Peer: PyTorch on the same GPU (GEMM; bold = the fastest int8 candidate, the one ratios use)", ""]
    return out + _table(["shape", "op [layout]", "kernel ms", "CUDA graph ms", "stream ms", "N calls", "note"], lines)


def _tuning(conv: Sequence[Row]) -> list[str]:
    by_shape: dict[str, dict[str, Row]] = {}
    for r in conv:
        for label in r.pick.split(" = "):
            by_shape.setdefault(r.shape, {})[label] = r
    lines = []
    for shape, picks in by_shape.items():
        tuned, heur = picks.get("tuned"), picks.get("heuristic")
        if tuned is None or heur is None:
            continue
        entries = tuned.tuning.get("entries", {})
        classes = tuned.tuning.get("classes", {})
        entry = ", ".join(f"{role}: {_code(v) if v else 'none'}" for role, v in entries.items()) or "n/a"
        gain = (heur.stats.median / tuned.stats.median) if tuned.stats and heur.stats else None
        lines.append([shape, " / ".join(classes.values()), entry, _code(tuned.variant), _ms(_med(tuned.stats)),
                      _code(heur.variant), _ms(_med(heur.stats)), _ratio(gain)])
    if not lines:
        return []
    out = ["", "## Tuned vs heuristic picks of conv2d_q8 (kernel ms; cache: `python -m bench tune`)", ""]
    return out + _table(["layer", "shape classes (im2col / GEMM)", "cache entries", "tuned pair", "ms",
                         "heuristic pair", "ms", "heuristic / tuned"], lines)


def markdown(meta: dict[str, Any], roof: Roofline, rows: Sequence[Row], peer_sets: PeerSets | None = None) -> str:
    """The whole report as Markdown."""
    peer_sets = peer_sets or {}
    nopeer = meta.get("peer_reason", "")
    out = _header(meta) + _roofline(roof)

    best = best_rows(rows)
    fastest = {id(r) for r in best}
    if best:
        out += ["", "## Summary: fastest variant per shape (ours/peer: > 1 means ours is faster)", ""]
        out += _table(["kind", "shape", "variant", "unit", "kernel ms [p10–p90]", "stream ms", "TOPS", "GB/s",
                       "% unit peak", "% roofline", "peer", "peer kernel ms", "peer stream ms", "ours/peer kernel",
                       "ours/peer stream", "check"], [
            [r.kind, r.shape, _code(r.variant), r.unit, _spread(r.stats), _ms(_med(r.stream)),
             _num(r.tops), _num(r.gbps), _pct(r.pct_peak), _pct(r.pct_roof), _peer_label(r.peer),
             _peer_ms(r.peer, "kernel"), _peer_ms(r.peer, "stream"), _ratio(r.ratio_kernel), _ratio(r.ratio_stream),
             r.check] for r in best
        ])

    if gemm := _timed(rows, "gemm"):
        out += ["", f"## {KIND_TITLES['gemm']}", "", "The peer of each shape (the fastest torch._int_mm layout) is in "
                "the Peer section below.", ""]
        out += _table(["shape", "variant", "unit", "kernel ms [p10–p90]", "stream ms", "TOPS", "% unit peak",
                       "% roofline", "ours/peer kernel", "ours/peer stream", "check"], [
            [f"{r.shape} ({r.desc})", _name(r, fastest), r.unit, _status_or(r, _spread(r.stats)),
             _ms(_med(r.stream)), _num(r.tops), _pct(r.pct_peak), _pct(r.pct_roof),
             _ratio(r.ratio_kernel), _ratio(r.ratio_stream), r.check] for r in gemm
        ])
    out += _peers(peer_sets, nopeer)
    if im2col := _timed(rows, "im2col"):
        out += ["", f"## {KIND_TITLES['im2col']}", ""]
        out += _table(["shape", "variant", "kernel ms [p10–p90]", "stream ms", "GB/s", "% copy BW", "check"], [
            [f"{r.shape} ({r.desc})", _name(r, fastest), _status_or(r, _spread(r.stats)),
             _ms(_med(r.stream)), _num(r.gbps), _pct(r.pct_peak), r.check] for r in im2col
        ])
    if conv := _timed(rows, "conv"):
        out += ["", f"## {KIND_TITLES['conv']}", "",
                "The int8 peer column says what PyTorch on CUDA did with the same conv in int8.", ""]
        out += _table(["layer", "pick", "im2col + GEMM variant", "im2col ms", "GEMM ms", "kernel ms [p10–p90]",
                       "stream ms", "TOPS", "% unit peak", "% roofline", "peer", "peer kernel ms", "peer stream ms",
                       "ours/peer kernel", "ours/peer stream", "int8 peer", "check"], [
            [f"{r.shape} ({r.desc})", r.pick, _name(r, fastest), _ms(r.steps[0].median if r.steps else None),
             _ms(r.steps[1].median if len(r.steps) > 1 else None), _status_or(r, _spread(r.stats)),
             _ms(_med(r.stream)), _num(r.tops), _pct(r.pct_peak), _pct(r.pct_roof), _peer_label(r.peer),
             _peer_ms(r.peer, "kernel"), _peer_ms(r.peer, "stream"), _ratio(r.ratio_kernel), _ratio(r.ratio_stream),
             _int8_peer(r, nopeer), r.check] for r in conv
        ])
        out += _tuning(conv)
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in meta.get("notes", [])]
    lacking: dict[str, set[str]] = {}
    for r in rows:
        if r.status.startswith("n/a: device"):
            lacking.setdefault(r.status.removeprefix("n/a: "), set()).add(r.variant)
    for what, names in sorted(lacking.items()):
        out.append(f"- not timed, {what}: {', '.join(_code(n) for n in sorted(names))}")
    skipped = sorted({r.shape for r in rows if r.check.startswith("skipped")})
    if skipped:
        out.append(f"- correctness spot check skipped (NumPy would take too long) for: {', '.join(skipped)}")
    over = sorted({f"{r.shape} / {r.variant}" for r in rows if r.pct_roof is not None and r.pct_roof > 100})
    if over:
        out.append("- over 100% of roofline (never of a unit's peak): the memory side of the roofline is the copy "
                   "probe's DRAM bandwidth over a buffer larger than any cache, and these rows reuse inputs small "
                   "enough to stay in the GPU's cache between calls (the peer reuses its inputs alike): "
                   + "; ".join(over))
    budget = sorted({r.shape for r in rows if r.status.startswith("skipped: time budget")})
    if budget:
        out.append(f"- **not run, the time budget was spent**: {', '.join(budget)}")
    failed = [f"{r.shape} / {r.variant}" for r in rows if r.check.startswith("FAILED")]
    if failed:
        out.append(f"- **correctness check FAILED** for: {'; '.join(failed)}")
    return "\n".join(out) + "\n"


def _int8_peer(row: Row, global_reason: str) -> str:
    cells = []
    for p in row.peer_refs:
        if p.stream is not None:
            cells.append(f"{p.op} [{p.layout}]: {_peer_ms(p, 'kernel')} / {_ms(p.seconds('stream'))} ms "
                         "(kernel / stream)")
        else:
            cells.append(f"n/a ({p.reason})" if p.reason and p.reason != global_reason else "n/a")
    return ", ".join(cells) or "n/a"


def to_json(meta: dict[str, Any], roof: Roofline, rows: Sequence[Row], peer_sets: PeerSets | None = None
            ) -> dict[str, Any]:
    peers = {shape: {"kind": kind, "desc": desc, **ps.to_json()}
             for shape, (kind, desc, ps) in (peer_sets or {}).items()}
    return {"meta": meta, "roofline": roof.to_json(), "rows": [r.to_json() for r in rows], "peers": peers}


def plot(path: Path, roof: Roofline, rows: Sequence[Row]) -> None:
    """Heat maps of % roofline, variants x shapes, one panel per kind (blank: not timed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np

    panels = []
    for kind in ("gemm", "im2col", "conv"):
        timed = _timed(rows, kind)
        if not timed:
            continue
        shapes = list(dict.fromkeys(r.shape for r in timed))
        label = (lambda r: r.pick) if kind == "conv" else (lambda r: r.variant)
        variants = list(dict.fromkeys(p for r in timed for p in (label(r).split(" = ") if kind == "conv"
                                                                  else [label(r)])))
        grid = np.full((len(variants), len(shapes)), np.nan)
        for r in timed:
            if r.pct_roof is None:
                continue
            for v in (label(r).split(" = ") if kind == "conv" else [label(r)]):
                grid[variants.index(v), shapes.index(r.shape)] = r.pct_roof
        panels.append((kind, shapes, variants, grid))
    if not panels:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no kernel timings in this run (roofline only)", ha="center", va="center")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    heights = [max(1.5, 0.3 * len(v) + 1.6) for _, _, v, _ in panels]
    width = max(8.0, 0.75 * max(len(s) for _, s, _, _ in panels) + 4.5)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (kind, shapes, variants, grid) in zip(axes[:, 0], panels, strict=True):
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=100.0)
        ax.set_xticks(range(len(shapes)), shapes, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(variants)), variants, fontsize=7)
        unit = "copy BW" if kind == "im2col" else "its unit's roofline"
        ax.set_title(f"{kind}: % of {unit}", fontsize=9)
        if grid.size <= 600:
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.0f}" if v >= 1 else f"{v:.1f}", ha="center", va="center", fontsize=6,
                            color="white" if v < 60 else "black")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    peaks = ", ".join(f"{u} {_num(roof.peak(u), 4)}" for u in UNITS if roof.peak(u) is not None)
    fig.suptitle(f"% of roofline per unit ({peaks}; TOPS, copy GB/s)", fontsize=10)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.45 / sum(heights)))  # leave the suptitle its own line
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out_dir: Path, meta: dict[str, Any], roof: Roofline, rows: Sequence[Row],
          peer_sets: PeerSets | None = None) -> dict[str, Path]:
    """results.md, results.json and roofline.png under out_dir (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "results.md", "json": out_dir / "results.json", "png": out_dir / "roofline.png"}
    paths["md"].write_text(markdown(meta, roof, rows, peer_sets))
    paths["json"].write_text(json.dumps(to_json(meta, roof, rows, peer_sets), indent=1, default=str) + "\n")
    try:
        plot(paths["png"], roof, rows)
    except ImportError:  # e.g. a GPU machine without matplotlib: the tables still count
        print("note: matplotlib is not installed; roofline.png not written", file=sys.stderr)
        del paths["png"]
    return paths
