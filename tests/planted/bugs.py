"""The planted bugs: one per class of bug the test suite must catch.

Each edit replaces text that must occur in the file (templates/ or variants.yaml of the copy); a bug
whose text no longer occurs is reported as "does not apply", so the table never passes silently
after a template moves on. `tests` narrows the property tests run (substrings of the test id, any
of which selects a test) where running every touched variant would take long; the variants whose
GLSL the bug changes are always the pool the tests come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the copy's root: templates/... or variants.yaml
    old: str
    new: str


@dataclass(frozen=True)
class Bug:
    name: str
    klass: str  # the class of bug (docs/testing.md)
    where: str  # what it changes, for the table
    edits: tuple[Edit, ...]
    tests: tuple[str, ...] = ()  # test-id substrings that select the tests to run; () = all touched
    build_fails_with: str | None = None  # the build itself must catch it, with this text in its error
    per_variant: int = 0  # at most this many tests per touched variant and level (0: all)
    maxfail: int | None = None  # stop after this many failing tests (None: the command line's --maxfail)
    notes: str = field(default="", compare=False)


EPILOGUE = "templates/include/epilogue.glsl.j2"
IM2COL_Q8 = "templates/include/im2col_q8.glsl.j2"
GEMM = "templates/include/gemm.glsl.j2"
COOPMAT = "templates/q8ta_conv2d/q8ta_gemm_coopmat.glsl.j2"
IM2COL_GENERIC = "templates/q8ta_conv2d/q8ta_im2col_generic.glsl.j2"
GEMM_Q8_TEMPLATE = "templates/q8ta_conv2d/q8ta_gemm.glsl.j2"
# the GEMM-level cells of the plain GEMM variants: the epilogue bugs show there first
GEMM_TESTS = ("q8ta_conv2d.gemm-q8ta_gemm_",)

BUGS: tuple[Bug, ...] = (
    Bug(
        "zp-fill-dropped", "classic", "int8 im2col: padding taps hold 0 instead of the input zero point",
        (Edit(IM2COL_Q8, "const int zpw = i8_splat(p.x_zp);", "const int zpw = 0;"),
         Edit(IM2COL_Q8, "ivec4 v = ivec4(p.x_zp);", "ivec4 v = ivec4(0);")),
        tests=("q8ta_conv2d.im2col-",),
    ),
    Bug(
        "off-by-one-bound", "classic", "GEMM (native matrix): a padding row past M is stored (m <= M)",
        (Edit(GEMM, "  return m < p.dims.x ? m : -1;", "  return m <= p.dims.x ? m : -1;"),),
        tests=("q8ta_conv2d.gemm-q8ta_gemm_", "f_conv2d.float_gemm-"), per_variant=4,
    ),
    Bug(
        "final-clamp-skipped", "classic", "int8 epilogue: no clamp to [-128, 127] after + out_zp",
        (Edit(EPILOGUE, "  return clamp(int(r) + out_zp, -128, 127);", "  return int(r) + out_zp;"),),
        tests=GEMM_TESTS, per_variant=3,
    ),
    Bug(
        "weight-sum-sign", "classic", "int8 epilogue: x_zp * wsum added instead of subtracted",
        (Edit(EPILOGUE, "const int centered = acc - x_zp * {{ wsum_buf }}[oc];",
              "const int centered = acc + x_zp * {{ wsum_buf }}[oc];"),),
        tests=GEMM_TESTS, per_variant=3,
    ),
    Bug(
        "truncating-requant", "1 rounding mode", "int8 epilogue: trunc() where roundEven() belongs",
        (Edit(EPILOGUE, "const float r = clamp(roundEven(y / out_scale), -256.0, 256.0);",
              "const float r = clamp(trunc(y / out_scale), -256.0, 256.0);"),),
        tests=GEMM_TESTS, per_variant=3,
    ),
    Bug(
        "truncating-requant-dwconv", "1 rounding mode", "the same trunc(), run on the direct depthwise conv",
        (Edit(EPILOGUE, "const float r = clamp(roundEven(y / out_scale), -256.0, 256.0);",
              "const float r = clamp(trunc(y / out_scale), -256.0, 256.0);"),),
        tests=("q8ta_dwconv.dwconv-",), per_variant=2,
        notes="its check has no exact-tie pass: the tie-aware rule alone",
    ),
    Bug(
        "coopmat-k-tail", "2 tensor-core logic", "coopmat GEMM: the last, partial K step is skipped",
        (Edit(COOPMAT, "for (int k0 = 0; k0 < K4; k0 += {{ KW4 }}) {",
              "for (int k0 = 0; k0 + {{ KW4 }} <= K4; k0 += {{ KW4 }}) {"),),
        tests=("emulated",),
        notes="caught by the `emulated` coopmat variants, the only ones lavapipe runs",
    ),
    Bug(
        "4c1w-only-offset", "3 coverage", "generic int8 im2col: a width-fastest fast path steps W by C's stride",
        (Edit(IM2COL_GENERIC,
              "int load_word(int n, int h, int w, int cw) { "
              "return t_in[layout_element_offset(ivec4(w, h, 4 * cw, n)) >> 2]; }",
              "int load_word(int n, int h, int w, int cw) {\n"
              "  if ((LAYOUT_HASH & 15) == 0 && PACKED_DIM == 2) {  // width fastest: a row of words\n"
              "    return t_in[(layout_element_offset(ivec4(0, h, 4 * cw, n)) >> 2) + w * int(t_meta.strides[0].z)];\n"
              "  }\n"
              "  return t_in[layout_element_offset(ivec4(w, h, 4 * cw, n)) >> 2];\n"
              "}"),),
        tests=("q8ta_conv2d.im2col-",), maxfail=1000,
        notes="only the 4c1w layout has W fastest with C packed; every 4c1w cell draws it",
    ),
    Bug(
        "dispatch-block-overstated", "3 coverage", "int8 GEMM template states twice its rows per workgroup "
        "(the host dispatches half the workgroups)",
        (Edit(GEMM_Q8_TEMPLATE, "{{ common.dispatch_block(BM, BN) }}", "{{ common.dispatch_block(2 * BM, BN) }}"),),
        tests=("-m_tail]", "-k_tail]"), maxfail=1000,
        notes="only M > DISPATCH_BLOCK_M shows it: the m_tail cells force it",
    ),
    Bug(
        "golden-swapped-dims", "5 layout intent", "variants.yaml: 4w4c order [N, H, C, W] (two block dims swapped)",
        (Edit("variants.yaml", "    outer_block: 4\n    order: [N, H, W, C]\n",
              "    outer_block: 4\n    order: [N, H, C, W]\n"),),
        build_fails_with="layouts.4w4c.examples[",
    ),
)


def by_name(names: list[str]) -> list[Bug]:
    known = {b.name: b for b in BUGS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown planted bug(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]
