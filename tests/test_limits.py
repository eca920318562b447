from __future__ import annotations

from folyam.limits import RateLimiter


def test_a_client_gets_its_limit_per_window_then_the_wait() -> None:
    limiter = RateLimiter(2, window=60)
    assert limiter.check("a", 0.0) is None
    assert limiter.check("a", 10.0) is None
    assert limiter.check("a", 20.0) == 40.0  # the first request leaves the window at 60 s
    assert limiter.check("b", 20.0) is None  # clients are counted apart
    assert limiter.check("a", 60.0) is None
    assert limiter.check("a", 61.0) == 9.0


def test_refused_requests_do_not_extend_the_wait() -> None:
    limiter = RateLimiter(1, window=10)
    assert limiter.check("a", 0.0) is None
    for now in (1.0, 2.0, 3.0):
        assert limiter.check("a", now) == 10.0 - now
    assert limiter.check("a", 10.0) is None


def test_prune_forgets_idle_clients() -> None:
    limiter = RateLimiter(1, window=10)
    limiter.check("old", 0.0)
    limiter.check("new", 15.0)
    limiter.prune(15.0)
    assert set(limiter._hits) == {"new"}
