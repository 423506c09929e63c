"""The tensor-core GEMM templates' logic, through their emulated twins (`coop: emulated_*`,
templates/include/coopmat.glsl.j2), on what the generic property tests do not reach: several workgroup
blocks along M and N, K with and without a tail past the K step, two groups, OCg not a multiple of 4.
Accumulators are checked exactly (identity requantization of small operands), the requantizing epilogue
with bias and ReLU. Also: no picker takes an emulated variant, forcing one by name works, and every
code path of a shipped tensor-core variant has an emulated twin that lavapipe runs.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.tune import _accepts_gemm
from runtime.core import tuning
from runtime.core.device import default_device
from runtime.core.manifest import VariantEntry, load_manifest
from runtime.core.select import device_unfit
from runtime.families.q8ta_conv2d import oracle as reference
from runtime.families.q8ta_conv2d.op import run_conv2d_q8, run_gemm_q8
from runtime.oplib.gemm_q8 import emulated, gemm_entry
from runtime.oplib.q8_checks import first_mismatch, small_operands
from tests.fake_gpu import H100_LIMITS
from tests.test_properties import require_device_support

MANIFEST = load_manifest()
TENSOR_CORE = [e for e in MANIFEST.entries(role="gemm") if "coop" in e.axes]
EMULATED = [e for e in TENSOR_CORE if emulated(e.axes)]


def _shapes(entry: VariantEntry) -> dict[str, tuple[int, int, int, int]]:
    """(G, M, K4, OCg) per case, from the variant's block: the second block of each dimension partly
    filled, then whole blocks with a K that the K steps divide."""
    bm, bn = entry.declared["DISPATCH_BLOCK_M"], entry.declared["DISPATCH_BLOCK_N"]
    return {"tails": (2, bm + 37, 37, bn + 6), "whole": (1, 2 * bm + 4, 64, 2 * bn)}


def _run(entry: VariantEntry, G: int, M: int, K4: int, OCg: int, seed: int, *, exact: bool) -> str | None:
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (G, M, 4 * K4), dtype=np.int8)
    weight = rng.integers(-128, 128, (G * OCg, 4 * K4, 1, 1), dtype=np.int8)  # a 1x1 conv: Kp = C_in
    x_zp = int(rng.integers(-128, 128))
    if exact:
        a, weight = small_operands(a, weight, x_zp, rng)
    acc = reference.gemm_acc(a, weight, G) - x_zp * reference.weight_sums(weight).reshape(G, 1, -1)
    ones = np.ones(G * OCg, np.float32)
    if exact:
        got, _ = run_gemm_q8(a, weight, ones, None, groups=G, x_scale=1.0, x_zp=x_zp, out_scale=1.0, out_zp=0,
                             variant=entry.name, guard=True)
        return first_mismatch(got, np.clip(acc, -128, 127), 0)
    w_scales = rng.uniform(0.5, 2.0, G * OCg).astype(np.float32)
    bias = rng.uniform(-500.0, 500.0, G * OCg).astype(np.float32)
    out_scale = float(np.abs(acc).max() or 1) / 100.0
    got, _ = run_gemm_q8(a, weight, w_scales, bias, groups=G, x_scale=1.0, x_zp=x_zp, out_scale=out_scale,
                         out_zp=-5, activation="relu", variant=entry.name, guard=True)
    want = reference.requantize(acc, 1.0, w_scales, bias, out_scale, -5, "relu")
    return first_mismatch(got, want, 1)  # +-1: the epilogue's float32 rounding next to a tie


@pytest.mark.parametrize("entry", EMULATED, ids=[e.name for e in EMULATED])
@pytest.mark.parametrize("case", ["tails", "whole"])
def test_emulated_accumulators_exact_over_several_blocks(entry: VariantEntry, case: str) -> None:
    require_device_support(entry)
    G, M, K4, OCg = _shapes(entry)[case]
    problem = _run(entry, G, M, K4, OCg, seed=len(entry.name) + K4, exact=True)
    assert problem is None, f"{entry.name} G={G} M={M} K4={K4} OCg={OCg}: {problem}"


@pytest.mark.parametrize("entry", EMULATED, ids=[e.name for e in EMULATED])
def test_emulated_requantized_with_bias_and_relu(entry: VariantEntry) -> None:
    require_device_support(entry)
    G, M, K4, OCg = _shapes(entry)["tails"]
    problem = _run(entry, G, M, K4, OCg, seed=7, exact=False)
    assert problem is None, f"{entry.name} G={G} M={M} K4={K4} OCg={OCg}: {problem}"


def test_there_are_emulated_twins() -> None:
    assert EMULATED, "no emulated tensor-core GEMM variant in the manifest"
    assert all(not e.features or "cooperativeMatrixNV" not in e.features for e in EMULATED)
    assert all("subgroup_size" not in e.params for e in EMULATED)  # they run on any subgroup width


@pytest.mark.parametrize(("M", "OCg"), [(1, 1), (49, 512), (196, 256), (3136, 64), (4096, 4096), (8192, 8192)])
def test_no_picker_takes_an_emulated_variant(M: int, OCg: int) -> None:
    """On lavapipe the emulated variants are the only tensor-core ones that run: still never picked."""
    dev = default_device()
    entry = gemm_entry(MANIFEST, dev, OCg, M, "float32", None)
    assert not emulated(entry.axes), entry.name
    assert not any(_accepts_gemm(e) for e in EMULATED), "bench tune would time (and could choose) one"


def test_a_tuning_cache_naming_an_emulated_variant_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench tune` never records one (see above); a cache that does anyway (edited by hand) is not obeyed."""
    monkeypatch.setattr(tuning, "lookup", lambda *args, **kwargs: EMULATED[0].name)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 8, 6, 6), dtype=np.int8)
    w = rng.integers(-128, 128, (8, 8, 3, 3), dtype=np.int8)
    run = run_conv2d_q8(x, w, np.full(8, 0.01, np.float32), None, x_scale=0.05, x_zp=2, out_scale=2.0, out_zp=1,
                        padding=1)
    assert not emulated(MANIFEST.variants[run.gemm_variant].axes), run.gemm_variant


