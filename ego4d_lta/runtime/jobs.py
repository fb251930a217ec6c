"""What every cache-making job checks first: a split the challenge has and a shard `i/n` with 0 <= i < n."""

from __future__ import annotations

from ego4d_lta.base.errors import UserError
from ego4d_lta.challenge.rules import SPLIT_FILES


def check_split_and_shard(split: str, shard: tuple[int, int]) -> None:
    if split not in SPLIT_FILES:
        raise UserError(f"--split {split}: choose from {', '.join(SPLIT_FILES)}")
    i, n = shard
    if not 0 <= i < n:
        raise UserError(f"--shard {i}/{n}: needs 0 <= i < n")
