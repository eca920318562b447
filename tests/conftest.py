from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Literal

import httpx
import pytest

from app import create_app
from folyam.settings import Settings
from tests.support.balancer import Balancer
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import serve
from tests.support.services import Postgres, Redis, postgres_server, redis_server
from tests.support.wheel import build_wheel, fresh_venv

# Fast, deterministic settings for tests: no demo pacing, and every delta its own event; the data (SQLite
# file, secret key) in a directory of the test run's own.
TEST_SETTINGS = Settings(
    data_dir=Path(tempfile.mkdtemp(prefix="folyam-tests-")),
    demo_first_token_delay=0.0,
    demo_tokens_per_second=0.0,
    flush_interval=0.0,
    busy_flush_interval=0.0,
    upstream_retries=0,
    upstream_timeout=1.0,
    # Suites ask far more than a person would, all from 127.0.0.1; the limits have tests of their own.
    rate_limit_per_minute=100_000,
    max_running_per_client=100,
)

# Every HTTP and browser test that uses these fixtures runs in both: the default (one process, SQLite, the
# in-memory event log) and scaled out (two app processes sharing PostgreSQL and Redis, behind a
# round-robin proxy, so consecutive requests of one page reach different processes).
Deployment = Literal["one-process", "postgres-redis"]
DEPLOYMENTS: list[Deployment] = ["one-process", "postgres-redis"]


HTMX_HEADERS = {"HX-Request": "true"}


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream()
    with serve(upstream) as url:
        yield upstream, f"{url}/v1"


@pytest.fixture
def upstream(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[FakeUpstream]:
    fake, _ = fake_upstream
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="session")
def folyam_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout (once per session)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory: pytest.TempPathFactory, folyam_wheel: Path) -> Path:
    """The python of a fresh virtual environment that has Folyam only from the wheel (once per session)."""
    return fresh_venv(tmp_path_factory.mktemp("venv"), folyam_wheel)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis() -> Iterator[Redis]:
    with redis_server() as server:
        yield server


class Deploy:
    """Serves the app with given settings in one deployment; yields the base URL."""

    def __init__(self, deployment: Deployment, postgres: Postgres | None, redis: Redis | None) -> None:
        self.deployment = deployment
        self._postgres = postgres
        self._redis = redis

    @contextmanager
    def __call__(self, settings: Settings) -> Iterator[str]:
        if self._postgres is None or self._redis is None:
            with serve(create_app(settings)) as url:
                yield url
            return
        shared = dataclasses.replace(settings, database_url=self._postgres.url(), redis_url=self._redis.fresh_url())
        with (
            serve(create_app(shared)) as first,
            serve(create_app(shared)) as second,
            serve(Balancer([first, second])) as url,
        ):
            yield url


@pytest.fixture(scope="session", params=DEPLOYMENTS)
def deploy(request: pytest.FixtureRequest) -> Deploy:
    if request.param == "one-process":
        return Deploy(request.param, None, None)
    return Deploy(request.param, request.getfixturevalue("postgres"), request.getfixturevalue("redis"))


@pytest.fixture(scope="session")
def demo_server(deploy: Deploy) -> Iterator[str]:
    with deploy(TEST_SETTINGS) as url:
        yield url


def openai_settings(base: Settings, upstream_url: str, api_key: str = "sk-test-secret") -> Settings:
    """`base` with the OpenAI provider pointed at the fake upstream."""
    return dataclasses.replace(
        base, provider="openai", model="fake-model", openai_base_url=upstream_url, openai_api_key=api_key
    )


@pytest.fixture(scope="session")
def openai_server(deploy: Deploy, fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    with deploy(openai_settings(TEST_SETTINGS, fake_upstream[1])) as url:
        yield url


@pytest.fixture
def start_one_process() -> Callable[..., AbstractContextManager[str]]:
    """For what one process does on its own (its HTTP limits): the app alone, with the test's settings."""

    def start(**overrides: object) -> AbstractContextManager[str]:
        return serve(create_app(dataclasses.replace(TEST_SETTINGS, **overrides)))  # type: ignore[arg-type]

    return start


@pytest.fixture
def start_server(deploy: Deploy) -> Callable[..., AbstractContextManager[str]]:
    """Start an app with settings of the test's own (e.g. an upstream on a closed port)."""

    def start(**overrides: object) -> AbstractContextManager[str]:
        return deploy(dataclasses.replace(TEST_SETTINGS, **overrides))  # type: ignore[arg-type]

    return start


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # As htmx does; a test of the no-JavaScript page uses a client of its own.
    with httpx.Client(timeout=10, headers=HTMX_HEADERS) as http:
        yield http


def ask(client: httpx.Client, base_url: str, query: str, conversation_url: str = "/") -> str:
    """Open a chat page (which gives the client a session) and post a question like its composer
    does; returns the generation's events URL."""
    form = composer_form(client, base_url + conversation_url)
    response = client.post(base_url + form.pop("action"), data={**form, "query": query})
    response.raise_for_status()
    match = re.search(r'hx-sse:connect="([^"]+)"', response.text)
    assert match, response.text
    return base_url + match.group(1)


def composer_form(client: httpx.Client, page_url: str) -> dict[str, str]:
    """The composer's action and hidden fields (request_id, csrf_token) from a chat page."""
    page = client.get(page_url)
    page.raise_for_status()
    return form_fields(page.text, '<form id="composer"')


def form_fields(html: str, start: str) -> dict[str, str]:
    """The action and hidden fields of the form whose start tag begins with `start`."""
    form = html[html.index(start) :]
    form = form[: form.index("</form>")]
    fields = dict(re.findall(r'<input type="hidden"(?: id="[^"]*")? name="([^"]+)" value="([^"]*)">', form))
    action = re.search(r' action="([^"]+)"', form)
    assert action, form
    return {"action": action.group(1), **fields}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Playwright's sync API keeps an event loop running in the main thread for the whole browser
    # session, and pytest-asyncio cannot start its own loop beside it: browser tests go last.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
