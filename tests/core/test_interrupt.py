"""Ctrl-C (or any exception) between vkQueueSubmit and the end of the fence wait.

Nothing the GPU may still use is freed or reset before it is done: the interrupted call raises
only once the GPU has finished, and the device keeps giving right answers afterwards.

The work is tests/core/shaders/spin.comp: a few tenths of a second of hashing on lavapipe, then a
marker per invocation, so "has the GPU finished?" is a read of the markers. lavapipe's
vkQueueSubmit returns before the work runs, so an exception raised right after it lands while
the work is in flight.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runtime
from runtime.core.device import Device, Step
from runtime.core.manifest import VariantEntry
from runtime.core.vkapi import vk
from runtime.families.q8ta_conv2d.oracle import conv2d_q8_reference
from tests.core.test_runtime import SHADERS, compile_variant

REPO = Path(__file__).resolve().parents[2]
N = 256  # invocations of spin.comp; ~0.2 s on lavapipe with ITERATIONS
ITERATIONS = 60000  # per invocation (x 8 steps); llvmpipe caps a loop at 65535 iterations
MARKER = 0x5EED


@pytest.fixture(scope="module")
def spin(tmp_path_factory: pytest.TempPathFactory) -> VariantEntry:
    return compile_variant(SHADERS / "spin.comp", tmp_path_factory.mktemp("spin"))


@pytest.fixture
def dev() -> Iterator[Device]:
    with Device() as device:
        yield device


def spin_step(dev: Device, spin: VariantEntry, out: Any, seed: int) -> Step:
    """One spin dispatch; its input is an ndarray, so the run uploads it to a temporary buffer
    that the run itself frees (the object a premature free would hit)."""
    data = np.random.default_rng(seed).integers(0, 2**32, 64, dtype=np.uint32)
    push = {"iterations": ITERATIONS, "marker": MARKER, "n": N}
    return Step(dev.pipeline(spin), {0: out, 1: data}, push, (N // 8, 1, 1))


def expected(dev: Device, spin: VariantEntry, seed: int) -> np.ndarray:
    with dev.alloc(8 * N, fill=0) as out:
        dev.run([spin_step(dev, spin, out, seed)])
        return out.read(np.uint32)


def finished(out: Any) -> bool:
    """Every invocation wrote its marker: the GPU is done with the dispatch."""
    return bool((out.read(np.uint32)[N:] == MARKER).all())


def conv_is_right(dev: Device, seed: int) -> None:
    rng = np.random.default_rng(seed)
    kwargs = {
        "x": rng.integers(-128, 128, (1, 8, 7, 5), dtype=np.int8),
        "weight": rng.integers(-128, 128, (4, 8, 3, 3), dtype=np.int8),
        "w_scales": np.full(4, 0.01, np.float32), "bias": np.zeros(4, np.float32),
        "x_scale": 0.05, "x_zp": 3, "out_scale": 0.5, "out_zp": -2,
    }
    want, _ = conv2d_q8_reference(**kwargs)
    got = runtime.conv2d_q8(**kwargs, device=dev)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def raising_after(real: Callable[..., Any], exc: BaseException) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        real(*args)
        raise exc
    return call


def raising_before(exc: BaseException) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        raise exc
    return call


INJECTIONS = {
    # Ctrl-C landing in the Python right after the driver's vkQueueSubmit returned
    "interrupt-after-submit": lambda v: ("vkQueueSubmit", raising_after(v.vkQueueSubmit, KeyboardInterrupt())),
    # ... or right before the fence wait begins
    "interrupt-before-wait": lambda v: ("vkWaitForFences", raising_before(KeyboardInterrupt())),
    # any other exception there is handled the same way and keeps its type
    "error-after-submit": lambda v: ("vkQueueSubmit", raising_after(v.vkQueueSubmit, RuntimeError("injected"))),
}
RELEASES = ("vkFreeMemory", "vkDestroyBuffer", "vkResetDescriptorPool", "vkDestroyDescriptorPool",
            "vkResetCommandBuffer", "vkResetFences", "vkDestroyQueryPool")


@pytest.mark.parametrize("injection", sorted(INJECTIONS))
def test_exception_after_submit_waits_for_the_gpu(
    injection: str, dev: Device, spin: VariantEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = vk()
    want = expected(dev, spin, seed=1)
    out = dev.alloc(8 * N, fill=0)
    # every free or reset after the submission must find the dispatch finished
    submitted: list[bool] = []
    releases: list[tuple[str, bool]] = []
    real_submit = v.vkQueueSubmit

    def submit(*args: Any) -> Any:
        result = real_submit(*args)
        submitted.append(True)
        return result

    def spy(name: str) -> Callable[..., Any]:
        real = getattr(v, name)

        def call(*args: Any) -> Any:
            if submitted:
                releases.append((name, finished(out)))
            return real(*args)
        return call

    monkeypatch.setattr(v, "vkQueueSubmit", submit)
    for name in RELEASES:
        monkeypatch.setattr(v, name, spy(name))
    name, fault = INJECTIONS[injection](v)
    monkeypatch.setattr(v, name, fault)
    raised = KeyboardInterrupt if injection.startswith("interrupt") else RuntimeError

    with pytest.raises(raised):
        dev.run([spin_step(dev, spin, out, seed=1)])
    assert submitted, "the injection point was never reached"
    assert finished(out), "the interrupted call returned while its dispatch was still running"
    early = [name for name, done in releases if not done]
    assert not early, f"released while in flight: {early}"
    assert any(name == "vkFreeMemory" for name, _ in releases), "the temporary input was never freed"

    monkeypatch.undo()
    np.testing.assert_array_equal(out.read(np.uint32), want)  # the interrupted dispatch itself ran right
    out.free()
    # the device is usable and every later answer right
    for seed in (2, 3):
        np.testing.assert_array_equal(expected(dev, spin, seed), expected(dev, spin, seed))
        with dev.alloc(8 * N, fill=0) as again:
            dev.run([spin_step(dev, spin, again, seed)])
            assert finished(again)
    conv_is_right(dev, seed=4)
    assert dev.live_objects()["buffers"] == 0


def test_repeated_interrupts_keep_the_device_right(
    dev: Device, spin: VariantEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupt every other call for a while; answers between and after stay right."""
    v = vk()
    want = expected(dev, spin, seed=5)
    real_submit = v.vkQueueSubmit
    for i in range(6):
        out = dev.alloc(8 * N, fill=0)
        if i % 2 == 0:
            monkeypatch.setattr(v, "vkQueueSubmit", raising_after(real_submit, KeyboardInterrupt()))
            with pytest.raises(KeyboardInterrupt):
                dev.run([spin_step(dev, spin, out, seed=5)])
            monkeypatch.undo()
        else:
            dev.run([spin_step(dev, spin, out, seed=5)])
        np.testing.assert_array_equal(out.read(np.uint32), want)
        out.free()
    conv_is_right(dev, seed=6)


