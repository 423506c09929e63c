"""The typed manifest: every entry parses into a VariantEntry; damage is reported with entry and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.core.manifest import ManifestError, VariantEntry, load_manifest, parse_manifest

MANIFEST = load_manifest()
RAW = json.loads(MANIFEST.path.read_text())


def test_every_entry_is_typed() -> None:
    assert MANIFEST.variants and MANIFEST.digest
    for name, entry in MANIFEST.variants.items():
        assert isinstance(entry, VariantEntry) and entry.name == name
        assert entry.spv_path.is_file(), entry.spv_path
        assert [b.binding for b in entry.bindings] == sorted(b.binding for b in entry.bindings)
        assert entry.binding(entry.bindings[0].name) is entry.bindings[0]


def _damaged(mutate: Any) -> bytes:
    doc = json.loads(json.dumps(RAW))
    mutate(doc)
    return json.dumps(doc).encode()


FIRST = next(iter(RAW["variants"]))


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d["variants"].__setitem__(FIRST, "a string"), [FIRST, "expected an object"]),
        (lambda d: d["variants"][FIRST].pop("spv"), [FIRST, "'spv' is missing"]),
        (lambda d: d["variants"][FIRST].__setitem__("local_size", [1, 2]), [FIRST, "local_size"]),
        (lambda d: d["variants"][FIRST]["bindings"][0].__setitem__("kind", "image"), [FIRST, "bindings[0]", "kind"]),
        (lambda d: d["variants"][FIRST]["bindings"][0].__setitem__("binding", -1), [FIRST, "binding"]),
        (lambda d: d.__setitem__("variants", []), ["'variants' must be an object"]),
        (lambda d: d.__setitem__("format", 99), ["format 99", "make shaders"]),
        (lambda d: d.__setitem__("layouts", {"x": 1}), ["'layouts'"]),
    ],
)
def test_damage_names_entry_and_key(mutate: Any, words: list[str]) -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(_damaged(mutate), MANIFEST.path)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="make shaders"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ManifestError, match="not a file"):
        load_manifest(tmp_path / "manifest.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)


def test_unknown_variant_lists_similar() -> None:
    with pytest.raises(ValueError, match=r"unknown variant 'q8ta_gemm_float32_sdot_t4x8_wg64_stag'.*"
                       r"q8ta_gemm_float32_sdot_t4x8_wg64_stage"):
        MANIFEST.variant("q8ta_gemm_float32_sdot_t4x8_wg64_stag")
