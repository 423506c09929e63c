"""tests/differential.py: the -O differential of `make fuzz` reports what differs, by variant."""

from __future__ import annotations

import json
from pathlib import Path

from tests.differential import findings, main, variant_of

NODE = "tests/test_properties.py::test_cell_matches_oracle[q8ta_conv2d.gemm-{}-k_tail]"


def _ledger(**outcomes: tuple[str, str]) -> dict:
    return {"outcomes": {NODE.format(v): list(o) for v, o in outcomes.items()}}


def test_variant_of_reads_the_test_id() -> None:
    gemm = "q8ta_gemm_float32_dot_t4x4_wg64_nostage"
    assert variant_of(NODE.format(gemm)) == gemm
    assert variant_of("tests/test_properties.py::test_cell_matches_oracle[f_conv2d.float_conv-f_im2col_generic"
                      "_float32_wg64-4c1w-stride_w]") == "f_im2col_generic_float32_wg64"


def test_findings_name_the_variant_and_what_differs() -> None:
    plain = _ledger(a=("passed", ""), b=("passed", ""), c=("skipped", ""), d=("failed", "x"))
    opt = _ledger(a=("passed", ""), b=("failed", "gemm check of b failed: 3 of 8 elements differ"), c=("passed", ""),
                  d=("failed", "x"))
    found = findings(plain, opt, {"a", "b", "c", "d", "e"}, {"a", "b", "c", "d"})
    lines = [f.line() for f in found]
    assert lines[0].startswith("FINDING e: in the plain build, missing from the -O build")
    assert lines[1] == ("FINDING b: q8ta_conv2d.gemm-b-k_tail: passed without -O, failed with -O: "
                        "gemm check of b failed: 3 of 8 elements differ")
    assert len(lines) == 2  # skips and failures on both builds are no finding


def test_main_exit_status(tmp_path: Path) -> None:
    for name, doc in (("plain.json", _ledger(a=("passed", ""))), ("opt.json", _ledger(a=("passed", ""))),
                      ("m.json", {"variants": {"a": {}}}), ("bad.json", _ledger(a=("failed", "boom")))):
        (tmp_path / name).write_text(json.dumps(doc))
    args = ["--plain-manifest", str(tmp_path / "m.json"), "--opt-manifest", str(tmp_path / "m.json")]
    assert main([str(tmp_path / "plain.json"), str(tmp_path / "opt.json"), *args]) == 0
    assert main([str(tmp_path / "plain.json"), str(tmp_path / "bad.json"), *args]) == 1
