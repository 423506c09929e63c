"""How often the checks' tolerances were actually needed: the test summary prints it.

A check that compares with a tolerance records, per comparison rule, how many elements it compared,
how many fell where the rule allows a difference, how many used that allowance, and the worst
ratio |diff| / tolerance it saw. A rule that is never used, or whose worst ratio stays far below 1,
is looser than the device needs; one used on many elements hides errors. Thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class RuleUse:
    """Counts of one comparison rule over a run."""

    compared: int = 0  # elements compared
    allowed: int = 0  # elements where the rule allowed any difference
    used: int = 0  # elements that differed from the oracle and passed thanks to the allowance
    worst: float = 0.0  # the largest |diff| / tolerance seen (0 when every element was exact)


_lock = threading.Lock()
_uses: dict[str, RuleUse] = {}


def record(rule: str, *, compared: int, allowed: int, used: int, worst: float = 0.0) -> None:
    """Add one comparison's counts to `rule`."""
    with _lock:
        use = _uses.setdefault(rule, RuleUse())
        use.compared += int(compared)
        use.allowed += int(allowed)
        use.used += int(used)
        use.worst = max(use.worst, float(worst))


def snapshot() -> dict[str, RuleUse]:
    """A copy of the counts so far, by rule name."""
    with _lock:
        return {name: RuleUse(u.compared, u.allowed, u.used, u.worst) for name, u in sorted(_uses.items())}


def reset() -> None:
    with _lock:
        _uses.clear()