def test_an_emulated_variant_is_used_when_forced() -> None:
    entry = EMULATED[0]
    require_device_support(entry)
    assert gemm_entry(MANIFEST, default_device(), 8, 8, "float32", entry.name).name == entry.name


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_every_tensor_core_code_path_has_an_emulated_twin() -> None:
    """Per family: every value of every axis of its hardware variants (the MMA shape as its emulated
    name) and every subgroup count is some emulated variant's, which lavapipe runs. The block axis
    itself is exempt: its sizes change loop bounds and the grid, its subgroup counts are checked."""
    dev = default_device()
    by_family: dict[str, list[VariantEntry]] = defaultdict(list)
    for e in TENSOR_CORE:
        by_family[e.family].append(e)
    for family, entries in by_family.items():
        hardware = [e for e in entries if not emulated(e.axes)]
        twins = [e for e in entries if emulated(e.axes)]
        assert twins, f"{family}: no emulated twins"
        unfit = [f"{e.name}: {device_unfit(e, dev)}" for e in twins if device_unfit(e, dev)]
        assert not unfit or dev.info.cooperative_matrix, f"emulated twins lavapipe cannot run: {unfit}"
        for axis in hardware[0].axes:
            if axis == "block":
                continue
            want = {_key(_emulated_name(e.axes[axis]) if axis == "coop" else e.axes[axis]) for e in hardware}
            have = {_key(e.axes[axis]) for e in twins}
            assert want <= have, f"{family}: axis {axis} values {sorted(want - have)} have no emulated twin"
        groups = {e.local_size[0] // 32 for e in hardware}
        assert groups <= {e.local_size[0] // 32 for e in twins}, f"{family}: subgroup counts {groups}"


def _emulated_name(coop: dict[str, int]) -> str:
    return f"emulated_m{coop['m']}n{coop['n']}k{coop['k']}"


# -- the emulated twin runs the hardware variant's code ---------------------------------------------------

# each matrix operation of the two paths, reduced to one neutral spelling (include/coopmat.glsl.j2)
_SAME = [
    (re.compile(r"coopMatLoadNV\(([^,]+), \w+, (uint\(.*\)), (uint\(\w+\)), (?:true|false)\);"), r"LOAD(\1, \2, \3);"),
    (re.compile(r"(\S+) = CmFrag\(\d+u, (uint\(.*\)), (uint\(\w+\))\);"), r"LOAD(\1, \2, \3);"),
    (re.compile(r"coopMatMulAddNV\("), "MMA("),
    (re.compile(r"cm_mma\("), "MMA("),
    (re.compile(r"coopMatStoreNV\(([^,]+), \w+, (uint\(.*\)), (uint\(\w+\)), false\);"), r"STORE(\1, \2, \3);"),
    (re.compile(r"cm_store\(([^,]+), \d+u, (uint\(.*\)), (uint\(\w+\))\);"), r"STORE(\1, \2, \3);"),
    (re.compile(r"CM_ACC\(0\)|cm_zero\(\)"), "ZERO"),
    (re.compile(r"subgroupMemoryBarrierShared\(\); subgroupBarrier\(\);|barrier\(\);"), "SYNC;"),
    (re.compile(r"int\(gl_SubgroupID\)|\(int\(gl_LocalInvocationIndex\) / 32\)"), "SUBGROUP"),
    (re.compile(r"int\(gl_SubgroupInvocationID\)|\(int\(gl_LocalInvocationIndex\) % 32\)"), "LANE"),
]


def _main_body(glsl: str) -> str:
    body = glsl[glsl.index("void main()"):]
    for pattern, neutral in _SAME:
        body = pattern.sub(neutral, body)
    return body


def _hardware_twin(entry: VariantEntry) -> VariantEntry:
    coop = entry.axes["coop"]
    want = dict(entry.axes, coop=dict(zip("mnk", map(int, re.findall(r"\d+", coop)), strict=True)))
    twins = [e for e in TENSOR_CORE if e.family == entry.family and dict(e.axes) == want]
    assert len(twins) == 1, f"{entry.name}: no hardware variant with axes {want}"
    return twins[0]


@functools.cache
def _render_main() -> Callable[[str], str]:
    """name -> main() of the variant's GLSL, rendered from variants.yaml and the templates now."""
    from codegen.build import load_specs
    from codegen.project import Project
    from codegen.render import Renderer

    project = Project.default()
    config, specs = load_specs(project)
    by_name = {s.name: s for s in specs}
    renderer = Renderer(project.template_dir)
    return lambda n: _main_body(renderer.render(by_name[n].template, by_name[n].context(config), n).glsl)


@pytest.mark.parametrize("entry", EMULATED, ids=[e.name for e in EMULATED])
def test_emulated_twin_is_the_hardware_code_with_software_matrices(entry: VariantEntry) -> None:
    """main() of the emulated twin equals its hardware variant's once each matrix operation is spelled
    the same way: the tiling, K tail, bounds and epilogue that lavapipe checks are the GPU's."""
    hardware = _hardware_twin(entry)
    bodies = [_render_main()(n) for n in (entry.name, hardware.name)]
    assert "MMA(" in bodies[0] and "LOAD(" in bodies[0] and "STORE(" in bodies[0]
    assert bodies[0] == bodies[1], f"{entry.name} and {hardware.name} differ beyond the matrix operations"


def _tensor_core_gpu() -> Any:
    """A device as an H100 reports itself to the pickers: 48 KiB of shared memory, subgroups of 32, int8
    cooperative-matrix shapes M16 N16 K32 and M16 N8 K32, every feature."""
    shapes = [{"M": 16, "N": n, "K": 32, "A": "sint8", "B": "sint8", "C": "sint32", "Result": "sint32"}
              for n in (16, 8)]
    info = SimpleNamespace(name="tensor-core GPU", subgroup_size=32, cooperative_matrix=shapes,
                           limits=H100_LIMITS)
    return SimpleNamespace(info=info, supports=lambda features: [])


@pytest.mark.parametrize(("M", "OCg", "K4"), [(2048, 2048, 512), (8192, 8192, 2048), (4096, 2048, 256)])
def test_heuristic_on_a_tensor_core_gpu_big(M: int, OCg: int, K4: int) -> None:
    """A GEMM that fills the GPU with the largest blocks gets them, K step 64 in one stage, in the most
    subgroups (16 of 64 x 32): the fastest at 4096^3, 8192^3 and 8192 x 2048 x 4096 in the H200's
    bench, 99.5 % of the fastest at 2048^3 (bench/results/2026-12-03_nvidia-h200/bench_gemm.md)."""
    entry = gemm_entry(MANIFEST, _tensor_core_gpu(), OCg, M, "float32", None, K4=K4)
    block = entry.declared["DISPATCH_BLOCK_M"] * entry.declared["DISPATCH_BLOCK_N"]
    assert entry.family == "q8ta_gemm_coopmat_pipe", entry.name
    assert (block, entry.axes["kstep"]["k"], entry.axes["stages"]["s"]) == (128 * 256, 64, 1), entry.name
    assert entry.local_size[0] // 32 == 16 and entry.axes["warp"].get("scratch") == "tile", entry.name


def test_a_gpu_with_smaller_workgroups_gets_a_variant_that_fits() -> None:
    """Workgroups of at most 256 invocations (Vulkan guarantees 128): the 512-invocation 16-subgroup
    variants are unfit, with the limit named, and the picker takes the best variant that fits."""
    gpu = _tensor_core_gpu()
    gpu.info.limits = dict(H100_LIMITS, maxComputeWorkGroupInvocations=256)
    big = [e for e in TENSOR_CORE if not emulated(e.axes) and e.local_size[0] > 256]
    assert big, "no tensor-core variant over 256 invocations any more"
    assert {device_unfit(e, gpu) for e in big} == {
        f"its workgroup has {big[0].local_size[0]} invocations, over maxComputeWorkGroupInvocations = 256"}
    entry = gemm_entry(MANIFEST, gpu, 4096, 4096, "float32", None, K4=1024)
    assert entry.local_size[0] <= 256 and entry.family == "q8ta_gemm_coopmat_pipe", entry.name
    assert device_unfit(entry, _tensor_core_gpu()) is None
    gpu.info.limits = dict(H100_LIMITS, maxComputeWorkGroupSize=(128, 1024, 64))
    assert device_unfit(big[0], gpu) == (
        f"its workgroup is {big[0].local_size[0]} invocations along x, over maxComputeWorkGroupSize[0] = 128")


def test_heuristic_takes_the_most_subgroups_of_a_block() -> None:
    """M 2048, N 1024: one wave of 128 x 128 blocks; of those, 8 subgroups of 64 x 32 with two K steps in
    registers (365-384 TOPS at 2048^3 and 4096^3 on the H200) over 4 of 64 x 64 (220-343 TOPS, K step 32,
    64 or 128; bench/results/2026-12-03_nvidia-h200/experiments/prefetch)."""
    entry = gemm_entry(MANIFEST, _tensor_core_gpu(), 1024, 2048, "float32", None, K4=512)
    assert (entry.declared["DISPATCH_BLOCK_M"], entry.declared["DISPATCH_BLOCK_N"]) == (128, 128), entry.name
    assert entry.axes["warp"] == {"wm": 64, "wn": 32} and entry.axes["stages"].get("d") == 2, entry.name


@pytest.mark.parametrize(("M", "OCg", "K4"), [(49, 512, 1152), (196, 256, 576), (3136, 64, 144), (256, 256, 64)])
def test_heuristic_on_a_tensor_core_gpu_small(M: int, OCg: int, K4: int) -> None:
    """Too small to fill the GPU: still the pipelined GEMM (the fastest on every small shape of that bench),
    in blocks small enough to spread, never an emulated twin."""
    entry = gemm_entry(MANIFEST, _tensor_core_gpu(), OCg, M, "float32", None, K4=K4)
    assert entry.family == "q8ta_gemm_coopmat_pipe" and not emulated(entry.axes), entry.name
    assert entry.declared["DISPATCH_BLOCK_M"] * entry.declared["DISPATCH_BLOCK_N"] <= 64 * 64, entry.name


def test_heuristic_prefers_one_wave_of_bigger_blocks() -> None:
    """ResNet-50's res3 1x1/2 projection (M 784, N 512): 104 blocks of 64 x 64 (one wave on an H200) ran
    12.7 us, 208 of 64 x 32 (two waves) 18.1 us (bench/results/2026-12-03_nvidia-h200)."""
    entry = gemm_entry(MANIFEST, _tensor_core_gpu(), 512, 784, "float32", None, K4=64)
    assert entry.declared["DISPATCH_BLOCK_M"] * entry.declared["DISPATCH_BLOCK_N"] == 64 * 64, entry.name


def test_heuristic_avoids_a_k_step_that_pads_k() -> None:
    """K4 144 (K 576): K step 64 divides it, 128 would compute 11 % zeros; 1152 takes the deeper step."""
    picks = {K4: gemm_entry(MANIFEST, _tensor_core_gpu(), 256, 3136, "float32", None, K4=K4) for K4 in (144, 1152)}
    assert picks[144].axes["kstep"]["k"] == 64 and picks[1152].axes["kstep"]["k"] == 128, picks


def _packed_dot_gpu() -> Any:
    """A GPU with packed int8 dot products and no cooperative matrices (every other feature)."""
    info = SimpleNamespace(name="packed-dot GPU", subgroup_size=32, cooperative_matrix=[],
                           limits=H100_LIMITS)
    return SimpleNamespace(info=info, supports=lambda features: [f for f in features if "ooperative" in f])


@pytest.mark.parametrize(("M", "OCg", "K4"), [(512, 512, 128), (4096, 4096, 1024), (3136, 256, 144), (49, 512, 1152)])
@pytest.mark.parametrize("scale_dtype", ["float32", "float16"])
def test_heuristic_on_a_packed_dot_gpu(M: int, OCg: int, K4: int, scale_dtype: str) -> None:
    """Without tensor cores the pipelined packed-dot GEMM, 1.1-1.7x the staged one on an H200, whatever
    the scales' dtype (its float32 scales serve float16 ones)."""
    entry = gemm_entry(MANIFEST, _packed_dot_gpu(), OCg, M, scale_dtype, None, K4=K4)
    assert entry.family == "q8ta_gemm_dot_pipe", entry.name
