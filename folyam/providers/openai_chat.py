"""OpenAI-compatible chat completions, streamed through the openai SDK's raw response.

The SDK still does auth, retries and error mapping; we skip its per-chunk pydantic parsing (most of a
naive relay's CPU) and decode each `data:` line with msgspec into the few fields we read.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any, cast

import httpx2
import msgspec
import openai

from folyam.providers import (
    ChatMessage,
    Finished,
    ProviderError,
    ReasoningDelta,
    RefusalDelta,
    StreamPiece,
    TextDelta,
    UpstreamAuthFailed,
    UpstreamBroken,
    UpstreamDropped,
    UpstreamEndedEarly,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimedOut,
    UpstreamUnavailable,
    UpstreamUnreachable,
    Usage,
)
from folyam.redaction import Redactor

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

__all__ = ["OpenAIChatProvider"]

# Local servers (Ollama, vLLM, llama.cpp) accept any key, but the SDK insists on having one.
_PLACEHOLDER_KEY = "not-needed"
_MAX_RETRY_DELAY = 20.0
_YIELD_EVERY = 32
_MAX_MODELS_BYTES = 1_048_576


class _Delta(msgspec.Struct):
    content: str | None = None
    # dialects-ui: the OpenAI-standard fields the page shows (the parser rewrite supersedes these).
    reasoning_content: str | None = None
    refusal: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Error(msgspec.Struct):
    message: str = ""


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None
    error: _Error | str | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class _ModelList(msgspec.Struct):
    data: list[Any]


_decode_models = msgspec.json.Decoder(_ModelList).decode


class OpenAIChatProvider:
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        retry_backoff: float = 0.5,
    ) -> None:
        self._model = model
        self._retries = max_retries
        self._backoff = retry_backoff
        # Retries are ours (below), so that a connection dropped before the first token counts too.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or _PLACEHOLDER_KEY, timeout=timeout, max_retries=0
        )
        # What the SDK resolved (it also reads OPENAI_API_KEY / OPENAI_BASE_URL itself).
        self._redact = Redactor([self._client.api_key, api_key, httpx2.URL(str(self._client.base_url)).password])

    @property
    def model(self) -> str:
        return self._model

    @property
    def is_demo(self) -> bool:
        return False

    async def aclose(self) -> None:
        await self._client.close()

    async def list_models(self) -> list[str]:
        """`GET /models`: the ids in its `data`, as sent. Read without the SDK's pydantic models, and at
        most 1 MiB of it (no retries: the catalog asks again later)."""
        body = bytearray()
        try:
            async with self._client.models.with_streaming_response.list() as response:
                async for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_MODELS_BYTES:
                        raise UpstreamBroken(
                            "The model server's list of models is too large.", detail=f"over {_MAX_MODELS_BYTES} bytes"
                        )
        except openai.APIStatusError as exc:
            raise _status_error(exc, self._redact) from exc
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise UpstreamUnreachable("Could not read the model server's models.", detail=self._where(exc)) from exc
        return _model_ids(bytes(body), self._redact)

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, model: str | None = None
    ) -> AsyncGenerator[StreamPiece]:
        """The answer's pieces. A transient failure before the first text is retried with exponential
        backoff (honouring Retry-After) up to `max_retries` times; after it, the failure is final."""
        for attempt in range(self._retries + 1):
            answered = False
            try:
                async for piece in self._attempt(messages, max_tokens, model or self._model):
                    answered = answered or isinstance(piece, TextDelta)
                    yield piece
                return
            except ProviderError as exc:
                if answered or not exc.transient or attempt == self._retries:
                    raise
                await asyncio.sleep(_delay(attempt, self._backoff, exc.retry_after))

    async def _attempt(
        self, messages: Sequence[ChatMessage], max_tokens: int, model: str
    ) -> AsyncGenerator[StreamPiece]:
        request = self._client.chat.completions.with_streaming_response.create(
            model=model,
            messages=cast("list[ChatCompletionMessageParam]", list(messages)),
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=max_tokens,
        )
        try:
            async with request as response:
                lines = 0
                finished = False
                async for line in response.iter_lines():
                    lines += 1
                    if lines % _YIELD_EVERY == 0:
                        # Lines already buffered are read without a real await: give the other
                        # answers (and this one's flush timer) a turn.
                        await asyncio.sleep(0)
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, `event:` lines
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    for piece in _pieces(payload, self._redact):
                        finished = finished or isinstance(piece, Finished)
                        yield piece
                if not finished:
                    raise UpstreamEndedEarly(
                        "The stream ended without a finish reason; what arrived is kept.", detail="EOF without [DONE]"
                    )
        except openai.APIStatusError as exc:
            raise _status_error(exc, self._redact) from exc
        except openai.APITimeoutError as exc:
            raise UpstreamTimedOut("No answer from the model server.", detail=self._where(exc)) from exc
        except openai.APIConnectionError as exc:
            raise UpstreamUnreachable("Could not connect to the model server.", detail=self._where(exc)) from exc
        except httpx2.TimeoutException as exc:
            raise UpstreamTimedOut(
                "The model server went silent in the middle of the answer.", detail=self._where(exc)
            ) from exc
        except httpx2.TransportError as exc:
            raise UpstreamDropped("The connection to the model server broke off.", detail=self._where(exc)) from exc

    def _where(self, exc: Exception) -> str:
        """For the server log: which server, and what went wrong, without credentials."""
        cause = exc.__cause__ or exc.__context__
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"
        return self._redact(f"{self._client.base_url} — {reason}")


def _pieces(payload: str, redact: Redactor) -> list[StreamPiece]:
    try:
        chunk = _decode_chunk(payload)
    except msgspec.DecodeError as exc:
        raise UpstreamBroken("The model server sent a malformed chunk.", detail=f"{exc}: {payload[:200]!r}") from exc
    if chunk.error is not None:
        # The server's own words, which may echo our request: redacted and trimmed.
        message = chunk.error if isinstance(chunk.error, str) else chunk.error.message
        raise UpstreamBroken(
            f"The model server reported an error: {redact.for_people(message) or 'no details'}", detail=redact(message)
        )
    pieces: list[StreamPiece] = []
    for choice in chunk.choices[:1]:
        # dialects-ui: minimal mapping of the standard fields; the parser rewrite replaces this loop.
        delta = choice.delta
        if delta is not None and delta.reasoning_content:
            pieces.append(ReasoningDelta(delta.reasoning_content))
        if delta is not None and delta.content:
            pieces.append(TextDelta(delta.content))
        if delta is not None and delta.refusal:
            pieces.append(RefusalDelta(delta.refusal))
        if choice.finish_reason:
            pieces.append(Finished(choice.finish_reason))
    if chunk.usage is not None:
        usage = chunk.usage
        pieces.append(Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens))
    return pieces


def _model_ids(body: bytes, redact: Redactor) -> list[str]:
    try:
        listing = _decode_models(body)
    except msgspec.DecodeError as exc:
        raise UpstreamBroken(
            "The model server sent a malformed list of models.", detail=redact(f"{exc}: {body[:200]!r}")
        ) from exc
    return [entry["id"] for entry in listing.data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]


def _status_error(exc: openai.APIStatusError, redact: Redactor) -> ProviderError:
    status = exc.status_code
    detail = redact(f"HTTP {status}: {exc.message}")
    if status in (401, 403):
        return UpstreamAuthFailed(
            f"The model server answered HTTP {status}: check OPENAI_API_KEY and the account's access.", detail=detail
        )
    retry_after = _retry_after(exc.response.headers.get("retry-after"))
    if status == 429:
        return UpstreamRateLimited(
            f"The model server answered HTTP {status} (too many requests or no quota left). Try again later.",
            retry_after=retry_after,
            detail=detail,
        )
    if status >= 500:
        return UpstreamUnavailable(
            f"The model server answered HTTP {status}. Try again in a moment.", retry_after=retry_after, detail=detail
        )
    return UpstreamRejected(f"The model server answered HTTP {status}: {redact.for_people(exc.message)}", detail=detail)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _delay(attempt: int, backoff: float, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, _MAX_RETRY_DELAY)
    jitter = random.uniform(0.75, 1.25)
    return min(backoff * (2.0**attempt) * jitter, _MAX_RETRY_DELAY)
