"""The model catalog against the fake upstream over real HTTP (and the demo): the list and its order, the
cache and its two lifetimes, one request however many ask, and what is kept of untrusted names."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from folyam.models import MAX_MODELS, ModelCatalog
from folyam.providers.demo import DemoProvider
from folyam.providers.openai_chat import OpenAIChatProvider
from tests.support.fake_upstream import DEFAULT_MODELS, FakeUpstream, ModelList
from tests.support.servers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def provider(fake_upstream: tuple[FakeUpstream, str]) -> AsyncIterator[OpenAIChatProvider]:
    provider = OpenAIChatProvider(model="configured", base_url=fake_upstream[1], api_key=None, timeout=5, max_retries=0)
    yield provider
    await provider.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def catalog(provider: OpenAIChatProvider, clock: Clock) -> AsyncIterator[ModelCatalog]:
    catalog = ModelCatalog(provider, ttl=300, failure_ttl=30, timeout=1, clock=clock)
    yield catalog
    await catalog.aclose()


async def test_the_configured_model_comes_first_then_the_upstreams_once_each(
    catalog: ModelCatalog, upstream: FakeUpstream
) -> None:
    upstream.models = ModelList(ids=["zeta", "configured", "alpha", "zeta"])
    assert await catalog.names() == ["configured", "zeta", "alpha"]
    assert catalog.default == "configured"
    assert await catalog.allows("alpha") and await catalog.allows("configured")
    assert not await catalog.allows("omega") and not await catalog.allows("")


async def test_the_list_is_kept_until_it_expires(catalog: ModelCatalog, upstream: FakeUpstream, clock: Clock) -> None:
    assert await catalog.names() == ["configured", *DEFAULT_MODELS]
    upstream.models = ModelList(ids=["new-model"])
    clock.now += 299
    assert await catalog.names() == ["configured", *DEFAULT_MODELS]  # from the cache
    assert len(upstream.model_requests) == 1
    clock.now += 1
    assert await catalog.names() == ["configured", "new-model"]
    assert len(upstream.model_requests) == 2


@pytest.mark.parametrize(
    "listing",
    [ModelList(status=404), ModelList(status=500), ModelList(raw=b"\x00garbage"), ModelList(delay=3)],
    ids=["404", "500", "garbage", "too slow"],
)
async def test_a_list_that_cannot_be_read_is_the_configured_model_for_a_shorter_while(
    catalog: ModelCatalog, upstream: FakeUpstream, clock: Clock, listing: ModelList, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.models = listing
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="folyam.models"):
        assert await catalog.names() == ["configured"]
    assert loop.time() - started < 2  # the catalog's own time limit (1 s here), not the upstream's pace
    assert "offering only configured for 30 s" in caplog.text
    assert not await catalog.allows(DEFAULT_MODELS[0])
    upstream.models = ModelList()
    clock.now += 29
    assert await catalog.names() == ["configured"]
    assert len(upstream.model_requests) == 1
    clock.now += 1
    assert await catalog.names() == ["configured", *DEFAULT_MODELS]


async def test_an_unreachable_upstream_is_logged_without_its_credentials(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://folyam:hunter2-password@127.0.0.1:{free_port()}/v1"
    key = "sk-very-secret-key"
    provider = OpenAIChatProvider(model="configured", base_url=url, api_key=key, timeout=2, max_retries=0)
    catalog = ModelCatalog(provider)
    try:
        with caplog.at_level(logging.WARNING, logger="folyam.models"):
            assert await catalog.names() == ["configured"]
    finally:
        await catalog.aclose()
        await provider.aclose()
    assert "Could not reach the model server" in caplog.text and "127.0.0.1" in caplog.text
    assert "hunter2" not in caplog.text and key not in caplog.text


async def test_one_request_goes_out_however_many_ask_at_once(catalog: ModelCatalog, upstream: FakeUpstream) -> None:
    upstream.models = ModelList(delay=0.2)
    results = await asyncio.gather(*(catalog.names() for _ in range(20)))
    assert all(result == ["configured", *DEFAULT_MODELS] for result in results)
    assert len(upstream.model_requests) == 1


async def test_a_caller_that_goes_away_does_not_cancel_the_request_of_the_others(
    catalog: ModelCatalog, upstream: FakeUpstream
) -> None:
    upstream.models = ModelList(delay=0.2)
    leaving, staying = asyncio.create_task(catalog.names()), asyncio.create_task(catalog.names())
    await asyncio.sleep(0.05)
    leaving.cancel()
    assert await staying == ["configured", *DEFAULT_MODELS]
    assert len(upstream.model_requests) == 1 and upstream.model_requests[0].disconnected_at is None


async def test_names_that_could_mislead_or_flood_the_page_are_dropped(
    catalog: ModelCatalog, upstream: FakeUpstream
) -> None:
    hostile = [
        "", " padded", "padded ", "line\nbreak", "tab\there", "bell\x07", "bidi\u202eevil", "zero\u200bwidth",
        "m" * 201, 42, None, {"id": "nested"}, ["list"],
    ]  # fmt: skip
    fine = ["llama3:8b", "org/model-7B", "ünïcödé-模型", "with space", "m" * 200]
    upstream.models = ModelList(ids=[*hostile, *fine, *(f"model-{n:03}" for n in range(300))])
    names = await catalog.names()
    assert names[: 1 + len(fine)] == ["configured", *fine]
    assert len(names) == MAX_MODELS and names[-1] == f"model-{MAX_MODELS - 2 - len(fine):03}"


async def test_the_demo_offers_only_itself() -> None:
    catalog = ModelCatalog(DemoProvider(first_token_delay=0, tokens_per_second=0))
    assert await catalog.names() == ["folyam-demo"]
    assert await catalog.allows("folyam-demo") and not await catalog.allows("gpt-4o-mini")
