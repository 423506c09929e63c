"""Runnable examples: real network blocks built from shaderkit's int8 ops (``python -m examples.<name>``)."""
