"""Direct depthwise conv vs conv2d_q8's im2col + GEMM on the MobileNetV2 depthwise layers, GPU time.

    python -m runtime.families.q8ta_dwconv [--reps N] [--layout L] [--device SEL] [NAME ...]

NAME picks layers of MOBILENETV2_DW by substring (default: all); --device is a device index or a
substring of its name (default: $SHADERKIT_DEVICE, else the first discrete GPU, else lavapipe).
"""

from __future__ import annotations

import argparse

from runtime.core.device import open_device

from .op import DEFAULT_LAYOUT, MOBILENETV2_DW, time_against_im2col


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.families.q8ta_dwconv", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="substrings of layer names (default: every layer)")
    parser.add_argument("--reps", type=int, default=9, help="timed runs per path, after one warm-up (default 9)")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT, help=f"input layout (default {DEFAULT_LAYOUT})")
    parser.add_argument("--device", default=None, help="device index or name substring")
    args = parser.parse_args(argv)
    shapes = [s for s in MOBILENETV2_DW if not args.names or any(n in s.name for n in args.names)]
    if not shapes:
        parser.error(f"no layer matches {args.names}; layers: {[s.name for s in MOBILENETV2_DW]}")
    with open_device(args.device) as dev:
        print(f"{dev.info.name}: median GPU time of {args.reps} runs, input layout {args.layout}")
        print(f"{'layer':18} {'direct ms':>10} {'im2col+GEMM ms':>15} {'speedup':>8}  variants")
        for shape in shapes:
            t = time_against_im2col(shape, reps=args.reps, input_layout=args.layout, device=dev)
            print(f"{shape.name:18} {t.dwconv_s * 1e3:10.3f} {t.im2col_gemm_s * 1e3:15.3f} {t.speedup:7.1f}x  "
                  f"{t.dwconv_variant} | {t.im2col_variant} + {t.gemm_variant}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
