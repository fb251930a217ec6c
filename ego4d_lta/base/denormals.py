"""Flush denormal floats to zero while extracting, training or predicting, and only then.

CPU math on denormal floats is ~100x slower (denormal Adam moments made a tiny-model step 2 s instead of
10 ms) and they change nothing here. The flag is process-wide, so a library call must not leave it set:
it broke hypothesis' float strategies in a test process that had trained a model before.
"""

from __future__ import annotations

import contextlib

import torch

_depth = 0


class flush_denormals(contextlib.ContextDecorator):
    """Denormals flush to zero inside (nestable); IEEE behaviour again after the outermost exit."""

    def __enter__(self) -> flush_denormals:
        global _depth
        if _depth == 0:
            torch.set_flush_denormal(True)
        _depth += 1
        return self

    def __exit__(self, *exc: object) -> bool:
        global _depth
        _depth -= 1
        if _depth == 0:
            torch.set_flush_denormal(False)
        return False
