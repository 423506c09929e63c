"""Benchmark suite of shaderkit's int8 conv kernels: `python -m bench --help`, `python -m bench tune --help`.

Modules: suite (shapes, pacing), measure (the two timings, stats), roofline (a peak per unit: copy,
packed-dot, integer, tensor-core), spec (spec-sheet int8 peaks), clocks (nvidia-smi readings, the
warm-up spinner), peer (PyTorch on the same GPU, at its best), kernels (our variants per shape), tune
(the tuning cache writer), report (Markdown, JSON, PNG), options (what the commands share), cli (the
command line).

Timing (both sides alike): *kernel* = GPU time of the kernels alone; *stream* = per-call time of N calls
back to back. See bench/measure.py and bench/peer.py.

Tuning cache: `python -m bench tune [--quick]` (or `make tune`) times every variant that fits the device
on each shape class conv2d_q8 uses and writes ``<build dir>/tuning/<device>.json`` (``build/`` or
``$SHADERKIT_BUILD``), keyed by device name, vendor, driver (name + version) and the manifest's sha256
digest; conv2d_q8's pickers read it before their heuristics and fall back to them where it has no entry
or names a variant that is missing or cannot serve the call. A cache of another key is ignored whole.
Invalidate: rebuild (`make shaders` gives a new digest), update the driver, `rm -r build/tuning`;
``SHADERKIT_TUNING=off`` makes the ops ignore it for one run. Reader and writer: runtime/core/tuning.py.
"""
