"""What the bench runs: conv layers of real networks, im2col-only and GEMM-only sizes, roofline sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.oplib.conv import conv_out_size


@dataclass(frozen=True)
class ConvShape:
    """One int8 conv2d at batch N (dilation 1); `name` says where it comes from."""

    name: str
    N: int
    C_in: int
    H: int
    W: int
    C_out: int
    K: int  # square kernel
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def H_out(self) -> int:
        return conv_out_size(self.H, self.K, self.stride, self.padding, 1)

    @property
    def W_out(self) -> int:
        return conv_out_size(self.W, self.K, self.stride, self.padding, 1)

    @property
    def macs(self) -> int:
        """Real multiply-adds (no channel padding): N*Ho*Wo * C_out * C_in/groups * K*K."""
        return self.N * self.H_out * self.W_out * self.C_out * (self.C_in // self.groups) * self.K * self.K

    def describe(self) -> str:
        g = f" g{self.groups}" if self.groups > 1 else ""
        return (f"{self.N}x{self.C_in}x{self.H}x{self.W} -> {self.C_out}, {self.K}x{self.K}/{self.stride} "
                f"p{self.padding}{g}")


@dataclass(frozen=True)
class GemmShape:
    """An int8 GEMM (M x K) @ (K x N): M rows (pixels), K reduction, N output channels."""

    name: str
    M: int
    K: int
    N: int

    @property
    def macs(self) -> int:
        return self.M * self.K * self.N

    def describe(self) -> str:
        return f"M{self.M} K{self.K} N{self.N}"


@dataclass(frozen=True)
class RooflineSizes:
    """How hard the roofline probes push: copy buffer bytes, dot-peak threads, coopmat-peak subgroups,
    target run time of one probe dispatch."""

    copy_bytes: int
    dot_threads: int
    dot_target_s: float
    dot_start_iters: int = 64
    spin_s: float = 0.5  # busy time before each probe is timed, so a GPU has left its idle clock
    coop_subgroups: int = 16384  # several waves of subgroups on a 132-SM GPU


@dataclass(frozen=True)
class Pacing:
    """How a suite spends time: GPU time per timed variant, keep-warm spins, the start-up warm-up."""

    variant_budget_s: float = 0.0  # GPU seconds of timed calls per variant and shape (0: always `reps`)
    idle_s: float = 0.0  # after this long without timed work the GPU is spun again before the next timing
    spin_s: float = 0.0  # ... for this long
    warm_s: float = 0.0  # spin before anything is timed (the run's warm-up; --warm-s overrides)


@dataclass(frozen=True)
class Suite:
    name: str
    conv: list[ConvShape] = field(default_factory=list)
    im2col: list[ConvShape] = field(default_factory=list)
    gemm: list[GemmShape] = field(default_factory=list)
    roofline: RooflineSizes = RooflineSizes(256 << 20, 1 << 21, 2e-3)
    pacing: Pacing = Pacing()


def _conv(name: str, c_in: int, hw: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
          n: int = 1, w: int | None = None) -> ConvShape:
    """A conv with 'same' padding (k // 2), as both networks use."""
    return ConvShape(name, n, c_in, hw, hw if w is None else w, c_out, k, stride, k // 2, groups)


def _dw(name: str, c: int, hw: int, stride: int = 1) -> ConvShape:
    return _conv(name, c, hw, c, 3, stride, groups=c)


# ResNet-50 (torchvision, v1.5: stride in the 3x3) and MobileNetV2 at 224x224, batch 1.
RESNET50 = [
    _conv("rn50.stem.7x7s2", 3, 224, 64, 7, 2),
    _conv("rn50.res2.3x3", 64, 56, 64, 3),
    _conv("rn50.res3.3x3", 128, 28, 128, 3),
    _conv("rn50.res4.3x3", 256, 14, 256, 3),
    _conv("rn50.res5.3x3", 512, 7, 512, 3),
    _conv("rn50.res3.3x3s2", 128, 56, 128, 3, 2),  # first block of a stage: strided 3x3
    _conv("rn50.res4.3x3s2", 256, 28, 256, 3, 2),
    _conv("rn50.res5.3x3s2", 512, 14, 512, 3, 2),
    _conv("rn50.res2.reduce1x1", 256, 56, 64, 1),
    _conv("rn50.res2.proj1x1", 64, 56, 256, 1),
    _conv("rn50.res3.proj1x1s2", 256, 56, 512, 1, 2),
    _conv("rn50.res4.proj1x1s2", 512, 28, 1024, 1, 2),
    _conv("rn50.res5.proj1x1s2", 1024, 14, 2048, 1, 2),
    _conv("rn50.res4.reduce1x1", 1024, 14, 256, 1),
]
MOBILENETV2 = [
    _conv("mnv2.stem.3x3s2", 3, 224, 32, 3, 2),
    _dw("mnv2.dw32@112", 32, 112),
    _dw("mnv2.dw96@112s2", 96, 112, 2),
    _dw("mnv2.dw144@56", 144, 56),
    _dw("mnv2.dw192@28", 192, 28),
    _dw("mnv2.dw384@14", 384, 14),
    _dw("mnv2.dw960@7", 960, 7),
    _conv("mnv2.expand1x1@28", 32, 28, 192, 1),
    _conv("mnv2.project1x1@14", 384, 14, 64, 1),
]

# im2col alone: 3x3 'same' convs whose matrix spans M x K from 256 to ~8192 each way, plus a strided
# 5x5, a 1x1 (pure repack) and a depthwise one (many groups, 4x channel padding).
IM2COL = [
    _conv("im2col.c64@64x128", 64, 64, 64, 3, w=128),  # M 8192, K 576
    _conv("im2col.c128@64", 128, 64, 128, 3),  # M 4096, K 1152
    _conv("im2col.c256@32", 256, 32, 256, 3),  # M 1024, K 2304
    _conv("im2col.c512@16", 512, 16, 512, 3),  # M 256, K 4608
    _conv("im2col.c896@32", 896, 32, 896, 3),  # M 1024, K 8064
    _conv("im2col.c32@128.5x5s2", 32, 128, 32, 5, 2),  # M 4096, K 800
    _conv("im2col.c1024@64.1x1", 1024, 64, 1024, 1),  # M 4096, K 1024
    _dw("im2col.dw144@112", 144, 112),  # G 144, M 12544, K 36
]

# im2col on matrices of 32 MiB and more (issue 14: >= 70 % of copy bandwidth), each within lavapipe's 128 MiB
# buffer limit: early 3x3 layers at batch 8 (ResNet/VGG-like, 55 MiB) and at 256x256 in one image (U-Net-like,
# 36 MiB: upstream's one-image 4W4C shader applies), MobileNetV2's widest depthwise layer at 112x112 (62 MiB
# native, 21 MiB upstream) and ResNet-50's 7x7/2 stem at batch 16 (C_in 3: 38 MiB native, 28 MiB upstream).
IM2COL_BIG = [
    _conv("im2col.b8.c64@112", 64, 112, 64, 3, n=8),
    _conv("im2col.unet.c64@256", 64, 256, 64, 3),
    _dw("im2col.dw144@112", 144, 112),
    _conv("im2col.b16.rn50.stem7x7s2", 3, 224, 64, 7, 2, n=16),
]

GEMM = [
    *(GemmShape(f"gemm.sq{n}", n, n, n) for n in (256, 512, 1024, 2048, 4096, 8192)),
    GemmShape("gemm.tallM", 8192, 512, 256),
    GemmShape("gemm.wideN", 256, 1024, 8192),
    GemmShape("gemm.deepK", 256, 8192, 256),
    GemmShape("gemm.3136x576x256", 3136, 576, 256),  # ResNet-like: 56x56 pixels, 3x3x64 taps
    GemmShape("gemm.4096x1024x2048", 4096, 1024, 2048),
    GemmShape("gemm.1024x8192x1024", 1024, 8192, 1024),
    GemmShape("gemm.8192x2048x4096", 8192, 2048, 4096),
]

FULL = Suite("full", conv=RESNET50 + MOBILENETV2, im2col=IM2COL + IM2COL_BIG[:2] + IM2COL_BIG[3:], gemm=GEMM,
             roofline=RooflineSizes(256 << 20, 1 << 21, 2e-3, spin_s=0.3),
             pacing=Pacing(variant_budget_s=0.06, idle_s=0.5, spin_s=0.25, warm_s=15.0))

# lavapipe on 2 CPU cores: well under a few minutes in all (about a minute with --reps 10).
QUICK = Suite(
    "quick",
    conv=[
        _conv("rn50.stem.7x7s2@56", 3, 56, 64, 7, 2),
        _conv("rn50.res2.3x3@28", 64, 28, 64, 3),
        _conv("rn50.res4.3x3@7", 256, 7, 256, 3),
        _conv("rn50.res3.proj1x1s2@28", 256, 28, 512, 1, 2),
        _dw("mnv2.dw144@14", 144, 14),
        _dw("mnv2.dw96@28s2", 96, 28, 2),
    ],
    im2col=[
        _conv("im2col.c64@32", 64, 32, 64, 3),
        _conv("im2col.c128@16", 128, 16, 128, 3),
        _dw("im2col.dw96@28", 96, 28),
    ],
    gemm=[
        GemmShape("gemm.sq256", 256, 256, 256),
        GemmShape("gemm.256x512x384", 256, 512, 384),
        GemmShape("gemm.512x256x512", 512, 256, 512),
        GemmShape("gemm.sq512", 512, 512, 512),
    ],
    roofline=RooflineSizes(16 << 20, 1 << 12, 20e-3, 16, spin_s=0.0, coop_subgroups=64),
    pacing=Pacing(variant_budget_s=0.05),  # slow variants on a CPU need no 10 samples
)

# seconds even on lavapipe: for tests and smoke runs
MICRO = Suite(
    "micro",
    conv=[_conv("micro.conv3x3", 8, 8, 8, 3)],
    im2col=[_conv("micro.im2col3x3", 8, 8, 8, 3)],
    gemm=[GemmShape("micro.gemm64", 64, 64, 64)],
    roofline=RooflineSizes(1 << 20, 256, 1e-3, 4, spin_s=0.0, coop_subgroups=8),
)

# the big im2col shapes alone with the full suite's roofline and pacing: `python -m bench --suite im2col
# --only im2col` measures copy bandwidth and every im2col variant (and upstream's, where .upstream/ has them)
IM2COL_SUITE = Suite("im2col", im2col=IM2COL_BIG, roofline=FULL.roofline, pacing=FULL.pacing)

SUITES = {s.name: s for s in (FULL, QUICK, MICRO, IM2COL_SUITE)}
