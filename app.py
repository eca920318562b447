"""Folyam's composition root: the app factory and the `python app.py` entry point."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import ClientException, HTTPException
from litestar.logging import LoggingConfig
from litestar.logging.config import default_handlers
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from folyam.assets import StaticAssets
from folyam.backends import make_backends
from folyam.components import make_environment
from folyam.conversation_routes import CONVERSATION_ROUTES
from folyam.coordination import Coordination, CoordinationUnavailable
from folyam.errors import UserFacingError, conversation_busy, internal_error, unavailable, user_facing_error
from folyam.fragments import Endings
from folyam.gallery import GALLERY_ROUTES
from folyam.generations import Generations
from folyam.limits import Slots
from folyam.markdown import MarkdownPipeline
from folyam.models import ModelCatalog
from folyam.providers.factory import make_provider
from folyam.redaction import RedactingFilter, Redactor
from folyam.routes import ROUTES
from folyam.secret import load_or_create_secret
from folyam.security import security_headers
from folyam.server import run_workers, serve_app
from folyam.sessions import SessionMiddleware, SessionSigner
from folyam.settings import InvalidSetting, Settings
from folyam.store import ConversationBusy, StoreUnavailable
from folyam.store.sql import SqlStore
from folyam.views import ExchangeViews

ROOT = Path(__file__).resolve().parent
# Anything larger is refused before a handler runs; the forms themselves have tighter limits.
MAX_BODY_BYTES = 1_048_576


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jinja = make_environment(ROOT / "templates")
    assets = StaticAssets(ROOT / "static")
    jinja.globals["static_url"] = assets.url
    # The no-JavaScript page streams through Jinja's async mode (its own template cache: compiled apart).
    streaming_jinja = jinja.overlay(enable_async=True, cache_size=64)
    signer = SessionSigner(settings.secret_key or load_or_create_secret(settings.data_dir))
    markdown = MarkdownPipeline(jinja)
    endings = Endings(jinja, signer.csrf_token)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        provider = make_provider(settings)
        models = ModelCatalog(provider)
        backends = make_backends(settings)
        await backends.store.migrate()
        generations = Generations(
            provider=provider,
            event_log=backends.event_log,
            store=backends.store,
            coordination=backends.coordination,
            endings=endings,
            settings=settings,
            renderer_factory=markdown.renderer,
            render_markdown=markdown.render,
        )
        await generations.interrupt_leftovers()
        app.state.update(
            provider=provider,
            models=models,
            store=backends.store,
            event_log=backends.event_log,
            coordination=backends.coordination,
            generations=generations,
            views=ExchangeViews(endings, generations, markdown.render),
            open_streams=Slots(settings.max_streams_per_session),
        )
        background = [
            asyncio.create_task(_sweep(generations, backends.coordination, settings.retention)),
            asyncio.create_task(generations.hold_leases()),
            asyncio.create_task(backends.coordination.listen_for_stops(generations.stop_local)),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await generations.aclose()
            await backends.aclose()
            await models.aclose()
            await provider.aclose()

    return Litestar(
        route_handlers=[
            *ROUTES,
            *CONVERSATION_ROUTES,
            *GALLERY_ROUTES,
            create_static_files_router(path="/static", directories=[ROOT / "static"]),
        ],
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "jinja": jinja,
                "streaming_jinja": streaming_jinja,
                "signer": signer,
                "endings": endings,
                "markdown": markdown,
            }
        ),
        middleware=[SessionMiddleware(signer, secure_cookie=settings.secure_cookies)],
        exception_handlers={
            HTTPException: user_facing_error,
            StoreUnavailable: unavailable,
            ConversationBusy: conversation_busy,
            CoordinationUnavailable: unavailable,
            Exception: internal_error,
        },
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(jinja)),
        before_send=[security_headers(assets)],
        logging_config=_logging_config(Redactor([settings.openai_api_key, settings.secret_key])),
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
    )


async def _sweep(generations: Generations, coordination: Coordination, retention: float) -> None:
    """Keep memory bounded: drop expired event streams and idle rate-limit windows."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(min(60.0, max(retention / 4, 0.05)))
        generations.forget_expired(loop.time())
        await coordination.prune(loop.time())


def _subclasses(cls: type[Exception]) -> set[type[Exception]]:
    found = {cls}
    for subclass in cls.__subclasses__():
        found |= _subclasses(subclass)
    return found


def _logging_config(redactor: Redactor) -> LoggingConfig:
    """Every 500 is logged with its traceback (a 4xx is the client's doing, not a fault of ours; a 503 for
    unreachable storage is one line); the HTTP clients are quieted (a line per upstream request at INFO);
    no record carries a secret."""
    redacting = {"filters": ["redact"]}
    return LoggingConfig(
        root={"level": "INFO", "handlers": ["queue_listener"]},
        loggers={name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore", "openai", "alembic")},
        filters={"redact": {"()": RedactingFilter, "redactor": redactor}},
        handlers={name: {**handler, **redacting} for name, handler in default_handlers.items()},
        log_exceptions="always",
        # Litestar matches the exception's exact class (its class-level status code is 500), so the
        # client errors are listed by class too. A storage outage is one line per request, not a traceback
        # each (formatting them cost more CPU than the requests, when the database was slow under load).
        disable_stack_trace={
            *range(400, 500),
            UserFacingError,
            ConversationBusy,
            StoreUnavailable,
            CoordinationUnavailable,
            *_subclasses(ClientException),
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Folyam: stream a model's answer as server-rendered HTML.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", help="model name for the OpenAI-compatible server")
    parser.add_argument("--workers", type=int, help="worker processes on one port (more than 1 needs FOLYAM_REDIS_URL)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(host=args.host, port=args.port, model=args.model, workers=args.workers)
    except InvalidSetting as exc:
        parser.exit(2, f"folyam: {exc}\n")
    # Once, before any worker starts: the schema up to date, the secret key in place.
    asyncio.run(prepare(settings))
    source = "offline demo model" if settings.is_demo else f"model {settings.model}"
    processes = f", {settings.workers} worker processes" if settings.workers > 1 else ""
    print(f"Folyam is serving on http://{settings.host}:{settings.port}/ ({source}{processes})", flush=True)
    if settings.workers > 1:
        run_workers(create_app, settings)
    else:
        serve_app(create_app, settings, None)


async def prepare(settings: Settings) -> None:
    store = SqlStore(settings.store_url, timeout=settings.backend_timeout)
    try:
        await store.migrate()
    finally:
        await store.aclose()
    if settings.secret_key is None:
        load_or_create_secret(settings.data_dir)


if __name__ == "__main__":
    main()
