"""Folyam's composition root: the app factory and the `python app.py` entry point."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType

import uvicorn
from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from components import make_environment
from folyam.event_log import MemoryEventLog
from folyam.generations import Generations
from folyam.limits import RateLimiter
from folyam.markdown import MarkdownPipeline
from folyam.providers.factory import make_provider
from folyam.routes import ROUTES, user_facing_error
from folyam.security import add_security_headers
from folyam.sessions import SessionMiddleware, SessionSigner
from folyam.settings import Settings

ROOT = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jinja = make_environment(ROOT / "templates")
    signer = SessionSigner(settings.secret_key or secrets.token_bytes(32))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        provider = make_provider(settings)
        event_log = MemoryEventLog()
        generations = Generations(
            provider=provider,
            event_log=event_log,
            env=jinja,
            settings=settings,
            renderer_factory=MarkdownPipeline(jinja).renderer,
        )
        rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        app.state.update(provider=provider, event_log=event_log, generations=generations, rate_limiter=rate_limiter)
        sweeper = asyncio.create_task(_sweep(generations, rate_limiter, settings.retention))
        try:
            yield
        finally:
            sweeper.cancel()
            await generations.aclose()
            await provider.aclose()

    return Litestar(
        route_handlers=[*ROUTES, create_static_files_router(path="/static", directories=[ROOT / "static"])],
        lifespan=[lifespan],
        state=State({"settings": settings, "jinja": jinja, "signer": signer}),
        middleware=[SessionMiddleware(signer, secure_cookie=settings.secure_cookies)],
        exception_handlers={HTTPException: user_facing_error},
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(jinja)),
        before_send=[add_security_headers],
        logging_config=_logging_config(),
        openapi_config=None,
    )


async def _sweep(generations: Generations, rate_limiter: RateLimiter, retention: float) -> None:
    """Keep memory bounded: drop expired generations and idle rate-limit windows."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(min(60.0, max(retention / 4, 0.05)))
        generations.forget_expired(loop.time())
        rate_limiter.prune(loop.time())


def _logging_config() -> LoggingConfig:
    # Quiet the HTTP clients: at INFO they log a line per upstream request.
    return LoggingConfig(
        root={"level": "INFO", "handlers": ["queue_listener"]},
        loggers={name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore", "openai")},
        log_exceptions="debug",
    )


class _DrainingServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT, stop starting answers, let running ones finish within the grace
    period (then end them with a notice), and only then close the connections. A second signal quits."""

    def __init__(self, config: uvicorn.Config, app: Litestar, grace: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self._draining is not None or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        # A signal handler runs between bytecodes: hand the work to the event loop.
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        generations: Generations = self._app.state.generations
        await generations.drain(self._grace)
        await asyncio.sleep(0.2)  # let the streams deliver their final events
        self.should_exit = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Folyam: stream a model's answer as server-rendered HTML.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", help="model name for the OpenAI-compatible server")
    args = parser.parse_args(argv)
    settings = Settings.from_env(host=args.host, port=args.port, model=args.model)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    source = "offline demo model" if settings.is_demo else f"model {settings.model}"
    print(f"Folyam is serving on http://{settings.host}:{settings.port}/ ({source})", flush=True)
    _DrainingServer(config, app, settings.shutdown_grace).run()


if __name__ == "__main__":
    main()
