"""Folyam's composition root: the app factory and the `python app.py` entry point."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from litestar import Litestar
from litestar.datastructures import State
from litestar.logging import LoggingConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from components import make_environment
from folyam.event_log import MemoryEventLog
from folyam.generations import Generations
from folyam.markdown import MarkdownPipeline
from folyam.providers.factory import make_provider
from folyam.routes import chat_page, generation_events, post_message
from folyam.security import add_security_headers
from folyam.settings import Settings

ROOT = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jinja = make_environment(ROOT / "templates")

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
        app.state.update(provider=provider, event_log=event_log, generations=generations)
        try:
            yield
        finally:
            await generations.aclose()
            await provider.aclose()

    return Litestar(
        route_handlers=[
            chat_page,
            post_message,
            generation_events,
            create_static_files_router(path="/static", directories=[ROOT / "static"]),
        ],
        lifespan=[lifespan],
        state=State({"settings": settings, "jinja": jinja}),
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(jinja)),
        before_send=[add_security_headers],
        logging_config=_logging_config(),
        openapi_config=None,
    )


def _logging_config() -> LoggingConfig:
    # Quiet the HTTP clients: at INFO they log a line per upstream request.
    return LoggingConfig(
        root={"level": "INFO", "handlers": ["queue_listener"]},
        loggers={name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore", "openai")},
        log_exceptions="debug",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Folyam: stream a model's answer as server-rendered HTML.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", help="model name for the OpenAI-compatible server")
    args = parser.parse_args(argv)
    settings = Settings.from_env(host=args.host, port=args.port, model=args.model)
    source = "offline demo model" if settings.is_demo else f"model {settings.model}"
    print(f"Folyam is serving on http://{settings.host}:{settings.port}/ ({source})", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
