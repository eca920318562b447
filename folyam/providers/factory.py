"""Choosing the provider from the settings."""

from __future__ import annotations

from folyam.providers import Provider
from folyam.providers.demo import DemoProvider
from folyam.providers.openai_chat import OpenAIChatProvider
from folyam.settings import Settings


def make_provider(settings: Settings) -> Provider:
    if settings.is_demo:
        return DemoProvider(
            first_token_delay=settings.demo_first_token_delay,
            tokens_per_second=settings.demo_tokens_per_second,
        )
    return OpenAIChatProvider(
        model=settings.model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        timeout=settings.upstream_timeout,
        max_retries=settings.upstream_retries,
        retry_backoff=settings.upstream_retry_backoff,
    )
