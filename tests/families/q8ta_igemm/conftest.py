"""The op-level fixtures the conv families' tests share, from q8ta_dwconv's: `dispatched` (the variants each
Device.run call dispatches) and `no_gpu` (a device that fails any call reaching it)."""

from tests.families.q8ta_dwconv.test_dwconv_op import dispatched, no_gpu

__all__ = ["dispatched", "no_gpu"]
