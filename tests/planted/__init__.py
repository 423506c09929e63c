"""Planted bugs: each one applied to a copy of templates/ (or variants.yaml), built into a temporary
directory and checked with the CI-profile property tests of the variants it touches.

`python -m tests.planted` prints the table docs/testing.md keeps; `--only NAME` runs some of them.
The real templates/ and build/ are never written: the tool copies them.
"""
