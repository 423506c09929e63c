"""`python -m bench tune` (its arguments), then per conv layer of the impl classes: the fastest igemm variant
at split_plan's own K split against the fastest at any split timed, the untuned pick and the im2col + GEMM
pair (lines starting `##`; the rows in /tmp/tune_split.json).

    PYTHONPATH=. python <this file> --shapes rn50.res2.3x3,rn50.res3.3x3,rn50.res4.3x3,rn50.res5.3x3 \\
        --batches 1,8 --budget-s 250 --warm-s 8 --out /tmp/tune
"""
import json
import sys
from typing import Any

import bench.tune as T

captured: list[T.ClassResult] = []
real = T.tune


def capture(*args: Any, **kwargs: Any) -> list[T.ClassResult]:
    results = real(*args, **kwargs)
    captured.extend(results)
    return results


T.tune = capture
rc = T.main(sys.argv[1:])
rows = []
for r in captured:
    if r.role != T.IMPL:
        continue
    for layer in r.shapes:
        times = {v: t[layer] for v, t in r.seconds.items() if layer in t and v not in r.failed}
        own = {v: t for v, t in times.items() if " S=" not in v and v != T.PAIR}
        if not own:
            continue
        best_own = min(own, key=lambda v: own[v])
        best = min((v for v in times if v != T.PAIR), key=lambda v: times[v])
        heuristic = r.heuristic.get(layer, "")
        rows.append({"layer": layer, "class": r.shape_class, "best_own": best_own, "t_own": own[best_own],
                     "best_swept": best, "t_swept": times[best], "pair": times.get(T.PAIR), "heuristic": heuristic,
                     "t_heuristic": times.get(heuristic), "choice": r.choice, "timed": len(times)})
        short = len("q8ta_igemm_coopmat_")
        print(f"## {layer:22s} own-S best {own[best_own] * 1e3:.4f} ms {best_own[short:]:45s} "
              f"swept best {times[best] * 1e3:.4f} ms {best[short:]:50s} gain {own[best_own] / times[best]:.3f}x  "
              f"heuristic {times.get(heuristic, float('nan')) * 1e3:.4f} ms "
              f"pair {times.get(T.PAIR, float('nan')) * 1e3:.4f} ms", flush=True)
with open("/tmp/tune_split.json", "w") as f:
    json.dump(rows, f, indent=1)
sys.exit(rc)
