"""Limits: request rates per client (a sliding window of recent request times), and slots held at once."""

from __future__ import annotations

from collections import deque

__all__ = ["RateLimiter", "Slots"]


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


class Slots:
    """How many of something each key holds at once (running answers, open streams), against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    def available(self, key: str) -> bool:
        return self._held.get(key, 0) < self.limit

    def take(self, key: str) -> None:
        self._held[key] = self._held.get(key, 0) + 1

    def try_take(self, key: str) -> bool:
        if not self.available(key):
            return False
        self.take(key)
        return True

    def give_back(self, key: str) -> None:
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)
