"""The tables the codegen and the runtime each keep on purpose agree.

codegen never imports runtime and the runtime runs without the codegen (load_shader reflects SPIR-V
in pure Python), so the SPIR-V capability -> Vulkan feature map lives in both codegen/compile.py and
runtime/core/reflect.py, and the feature names in codegen/schema.py and runtime/core/features.py.
These tests are what keeps the copies from drifting apart.
"""

from __future__ import annotations

from typing import get_args

from codegen import compile as codegen_compile
from codegen import schema
from runtime.core import reflect
from runtime.core.features import KNOWN_FEATURES


def test_capability_features_are_the_same_map() -> None:
    assert reflect.CAPABILITY_FEATURES == codegen_compile.CAPABILITY_FEATURES


def test_every_feature_a_variant_may_declare_is_known_to_the_runtime() -> None:
    declarable = set(get_args(schema.Feature))
    assert declarable <= set(KNOWN_FEATURES), sorted(declarable - set(KNOWN_FEATURES))
    needed = set(codegen_compile.CAPABILITY_FEATURES.values())
    assert needed <= declarable, sorted(needed - declarable)
