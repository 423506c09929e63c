"""codegen/manifest.schema.json describes build/manifest.json exactly, and docs/manifest.md covers it."""

from __future__ import annotations

import copy
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from codegen.schema import Feature
from tests.codegen.codegen_fixtures import MANIFEST_SCHEMA, REPO, assert_valid_manifest, make_tiny, schema_errors

SCHEMA = json.loads(MANIFEST_SCHEMA.read_text())
DOC = REPO / "docs" / "manifest.md"


def test_schema_is_a_valid_2020_12_schema() -> None:
    import jsonschema

    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_feature_names_match_the_variants_schema() -> None:
    assert SCHEMA["$defs"]["feature"]["enum"] == list(typing.get_args(Feature))


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tiny = make_tiny(tmp_path_factory.mktemp("schema"))
    assert tiny.build().ok
    return assert_valid_manifest(tiny.out)


def test_fresh_tiny_build_validates(tiny_manifest: dict[str, Any]) -> None:
    assert tiny_manifest["optimized"] is False
    assert all("glsl_hash" in v for v in tiny_manifest["variants"].values())


def _broken(doc: dict[str, Any], how: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    entry = doc["variants"]["beta_wg16"]
    if how == "no_spv":
        del entry["spv"]
    elif how == "extra_key":
        entry["colour"] = 1
    elif how == "spv_outside":
        entry["spv"] = "../x.spv"
    elif how == "bad_sha":
        entry["sha256"] = "XYZ"
    elif how == "bad_access":
        entry["bindings"][0]["access"] = "rw"
    elif how == "short_local_size":
        entry["local_size"] = [1, 1]
    elif how == "entry_a_string":
        doc["variants"]["beta_wg16"] = "beta"
    elif how == "variants_a_list":
        doc["variants"] = []
    elif how == "format_2":
        doc["format"] = 2
    elif how == "no_optimized":
        del doc["optimized"]
    elif how == "unsafe_name":
        doc["variants"]["../x"] = entry
    elif how == "template_up":
        entry["template"] = "../x.glsl.j2"
    return doc


@pytest.mark.parametrize(
    "how",
    [
        "no_spv",
        "extra_key",
        "spv_outside",
        "bad_sha",
        "bad_access",
        "short_local_size",
        "entry_a_string",
        "variants_a_list",
        "format_2",
        "no_optimized",
        "unsafe_name",
        "template_up",
    ],
)
def test_schema_is_strict(tiny_manifest: dict[str, Any], how: str) -> None:
    assert schema_errors(_broken(tiny_manifest, how))


def _schema_keys(node: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        keys |= set(node.get("properties", {}))
        for value in node.values():
            keys |= _schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            keys |= _schema_keys(value)
    return keys


def test_docs_explain_every_key() -> None:
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", text, flags=re.M))
    missing = _schema_keys(SCHEMA) - documented
    assert not missing, f"docs/manifest.md has no table row for {sorted(missing)}"
    assert "codegen/manifest.schema.json" in text


def test_optimized_build_validates(tmp_path: Path) -> None:
    tiny = make_tiny(tmp_path)
    proc = tiny.cli("build", "-O")
    assert proc.returncode == 0, proc.stderr
    assert assert_valid_manifest(tiny.out)["optimized"] is True
