"""Content digests: the proof of which weights or annotations made a cache, a checkpoint or a submission."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path) -> str:
    """sha256 of a file as hex, by the standard library's `hashlib.file_digest` (streamed: weights files are
    hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
