"""The models a person may choose from: what the upstream lists (`GET /v1/models`), cached, with the
configured model always first. The upstream's ids are untrusted: only short, printable names are kept,
and however many pages ask, one request at a time goes out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Final, TypeGuard

from folyam.providers import Provider, ProviderError
from folyam.redaction import Redactor

__all__ = ["MAX_MODELS", "MODEL_NAME_CHARS", "ModelCatalog"]

MAX_MODELS: Final = 200
MODEL_NAME_CHARS: Final = 200  # as the store keeps them
logger = logging.getLogger(__name__)


class ModelCatalog:
    """Created in the app's lifespan. A list that was read is kept `ttl` seconds; when it cannot be read
    (an error status, garbage, no answer within `timeout`), the list is the configured model alone for
    `failure_ttl` seconds, then the upstream is asked again."""

    def __init__(
        self,
        provider: Provider,
        *,
        ttl: float = 300.0,
        failure_ttl: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._timeout = timeout
        self._clock = clock
        self._names: list[str] = []
        self._expires_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    @property
    def default(self) -> str:
        """The configured model: what a question asks when it names none."""
        return self._provider.model

    async def names(self) -> list[str]:
        """The configured model, then the others the upstream offers in its order; never raises."""
        if self._clock() >= self._expires_at:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._read(), name="model-catalog")
            # Shielded: a page that goes away must not cancel the request the others wait for.
            await asyncio.shield(self._refresh)
        return list(self._names)

    async def allows(self, name: str) -> bool:
        """Whether a question may ask this model."""
        return name in await self.names()

    async def aclose(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()

    async def _read(self) -> None:
        default = self.default
        try:
            async with asyncio.timeout(self._timeout):
                offered = await self._provider.list_models()
        except Exception as exc:
            self._keep([default], self._failure_ttl)
            logger.warning(
                "the model server's list of models could not be read (%s); offering only %s for %g s",
                _reason(exc, self._timeout),
                default,
                self._failure_ttl,
            )
            return
        self._keep(_acceptable(default, offered), self._ttl)

    def _keep(self, names: list[str], ttl: float) -> None:
        self._names = names
        self._expires_at = self._clock() + ttl


def _acceptable(default: str, offered: Iterable[object]) -> list[str]:
    """The configured model first, then each acceptable name once, at most MAX_MODELS in all."""
    names = [default]
    seen = {default}
    for name in offered:
        if len(names) == MAX_MODELS:
            break
        if _is_name(name) and name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _is_name(name: object) -> TypeGuard[str]:
    # Printable excludes control, format (bidi overrides, zero widths) and separator characters but the
    # space; a name padded with spaces would look like another.
    return isinstance(name, str) and 0 < len(name) <= MODEL_NAME_CHARS and name.isprintable() and name == name.strip()


def _reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, ProviderError):
        return f"{exc.title}: {exc.detail}"  # already redacted by the provider
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return Redactor().for_people(f"{type(exc).__name__}: {exc}")
