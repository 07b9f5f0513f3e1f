"""How many requests a run keeps in flight, backing off while a server says 429."""

from __future__ import annotations

import asyncio
import time


class Throttle:
    """At most `limit` cases in flight. While 429s keep coming the limit halves (at
    most once a second); each `limit` answers without one raise it by one, back up to
    the --concurrency ceiling: additive increase, multiplicative decrease, as TCP does.
    The SDK's own retries honour Retry-After; this keeps a run from hammering a
    server that is already refusing it."""

    def __init__(self, ceiling: int):
        self.ceiling = self.limit = ceiling
        self.in_flight = 0
        self._calm_at = 0.0
        self._ok = 0
        self._cond: asyncio.Condition | None = None

    def saw(self, status: int) -> None:
        if status == 429:
            now = time.monotonic()
            if now >= self._calm_at:
                self.limit = max(1, self.limit // 2)
                self._calm_at = now + 1.0
            self._ok = 0
        elif status < 400 and self.limit < self.ceiling:
            self._ok += 1
            if self._ok >= self.limit:
                self.limit += 1
                self._ok = 0

    async def __aenter__(self) -> None:
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def __aexit__(self, *exc: object) -> None:
        assert self._cond is not None
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()
