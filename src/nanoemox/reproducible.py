"""Bit-identical reruns on one machine: every random generator seeded, threads pinned, deterministic kernels.

A run draws from more generators than torch's: Python's `random`, numpy's global
generator (transformers draws HuBERT's SpecAugment time masks from it while a speech
encoder trains) and torch's. On a CPU, float results also depend on how many threads
split a reduction, so the thread count is pinned as well; torch is asked for its
deterministic algorithms where it has them.

    with reproducible(seed=0, threads=2):
        ...  # every stage calls seed_all(seed) before it draws
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's global and torch's generators (all devices) with `seed`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def reproducible(seed: int, threads: int) -> Iterator[None]:
    """Pin torch's intra-op threads to `threads`, use deterministic algorithms, seed every generator.

    The previous thread count and deterministic setting come back on exit, so a caller
    in the same process (a test, a notebook) is left as it was.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    # warn_only: an op without a deterministic kernel warns instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed_all(seed)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn)
