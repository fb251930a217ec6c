"""One progress bar for every long step: tqdm with rate and ETA on a terminal, plain lines in a log file.

In a Slurm `.out` file (or any pipe) tqdm's carriage-return redraws pile up on one line and interleave with the
epoch lines; there the bar writes one complete line per `$EGO4D_LTA_PROGRESS_INTERVAL` seconds (default 60).
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

LOG_INTERVAL_ENV = "EGO4D_LTA_PROGRESS_INTERVAL"
DEFAULT_LOG_INTERVAL_S = 60.0


class LineWriter:
    """A file for tqdm that turns each redraw (`\\r...`) into one line of its own."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def log_interval() -> float:
    text = os.environ.get(LOG_INTERVAL_ENV, "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_LOG_INTERVAL_S
    except ValueError:
        return DEFAULT_LOG_INTERVAL_S


def progress_bar(total: float | None = None, desc: str = "", unit: str = "it", disable: bool = False, **kw: Any):
    """A tqdm bar on stderr (rate, ETA); one line per interval when stderr is not a terminal."""
    from tqdm import tqdm

    out = kw.pop("file", sys.stderr)
    if is_terminal(out):
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=out, dynamic_ncols=True, **kw)
    interval = log_interval()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=disable,
        file=LineWriter(out),
        mininterval=interval,
        maxinterval=max(interval, 10.0),
        ncols=100,
        ascii=True,
        **kw,
    )
