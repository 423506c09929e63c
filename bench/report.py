"""Turn a bench run into results.md (Markdown tables), results.json (everything) and roofline.png."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.kernels import Row
from bench.measure import Stats
from bench.roofline import Roofline

KIND_TITLES = {"gemm": "GEMM (int8, ops = 2*M*N*K)", "im2col": "im2col (GB/s = packed input read once + matrix "
               "written)", "conv": "conv2d (im2col + GEMM; ops = 2 * real multiply-adds)"}


def slug(text: str) -> str:
    """Lower-case, alphanumerics and single dashes: a device name that is safe in a path."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.4g}"


def _spread(stats: Stats | None) -> str:
    if stats is None:
        return "n/a"
    return f"{_ms(stats.median)} [{_ms(stats.p10)}–{_ms(stats.p90)}]"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _code(name: str) -> str:
    return f"`{name}`"


def _peer_cells(row: Row, global_reason: str) -> list[str]:
    """Peer time and ratio; a reason only where it is about this shape (the header has the global one)."""
    if row.peer is None:
        return ["n/a", "n/a"]
    if row.peer.stats is None:
        specific = row.peer.reason and row.peer.reason != global_reason
        return [f"n/a ({row.peer.reason})" if specific else "n/a", "n/a"]
    return [_ms(row.peer.stats.median), f"{row.peer_ratio:.2f}x" if row.peer_ratio else "n/a"]


def _other_peers(row: Row, global_reason: str) -> str:
    cells = []
    for p in row.other_peers:
        if p.stats is not None:
            cells.append(f"{_ms(p.stats.median)} ms")
        else:
            cells.append(f"n/a ({p.reason})" if p.reason and p.reason != global_reason else "n/a")
    return ", ".join(cells) or "n/a"


def _step_ms(row: Row, index: int) -> str:
    return _ms(row.steps[index].median) if index < len(row.steps) else "n/a"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def _status_or(row: Row, cell: str) -> str:
    return cell if row.status == "ok" else row.status


def _timed(rows: Iterable[Row], kind: str) -> list[Row]:
    """Rows of one kind, less the variants this device cannot run (listed once in the notes instead)."""
    return [r for r in rows if r.kind == kind and not r.status.startswith("n/a: device lacks")]


def _name(row: Row, fastest: set[int]) -> str:
    return f"**{_code(row.variant)}**" if id(row) in fastest else _code(row.variant)


def best_rows(rows: Sequence[Row]) -> list[Row]:
    """Per (kind, shape) the fastest timed row whose check did not fail."""
    best: dict[tuple[str, str], Row] = {}
    for r in rows:
        if r.kind == "conv-gemm-screen" or r.stats is None or r.check.startswith("FAILED"):
            continue
        key = (r.kind, r.shape)
        if key not in best or r.stats.median < (best[key].stats or r.stats).median:
            best[key] = r
    return list(best.values())


