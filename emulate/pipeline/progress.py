"""A run's progress on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """done / total, accuracy so far and errors, on stderr.

    A bar on a terminal; a line every 30 s when stderr is a file (a log stays readable).
    """

    def __init__(self, total: int, done: int, enabled: bool = True, scoring: bool = True):
        self.total, self.done, self.correct, self.errors = total, done, 0, 0
        self.scoring = scoring  # False: requests sent, not cases scored (no accuracy)
        self.scored = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic()
        self.bar = None
        if enabled and self.tty:
            from tqdm import tqdm

            unit = "case" if scoring else "request"
            self.bar = tqdm(total=total, initial=done, file=sys.stderr, unit=unit)

    def update(self, correct: bool, error: bool) -> None:
        self.done += 1
        self.scored += 1
        self.correct += bool(correct)
        self.errors += error
        status = f"errors {self.errors}"
        if self.scoring:
            status = f"acc {self.correct / self.scored:.0%} {status}"
        if self.bar is not None:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(1)
        elif self.enabled and (time.monotonic() - self.last > 30 or self.done == self.total):
            self.last = time.monotonic()
            unit = "cases" if self.scoring else "requests"
            print(f"{self.done}/{self.total} {unit}, {status}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
