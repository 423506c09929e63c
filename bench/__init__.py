"""Benchmark suite of shaderkit's int8 conv kernels: `python -m bench --help`.

Modules: suite (shapes), measure (timing and stats), roofline (copy bandwidth and dot-product peak
probes), peer (PyTorch on the same GPU), kernels (our variants per shape), report (Markdown, JSON,
PNG), cli (the command line).
"""
