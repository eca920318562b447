"""Folyam's settings: one frozen object built from the environment and the command line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ProviderKind = Literal["demo", "openai"]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class InvalidSetting(ValueError):
    """Raised when an environment variable holds a value of the wrong kind."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # "demo" unless OPENAI_API_KEY or OPENAI_BASE_URL is set (the openai SDK's own variables).
    provider: ProviderKind = "demo"
    model: str = "folyam-demo"
    # Passed to openai.AsyncOpenAI as is; None lets the SDK read its own environment variables.
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    # Seconds without a byte from the upstream before a request counts as timed out.
    upstream_timeout: float = 60.0
    # Retries of a failed upstream request before any token arrived (the SDK's own retry policy).
    upstream_retries: int = 2
    # First retry delay, seconds; doubled for each further retry (a Retry-After header wins).
    upstream_retry_backoff: float = 0.5
    max_query_chars: int = 8_000
    max_output_tokens: int = 4_096
    # Wall-clock limit on one generation, seconds.
    generation_timeout: float = 600.0
    # Deltas are coalesced into at most one event per flush interval; the first goes out at once.
    flush_interval: float = 0.050
    # The interval grows in proportion to the answers running in a process, to this at `busy_answers`.
    busy_flush_interval: float = 0.150
    busy_answers: int = 100
    # An SSE comment is sent after this many idle seconds so proxies keep the connection open.
    keepalive_interval: float = 15.0
    # Finished answers stay resumable (and their conversation page renders) this long, seconds.
    retention: float = 900.0
    max_running_per_session: int = 3
    # Running answers per client address (a fresh cookie costs nothing, an address does), and in all.
    max_running_per_client: int = 6
    max_running: int = 500
    # Event streams one browser session may hold open at once.
    max_streams_per_session: int = 12
    # Questions a client (IP address) may ask per minute.
    rate_limit_per_minute: int = 30
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto headers are believed (a reverse proxy),
    # comma-separated, "*" for any; None: no proxy headers are trusted.
    forwarded_allow_ips: str | None = None
    # A request's line and headers together may not exceed this many bytes (HTTP 431 beyond).
    max_header_bytes: int = 32_768
    # Seconds a client gets to send a request's headers, and then its body; silent ones are closed.
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    # Seconds a client may leave our writes unread (its socket full) before it is disconnected.
    send_timeout: float = 30.0
    # On SIGTERM, running answers get this long to finish before they are ended with a notice.
    shutdown_grace: float = 10.0
    # Signs session cookies and CSRF tokens; unset: a random one per process (set it when several
    # processes serve the same site).
    secret_key: str | None = None
    secure_cookies: bool = False
    demo_first_token_delay: float = 0.35
    demo_tokens_per_second: float = 50.0
    # Where the embedded database and the persisted secret key live.
    data_dir: Path = Path("data")
    # sqlite:///path.db or postgresql://user:pass@host:port/db; None: a SQLite file in the data directory.
    database_url: str | None = None
    # redis://host:port/n: events, stop requests, leases and limits shared by every process. None: all
    # in this one process.
    redis_url: str | None = None
    # Worker processes `python app.py` runs on one port (more than one needs redis_url).
    workers: int = 1
    # Seconds a database or Redis operation may take before the request gets an error instead.
    backend_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.workers > 1 and not self.redis_url:
            raise InvalidSetting(
                f"{self.workers} worker processes need FOLYAM_REDIS_URL (redis://host:port/0): without Redis a "
                "process knows nothing of another's answers. Run one worker, or set FOLYAM_REDIS_URL."
            )

    @property
    def is_demo(self) -> bool:
        return self.provider == "demo"

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'folyam.db').resolve()}"

    @property
    def shared(self) -> bool:
        """Several processes may serve this site: the event log, leases and limits live in Redis."""
        return self.redis_url is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read FOLYAM_* variables plus the openai SDK's own; keyword overrides (CLI flags) win."""
        env = os.environ if environ is None else environ
        base_url = env.get("OPENAI_BASE_URL") or None
        api_key = env.get("OPENAI_API_KEY") or None
        provider: ProviderKind = "openai" if (base_url or api_key) else "demo"
        values: dict[str, object] = {
            "provider": provider,
            "openai_base_url": base_url,
            "openai_api_key": api_key,
            "model": env.get("FOLYAM_MODEL") or (DEFAULT_OPENAI_MODEL if provider == "openai" else "folyam-demo"),
            "secret_key": env.get("FOLYAM_SECRET_KEY") or None,
            "secure_cookies": env.get("FOLYAM_SECURE_COOKIES", "").lower() in ("1", "true", "yes"),
            "forwarded_allow_ips": env.get("FOLYAM_FORWARDED_ALLOW_IPS", "").strip() or None,
            "data_dir": Path(env.get("FOLYAM_DATA_DIR") or "data"),
            "database_url": env.get("FOLYAM_DATABASE_URL") or None,
            "redis_url": env.get("FOLYAM_REDIS_URL") or None,
        }
        for name, kind in _ENV_NUMBERS.items():
            raw = env.get(f"FOLYAM_{name.upper()}")
            if raw is not None:
                values[name] = _parse_number(name, raw, kind)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]


_ENV_NUMBERS: dict[str, type[int] | type[float]] = {
    "upstream_timeout": float,
    "upstream_retries": int,
    "upstream_retry_backoff": float,
    "max_query_chars": int,
    "max_output_tokens": int,
    "generation_timeout": float,
    "flush_interval": float,
    "busy_flush_interval": float,
    "busy_answers": int,
    "keepalive_interval": float,
    "retention": float,
    "max_running_per_session": int,
    "max_running_per_client": int,
    "max_running": int,
    "max_streams_per_session": int,
    "rate_limit_per_minute": int,
    "max_header_bytes": int,
    "header_timeout": float,
    "body_timeout": float,
    "send_timeout": float,
    "workers": int,
    "backend_timeout": float,
    "shutdown_grace": float,
    "demo_first_token_delay": float,
    "demo_tokens_per_second": float,
}


def _parse_number(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(raw)
    except ValueError as exc:
        raise InvalidSetting(f"FOLYAM_{name.upper()}={raw!r} is not a valid {kind.__name__}") from exc
    if value < 0:
        raise InvalidSetting(f"FOLYAM_{name.upper()}={raw!r} must not be negative")
    if value == 0 and name in _POSITIVE:
        raise InvalidSetting(f"FOLYAM_{name.upper()}={raw!r} must be more than 0")
    return value


# Zero would refuse every request or close every connection at once.
_POSITIVE = {
    "max_header_bytes", "header_timeout", "body_timeout", "send_timeout", "max_running", "workers", "backend_timeout",
    "busy_answers",
}  # fmt: skip
