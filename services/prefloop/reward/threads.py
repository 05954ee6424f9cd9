"""Thread policy for the small reward heads.

The heads are tiny (a few 128-wide layers); with two intra-op threads on a busy 2-core machine
each small matmul waits on the other thread, and a training round measured 40x slower than
single-threaded (19 s vs 0.5 s for 50 steps). Head work runs under ``single_threaded()``; the
embedder keeps all threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the enclosed torch work on one intra-op thread, then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
