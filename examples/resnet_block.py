"""A quantized ResNet basic block, end to end on the device.

    h = relu(conv3x3(x))            C -> C, stride 1, padding 1       runtime.conv2d_q8
    h = conv3x3(h)                  C -> C                            runtime.conv2d_q8
    y = relu(h + x)                 the residual                      runtime.add_q8(activation="relu")

With x uploaded once (``xp = runtime.pack(x, "4c").to_device()``) every op returns a device-resident
Packed in the 4c layout and the next op reads it there; only ``y.numpy()`` reads anything back.
The default shape is a block of ResNet-18/34's first stage (64 channels at 56 x 56).

    python -m examples.resnet_block [--device NAME] [--reps 5] [--layout 4c] [--channels 64 --size 56]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from examples.blocks import Add, Block, Quant, Stage, calibrate, cli, make_conv


def resnet_block(channels: int = 64, size: int | tuple[int, int] = 56, *, batch: int = 1,
                 seed: int = 0) -> tuple[Block, np.ndarray]:
    """The block (calibrated on its input) and a random int8 input of shape (batch, channels, H, W)."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    specs = [
        Stage("conv1", make_conv(rng, channels, channels, 3, activation="relu"), ("x",)),
        Stage("conv2", make_conv(rng, channels, channels, 3), ("conv1",)),
        Stage("residual", Add(activation="relu"), ("conv2", "x")),
    ]
    # the block's input comes out of a relu: non-negative, so its zero point sits at the bottom
    x = rng.integers(-128, 128, (batch, channels, h, w), dtype=np.int8)
    title = f"ResNet basic block {channels} channels"
    return calibrate(title, specs, x, Quant(0.03, -128)), x


def main(argv: Sequence[str] | None = None) -> int:
    return cli(argv, __doc__, resnet_block, channels=(64, "channels"), size=(56, "height = width"),
               batch=(1, "batch size N"))


if __name__ == "__main__":
    sys.exit(main())
