"""Progress of long stages: a rich bar on a terminal, plain lines at a steady interval otherwise.

Under CI, `nohup` or a log file a progress bar is invisible, so `Progress` then prints one line every
`interval_s` seconds (items done, rate, ETA) and a last one when the stage ends.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL_S = 30.0


def _interval() -> float:
    try:
        return max(0.1, float(os.environ.get("REWARDRANKER_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts items of one stage; draws a rich bar on a TTY, else prints plain lines every `interval_s`."""

    def __init__(self, description: str, total: int | None, enabled: bool = True, unit: str = "items",
                 stream: TextIO | None = None, interval_s: float | None = None):
        self.description, self.total, self.unit = description, total, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interval_s = _interval() if interval_s is None else interval_s
        self.done, self.start = 0, time.monotonic()
        self._last_line = self.start
        self._rich = None
        if enabled and _isatty(self.stream):
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(console=Console(file=self.stream), transient=False)
            self._rich.start()
            self._task = self._rich.add_task(description, total=total)

    def line(self) -> str:
        """`description: done/total (pct), rate/s, elapsed, ETA`."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.description}: {self.done}" + (f"/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)"
                                                         if self.total else f" {self.unit}")]
        parts.append(f"{rate:.1f} {self.unit}/s")
        parts.append(f"elapsed {_duration(elapsed)}")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval_s:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        else:
            print(self.line() + " - done", file=self.stream, flush=True)
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def track(items: Iterable[T], description: str, enabled: bool = True, total: int | None = None,
          unit: str = "items") -> Iterator[T]:
    """Iterate over `items` with a `Progress` (bar on a terminal, plain lines otherwise)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(description, total, enabled, unit) as bar:
        for item in items:
            yield item
            bar.advance()
