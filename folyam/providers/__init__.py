"""Model access: the small `Provider` interface, what a stream yields, and how it fails."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypedDict

__all__ = [
    "CHARS_PER_TOKEN",
    "BetweenReads",
    "ChatMessage",
    "Finished",
    "Provider",
    "ProviderError",
    "ReasoningDelta",
    "RefusalDelta",
    "StreamPiece",
    "TextDelta",
    "UpstreamAuthFailed",
    "UpstreamBroken",
    "UpstreamDropped",
    "UpstreamEndedEarly",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimedOut",
    "UpstreamUnavailable",
    "UpstreamUnreachable",
    "Usage",
]


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text of the answer: of `chunks` of the upstream's chunks (a provider may hand over a read's worth
    of them as one piece; they count apart, as the upstream's tokens, in the timing and the limits)."""

    text: str
    chunks: int = 1


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Text of the model's thinking (`reasoning_content`, `reasoning`, `<think>…</think>`, a thinking part):
    shown apart from the answer, never part of it or of the history. `chunks` as a TextDelta's."""

    text: str
    chunks: int = 1


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """Text of a refusal (`delta.refusal`): shown as the answer, styled as a refusal."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The upstream said why the answer ended (`finish_reason`): "stop", "length", "content_filter",
    "tool_calls", or another server's word. Yielded once, when the reason arrives."""

    reason: str


StreamPiece = TextDelta | ReasoningDelta | RefusalDelta | Usage | Finished
# An answer longer than this many characters per allowed token is a stream that ignores max_tokens.
CHARS_PER_TOKEN: Final = 32
# Awaited by a provider between two reads of its upstream, once the pieces of the last read are yielded:
# the consumer may make it wait, so that the next read takes several tokens at once.
BetweenReads = Callable[[], Awaitable[None]]


class Provider(Protocol):
    """Something that streams a chat answer: OpenAI-compatible servers or the offline demo."""

    @property
    def model(self) -> str: ...

    @property
    def is_demo(self) -> bool: ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        model: str | None = None,
        between_reads: BetweenReads | None = None,
    ) -> AsyncGenerator[StreamPiece]:
        """The answer's pieces, from `model` (None: the configured one). A provider that reads a socket
        awaits `between_reads` before each read after the first (one that does not may ignore it)."""
        ...

    async def list_models(self) -> list[str]:
        """The names of the models the server offers, as it sends them (untrusted). Raises a
        ProviderError when it cannot tell."""
        ...

    async def aclose(self) -> None: ...


class ProviderError(Exception):
    """Base of the failures a provider reports. `str()` is a plain sentence fit to show a person, free
    of secrets; `detail` is what the server log gets (also redacted)."""

    title = "The model failed"
    # Worth another try when nothing was answered yet (overload, outage, a dropped connection).
    transient = False

    def __init__(self, message: str, *, retry_after: float | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.detail = detail or message


class UpstreamAuthFailed(ProviderError):
    """Raised when the upstream refuses the API key (401/403)."""

    title = "The model server refused our credentials"


class UpstreamRateLimited(ProviderError):
    """Raised when the upstream answers 429 after the retries."""

    title = "The model server is rate limiting us"
    transient = True


class UpstreamUnavailable(ProviderError):
    """Raised when the upstream answers with a 5xx status after the retries."""

    title = "The model server had an error"
    transient = True


class UpstreamRejected(ProviderError):
    """Raised when the upstream rejects the request itself (another 4xx, e.g. an unknown model)."""

    title = "The model server rejected the request"


class UpstreamUnreachable(ProviderError):
    """Raised when no connection to the upstream could be made."""

    title = "Could not reach the model server"
    transient = True


class UpstreamTimedOut(ProviderError):
    """Raised when the upstream sends nothing for longer than the configured timeout."""

    title = "The model server stopped responding"


class UpstreamBroken(ProviderError):
    """Raised when the stream fails after it started: an error event or a malformed chunk."""

    title = "The answer was cut off"


class UpstreamDropped(UpstreamBroken):
    """Raised when the upstream connection drops in the middle of the stream."""

    transient = True


class UpstreamEndedEarly(UpstreamBroken):
    """Raised when the stream ends cleanly (EOF) with neither a `finish_reason` nor `[DONE]`: the model
    server stopped before the answer was complete. What arrived is kept."""

    title = "The model server ended the answer early"