def markdown(meta: dict[str, Any], roof: Roofline, rows: Sequence[Row]) -> str:
    """The whole report as Markdown."""
    out = [f"# shaderkit benchmark: {meta['device']}", ""]
    out += _table(["", ""], [
        ["device", f"{meta['device']} ({meta['device_type']}, vendor {meta['vendor_id']})"],
        ["driver", meta["driver"]],
        ["Vulkan API", meta["api_version"]],
        ["date", meta["date"]],
        ["suite", f"{meta['suite']}: median [p10–p90] of {meta['reps']} timed runs after {meta['warmup']} "
                  f"warm-up runs, GPU timestamps"],
        ["buffers", meta["buffer_memory"]],
        ["peer", meta["peer"]],
        ["host", meta["host"]],
        ["command", f"`{meta['command']}`"],
    ])
    out += ["", "## Roofline (measured in this run)", ""]
    out += [f"- copy bandwidth: **{_num(roof.copy_gbps, 4)} GB/s** (bytes read + written, best `bench_copy` "
            "variant)",
            f"- packed int8 dot-product peak: **{_num(roof.dot_tops, 4)} TOPS** "
            f"(best `bench_dot_peak` variant of mode `{roof.dot_mode or 'n/a'}`; 8 ops per dot4)",
            "- % roofline = achieved / min(peak, ops per compulsory byte x copy bandwidth); for im2col it is "
            "% of copy bandwidth", ""]
    out += _table(["probe", "result", "median ms [p10–p90]", "size", "check"], [
        [_code(p.variant), "n/a" if p.value is None else f"{p.value:.4g} {'GB/s' if p.kind == 'copy' else 'TOPS'}",
         _spread(p.stats), p.detail, p.check] for p in roof.probes
    ])

    best = best_rows(rows)
    fastest = {id(r) for r in best}
    nopeer = meta.get("peer_reason", "")
    if best:
        out += ["", "## Summary: fastest variant per shape", ""]
        out += _table(["kind", "shape", "variant", "median ms [p10–p90]", "TOPS", "GB/s", "% peak", "% roofline",
                       "peer ms", "ours/peer", "check"], [
            [r.kind, r.shape, _code(r.variant), _spread(r.stats), _num(r.tops), _num(r.gbps), _pct(r.pct_peak),
             _pct(r.pct_roof), *_peer_cells(r, nopeer), r.check] for r in best
        ])

    if gemm := _timed(rows, "gemm"):
        out += ["", f"## {KIND_TITLES['gemm']}", ""]
        out += _table(["shape", "variant", "median ms [p10–p90]", "TOPS", "% dot peak", "% roofline",
                       "peer ms (torch._int_mm)", "ours/peer", "check"], [
            [f"{r.shape} ({r.desc})", _name(r, fastest), _status_or(r, _spread(r.stats)), _num(r.tops),
             _pct(r.pct_peak), _pct(r.pct_roof), *_peer_cells(r, nopeer), r.check] for r in gemm
        ])
    if im2col := _timed(rows, "im2col"):
        out += ["", f"## {KIND_TITLES['im2col']}", ""]
        out += _table(["shape", "variant", "median ms [p10–p90]", "GB/s", "% copy BW", "check"], [
            [f"{r.shape} ({r.desc})", _name(r, fastest), _status_or(r, _spread(r.stats)), _num(r.gbps),
             _pct(r.pct_peak), r.check] for r in im2col
        ])
    if conv := _timed(rows, "conv"):
        out += ["", f"## {KIND_TITLES['conv']}", ""]
        out += _table(["layer", "pick", "im2col + GEMM variant", "im2col ms", "GEMM ms", "total ms [p10–p90]",
                       "TOPS", "% dot peak", "% roofline", "peer ms (cuDNN fp16)", "ours/peer", "int8 peer",
                       "check"], [
            [f"{r.shape} ({r.desc})", r.pick, _name(r, fastest), _step_ms(r, 0), _step_ms(r, 1),
             _status_or(r, _spread(r.stats)), _num(r.tops), _pct(r.pct_peak), _pct(r.pct_roof),
             *_peer_cells(r, nopeer), _other_peers(r, nopeer), r.check] for r in conv
        ])
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in meta.get("notes", [])]
    lacking: dict[str, set[str]] = {}
    for r in rows:
        if r.status.startswith("n/a: device lacks"):
            lacking.setdefault(r.status.removeprefix("n/a: device "), set()).add(r.variant)
    for what, names in sorted(lacking.items()):
        out.append(f"- not timed, the device {what}: {', '.join(_code(n) for n in sorted(names))}")
    over = sorted({r.variant for r in rows if r.pct_peak is not None and r.pct_peak > 100 and r.kind != "im2col"})
    if over:
        out.append("- over 100% of the dot peak: these beat the probe's dot4 chains (tensor-core variants, whose "
                   "peak the probe does not measure, or the integer fallback on a CPU, where a tile shares its "
                   "byte extraction): " + ", ".join(map(_code, over)))
    skipped = sorted({r.shape for r in rows if r.check.startswith("skipped")})
    if skipped:
        out.append(f"- correctness spot check skipped (NumPy would take too long) for: {', '.join(skipped)}")
    failed = [f"{r.shape} / {r.variant}" for r in rows if r.check.startswith("FAILED")]
    if failed:
        out.append(f"- **correctness check FAILED** for: {'; '.join(failed)}")
    return "\n".join(out) + "\n"


def to_json(meta: dict[str, Any], roof: Roofline, rows: Sequence[Row]) -> dict[str, Any]:
    return {"meta": meta, "roofline": roof.to_json(), "rows": [r.to_json() for r in rows]}


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
        variants = list(dict.fromkeys(label(r) for r in timed))
        if kind == "conv" and "auto = best-gemm" in variants:  # one pair that is both: show it in both rows
            variants = [v for v in variants if v != "auto = best-gemm"]
            variants += [v for v in ("auto", "best-gemm") if v not in variants]
        grid = np.full((len(variants), len(shapes)), np.nan)
        for r in timed:
            if r.pct_roof is None:
                continue
            for v in (("auto", "best-gemm") if r.pick == "auto = best-gemm" else (label(r),)):
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
    top = max(100.0, float(np.nanmax([np.nanmax(g) if np.isfinite(g).any() else 0.0 for *_, g in panels])))
    for ax, (kind, shapes, variants, grid) in zip(axes[:, 0], panels, strict=True):
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=top)
        ax.set_xticks(range(len(shapes)), shapes, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(variants)), variants, fontsize=7)
        unit = "copy BW" if kind == "im2col" else "roofline"
        ax.set_title(f"{kind}: % of {unit}", fontsize=9)
        if grid.size <= 600:
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.0f}" if v >= 1 else f"{v:.1f}", ha="center", va="center", fontsize=6,
                            color="white" if v < 0.6 * top else "black")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    fig.suptitle(f"% of roofline (copy {_num(roof.copy_gbps, 4)} GB/s, dot peak {_num(roof.dot_tops, 4)} TOPS)",
                 fontsize=10)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.45 / sum(heights)))  # leave the suptitle its own line
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out_dir: Path, meta: dict[str, Any], roof: Roofline, rows: Sequence[Row]) -> dict[str, Path]:
    """results.md, results.json and roofline.png under out_dir (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "results.md", "json": out_dir / "results.json", "png": out_dir / "roofline.png"}
    paths["md"].write_text(markdown(meta, roof, rows))
    paths["json"].write_text(json.dumps(to_json(meta, roof, rows), indent=1, default=str) + "\n")
    try:
        plot(paths["png"], roof, rows)
    except ImportError:  # e.g. a GPU machine without matplotlib: the tables still count
        print("note: matplotlib is not installed; roofline.png not written", file=sys.stderr)
        del paths["png"]
    return paths
