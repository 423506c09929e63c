"""A quantized MobileNetV2 inverted-residual block, end to end on the device.

    h = relu(conv1x1(x))            expand C -> t*C channels          runtime.conv2d_q8
    h = relu(depthwise3x3(h))       stride 1, padding 1               runtime.conv2d_q8, groups = t*C
    h = conv1x1(h)                  project t*C -> C                  runtime.conv2d_q8
    y = h + x                       the residual                      runtime.add_q8

With x uploaded once (``xp = runtime.pack(x, "4c").to_device()``) every op returns a device-resident
Packed in the 4c layout and the next op reads it there; only ``y.numpy()`` reads anything back.
The default shape is the block of MobileNetV2's third stage (24 -> 144 -> 24 channels at 56 x 56).

    python -m examples.mobilenet_block [--device NAME] [--reps 5] [--layout 4c] [--channels 24 --expand 6 --size 56]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from examples.blocks import Add, Block, Quant, Stage, calibrate, cli, make_conv


def mobilenet_block(channels: int = 24, expand: int = 6, size: int | tuple[int, int] = 56, *, batch: int = 1,
                    seed: int = 0) -> tuple[Block, np.ndarray]:
    """The block (calibrated on its input) and a random int8 input of shape (batch, channels, H, W)."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    hidden = channels * expand
    specs = [
        Stage("expand", make_conv(rng, channels, hidden, 1, activation="relu"), ("x",)),
        Stage("depthwise", make_conv(rng, hidden, hidden, 3, groups=hidden, activation="relu"), ("expand",)),
        Stage("project", make_conv(rng, hidden, channels, 1), ("depthwise",)),
        Stage("residual", Add(), ("project", "x")),
    ]
    x = rng.integers(-128, 128, (batch, channels, h, w), dtype=np.int8)
    title = f"MobileNetV2 inverted residual {channels}->{hidden}->{channels}"
    return calibrate(title, specs, x, Quant(0.05, -3)), x


def main(argv: Sequence[str] | None = None) -> int:
    return cli(argv, __doc__, mobilenet_block, channels=(24, "block input/output channels"),
               expand=(6, "expansion factor t"), size=(56, "height = width"), batch=(1, "batch size N"))


if __name__ == "__main__":
    sys.exit(main())
