"""Families: every subpackage here is one (found by runtime.core.registry, never imported by the core).

A family package holds its op (host side), its NumPy oracle (imports nothing but NumPy), its checks
and its Hypothesis strategies, and registers itself in its ``__init__``. See docs/adding-a-family.md.
"""