CHILD = textwrap.dedent('''
    import sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from runtime.core.device import Device, Step
    from tests.core.test_runtime import SHADERS, compile_variant
    from tests.core import test_interrupt as t

    spin = compile_variant(SHADERS / "spin.comp", Path({tmp!r}))
    dev = Device()
    want = t.expected(dev, spin, seed=7)
    interrupts, runs = 0, 0
    print("ready", flush=True)
    while interrupts < {count}:
        out = None
        try:
            while True:
                out = None
                out = dev.alloc(8 * t.N, fill=0)
                dev.run([t.spin_step(dev, spin, out, seed=7)])
                if not np.array_equal(out.read(np.uint32), want):
                    print("WRONG", flush=True)
                    sys.exit(2)
                out.free()
                runs += 1
        except KeyboardInterrupt:
            interrupts += 1
            if out is not None and not out.freed:
                words = out.read(np.uint32)
                # cut short before the submit (nothing ran) or after it (all ran); never half
                if words.any() and not np.array_equal(words, want):
                    print("EARLY", flush=True)
                    sys.exit(3)
                out.free()
            print("interrupted", flush=True)
    for seed in (8, 9):
        assert np.array_equal(t.expected(dev, spin, seed), t.expected(dev, spin, seed))
    t.conv_is_right(dev, seed=10)
    dev.close()
    print("OK", interrupts, runs, flush=True)
''')


RESENDS = 3


def read_line(child: subprocess.Popen[str], timeout: float) -> str:
    """The child's next stdout line, or "" if none comes within `timeout` seconds."""
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    return child.stdout.readline().strip() if ready else ""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_during_runs(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT) sent at random moments of a loop of runs, in a child process."""
    count = 6
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO), tmp=str(tmp_path), count=count))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=REPO)
    rng = random.Random(11)
    lines = []
    out, err = "", ""
    try:
        line = read_line(child, 120)
        assert line == "ready", f"child did not start: {line!r}"
        for _ in range(count):
            # land anywhere in a run: in the fence wait most often, sometimes in the Python around it
            time.sleep(rng.uniform(0.02, 0.3))
            line = ""
            for _attempt in range(RESENDS + 1):
                child.send_signal(signal.SIGINT)
                line = read_line(child, 10)
                if line:
                    break
                # Python drops a KeyboardInterrupt raised inside a weakref callback or __del__
                # ("Exception ignored in ..."): the loop never sees it, as a user's Ctrl-C is lost
                # there too. Press again, as that user would; a real hang stays silent to the end.
            lines.append(line)
            if line != "interrupted":
                break
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, f"child exited {child.returncode}: {lines} {out!r} {err[-2000:]!r}"
    assert out.strip().startswith(f"OK {count}"), out


def test_a_second_interrupt_while_settling_is_held_back(
    dev: Device, spin: VariantEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the submit, then again in the wait that settles it: the wait is retried, the
    call still returns only once the GPU is done, and raises KeyboardInterrupt."""
    from runtime.core import context

    v = vk()
    want = expected(dev, spin, seed=12)
    attempts: list[int] = []

    class FlakyLib:
        def __getattr__(self, name: str) -> Any:
            return getattr(v.lib, name)

        def vkQueueWaitIdle(self, queue: Any) -> int:
            attempts.append(1)
            if len(attempts) == 1:
                raise KeyboardInterrupt  # lands before the wait begins
            return int(v.lib.vkQueueWaitIdle(queue))

    class Proxy:
        lib = FlakyLib()

        def __getattr__(self, name: str) -> Any:
            return getattr(v, name)

    monkeypatch.setattr(context, "vk", lambda: Proxy())
    monkeypatch.setattr(v, "vkQueueSubmit", raising_after(v.vkQueueSubmit, KeyboardInterrupt()))
    out = dev.alloc(8 * N, fill=0)
    with pytest.raises(KeyboardInterrupt):
        dev.run([spin_step(dev, spin, out, seed=12)])
    assert len(attempts) == 2 and finished(out)
    monkeypatch.undo()
    np.testing.assert_array_equal(out.read(np.uint32), want)
    out.free()
    conv_is_right(dev, seed=13)
