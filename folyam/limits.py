"""Request-rate limiting per client: a sliding window of recent request times."""

from __future__ import annotations

from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, limit: int, window: float = 60.0) -> None:
        self._limit = limit
        self._window = window
        self._hits: dict[str, deque[float]] = {}

    def check(self, key: str, now: float) -> float | None:
        """Record a request; returns None when allowed, else the seconds until one would be."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self._limit:
            return hits[0] + self._window - now
        hits.append(now)
        return None

    def prune(self, now: float) -> None:
        """Forget clients with no request inside the window (keeps memory bounded)."""
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self._window]:
            del self._hits[key]
