"""OpenAI-compatible chat completions, streamed.

The openai SDK resolves the configuration (key, base URL, organization and project, from the arguments
or its own environment variables) and makes the headers, auth included; it also lists the models. The
chat stream itself goes straight over an aiohttp session with those headers, the SDK's timeouts and
limits: the SDK's request path (options, URL merging, an httpx request, the transport's adapter and an
httpx response around aiohttp's) cost three times what aiohttp's own request does, per answer. Retries
and the mapping of failures to `ProviderError`s are ours. The body's bytes are split into events by
`_sse`, and each event's data is decoded with msgspec by `_chunks`, which knows the servers' dialects
(no per-chunk pydantic parsing: most of a naive relay's CPU).
"""

from __future__ import annotations

import asyncio
import base64
import random
import urllib.request
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

import aiohttp
import httpx2
import msgspec
import openai

from folyam.providers import (
    CHARS_PER_TOKEN,
    BetweenReads,
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
from folyam.providers._chunks import ChunkReader, Piece, error_message
from folyam.providers._sse import ERROR, Event, EventStreamDecoder
from folyam.redaction import Redactor

__all__ = ["OpenAIChatProvider"]

# Local servers (Ollama, vLLM, llama.cpp) accept any key, but the SDK insists on having one.
_PLACEHOLDER_KEY = "not-needed"
_MAX_RETRY_DELAY = 20.0
_YIELD_EVERY = 32
_MAX_MODELS_BYTES = 1_048_576
_MAX_ERROR_BYTES = 65_536  # of an error's body: its words are all we show of it
# The SDK's defaults for its aiohttp client (`DEFAULT_CONNECTION_LIMITS`, httpx's redirects and keep-alive).
_MAX_CONNECTIONS = 1000
_KEEPALIVE_SECONDS = 5.0
_MAX_REDIRECTS = 20


class _ModelList(msgspec.Struct):
    data: list[Any]


_decode_models = msgspec.json.Decoder(_ModelList).decode
_encode_request = msgspec.json.Encoder().encode


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
        # Retries are ours (below), so that a connection dropped before the first token counts too. The
        # HTTP client is the SDK's aiohttp one: its C parser reads a streamed body for a fraction of
        # httpx's pure-Python cost, and a read takes everything buffered since the last (see `_reading_paused`).
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or _PLACEHOLDER_KEY,
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )
        # What the SDK resolved (it also reads OPENAI_API_KEY / OPENAI_BASE_URL itself).
        resolved = httpx2.URL(str(self._client.base_url))
        self._redact = Redactor([self._client.api_key, api_key, resolved.password])
        if resolved.userinfo:
            # Credentials in the URL (a proxy's basic auth in front of a local server) go in the
            # Authorization header, as httpx's own transport sends them; aiohttp refuses both at once.
            self._client = self._client.with_options(
                base_url=str(resolved.copy_with(userinfo=b"")),
                default_headers={"Authorization": _basic_auth(resolved.username, resolved.password)},
            )
        # The chat request as the SDK would send it: its URL (merged as `_prepare_url` does) and headers
        # (its auth, then its defaults with any custom ones, as `_build_headers` merges them).
        sdk = self._client
        chat_url = sdk.base_url.copy_with(raw_path=sdk.base_url.raw_path + b"chat/completions")
        self._chat_url = str(chat_url)
        headers = {**sdk.auth_headers, **sdk.default_headers}
        self._headers: dict[str, str] = {
            name: value for name, value in headers.items() if not isinstance(value, openai.Omit)
        }
        self._headers["X-Stainless-Retry-Count"] = "0"  # (our retries say their number)
        self._headers["X-Stainless-Read-Timeout"] = str(float(timeout))
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self._proxy, proxy_auth = _env_proxy(chat_url)
        # A proxy's credentials go with the request itself to an http:// server, with its CONNECT to https://.
        self._proxy_headers = None
        if proxy_auth is not None and chat_url.scheme == "https":
            self._proxy_headers = {"Proxy-Authorization": proxy_auth}
        elif proxy_auth is not None:
            self._headers["Proxy-Authorization"] = proxy_auth
        self._session: aiohttp.ClientSession | None = None  # made on the first answer, on the running loop

    @property
    def model(self) -> str:
        return self._model

    @property
    def is_demo(self) -> bool:
        return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._client.close()

    def _http(self) -> aiohttp.ClientSession:
        """The session for chat streams, as the SDK's aiohttp client makes its own: its connection limits
        and keep-alive, and httpx's TLS context (which honours SSL_CERT_FILE). Not `trust_env`: that reads
        the environment's proxy (and ~/.netrc) in a thread for every request; `_env_proxy` reads it once."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=_MAX_CONNECTIONS, keepalive_timeout=_KEEPALIVE_SECONDS, ssl=httpx2.create_ssl_context()
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

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
            words = error_message(exc.body) if exc.body else exc.message
            raise _status_error(exc.status_code, words, exc.response.headers.get("retry-after"), self._redact) from exc
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise UpstreamUnreachable("Could not read the model server's models.", detail=self._where(exc)) from exc
        return _model_ids(bytes(body), self._redact)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        model: str | None = None,
        between_reads: BetweenReads | None = None,
    ) -> AsyncGenerator[StreamPiece]:
        """The answer's pieces. A transient failure before the first text, reasoning or refusal is retried
        with exponential backoff (honouring Retry-After) up to `max_retries` times; after it, it is final."""
        for attempt in range(self._retries + 1):
            answered = False
            try:
                async for piece in self._attempt(messages, max_tokens, model or self._model, between_reads, attempt):
                    answered = answered or not isinstance(piece, Usage | Finished)
                    yield piece
                return
            except ProviderError as exc:
                if answered or not exc.transient or attempt == self._retries:
                    raise
                await asyncio.sleep(_delay(attempt, self._backoff, exc.retry_after))

    async def _attempt(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        model: str,
        between_reads: BetweenReads | None,
        attempt: int,
    ) -> AsyncGenerator[StreamPiece]:
        body = _encode_request(
            {
                "model": model,
                "messages": list(messages),
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": max_tokens,
            }
        )
        headers = self._headers if not attempt else {**self._headers, "X-Stainless-Retry-Count": str(attempt)}
        try:
            response = await self._http().post(
                self._chat_url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                max_redirects=_MAX_REDIRECTS,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._connection_error(exc, answering=False) from exc
        try:
            if not 200 <= response.status < 300:
                raise await self._status_error(response)
            read = response.content.readany
            paced = _reading_paused(between_reads, response)
            reads = _ReadPieces(ChunkReader(self._redact), EventStreamDecoder(), max_tokens)
            yielded_at = 0
            while True:
                try:
                    data = await read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise self._connection_error(exc, answering=True) from exc
                # A read's pieces go out together (its text as one piece), then the reading may pause; an
                # empty read is the body's end, whose pieces are what the decoder still held.
                pieces, failure = reads.of(data) if data else reads.at_end()
                for piece in pieces:
                    yield piece
                if failure is not None:
                    raise failure
                if reads.done:
                    return
                if not data:
                    break
                if reads.events - yielded_at >= _YIELD_EVERY:
                    # Events already buffered are read without a real await: give the other answers (and
                    # this one's flush timer) a turn.
                    yielded_at = reads.events
                    await asyncio.sleep(0)
                if paced is not None:
                    # While the consumer waits here, the tokens that arrive gather in the socket's buffer,
                    # and the next read takes them all at once.
                    await paced()
            content_type = response.headers.get("content-type", "")
            if not reads.events and "event-stream" not in content_type:
                # An HTML page from a proxy or portal, say: nothing of it is an answer.
                raise UpstreamBroken(
                    "The model server's answer was not an event stream.",
                    detail=self._redact(f"content-type {content_type or 'missing'}, no events"),
                )
            if not reads.finished:
                raise UpstreamEndedEarly(
                    "The model server ended the answer early.", detail="EOF without a finish_reason or [DONE]"
                )
        finally:
            # Back to the pool once the body has ended; otherwise (the answer stopped, the generator closed,
            # or a failure) the connection closes, which is how the model server learns to stop.
            if response.content.is_eof():
                response.release()
            else:
                response.close()

    async def _status_error(self, response: aiohttp.ClientResponse) -> ProviderError:
        """An HTTP error status, in the server's words (the first `_MAX_ERROR_BYTES` of its body)."""
        body = bytearray()
        try:
            while len(body) < _MAX_ERROR_BYTES:
                data = await response.content.read(_MAX_ERROR_BYTES - len(body))
                if not data:
                    break
                body += data
        except (aiohttp.ClientError, TimeoutError):
            pass  # the status says enough
        text = body.decode("utf-8", "replace").strip()
        words = _error_words(response.status, text)
        return _status_error(response.status, words, response.headers.get("retry-after"), self._redact)

    def _connection_error(self, exc: Exception, *, answering: bool) -> ProviderError:
        """A failure of the connection (aiohttp's error, or a timeout, which are TimeoutErrors): before
        the answer began, or in its middle."""
        where = self._where(exc)
        timed_out = isinstance(exc, TimeoutError)
        if not answering:
            if timed_out:
                return UpstreamTimedOut("No answer from the model server.", detail=where)
            return UpstreamUnreachable("Could not connect to the model server.", detail=where)
        if timed_out:
            return UpstreamTimedOut("The model server went silent in the middle of the answer.", detail=where)
        return UpstreamDropped("The connection to the model server broke off.", detail=where)

    def _where(self, exc: Exception) -> str:
        """For the server log: which server, and what went wrong, without credentials."""
        cause = exc.__cause__ or exc.__context__
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"
        return self._redact(f"{self._client.base_url} — {reason}")


_TEXTS: Final = (TextDelta, ReasoningDelta, RefusalDelta)  # what counts toward the output limit


class _ReadPieces:
    """The pieces of each read of the body, in order, with the adjacent text (or thinking) of a read as one
    piece: one hand-over to the consumer per read, not per token. Pieces are joined only while the answer's
    text stays within the output limit the consumer enforces (`max_tokens` chunks, `CHARS_PER_TOKEN` per
    chunk), so a piece that crosses it still comes alone, as it was sent. An error ends a read's pieces:
    they come with it, to go out before it is raised."""

    __slots__ = ("_chars_left", "_chunks_left", "_decoder", "_reader", "done", "events")

    def __init__(self, reader: ChunkReader, decoder: EventStreamDecoder, max_tokens: int) -> None:
        self._reader = reader
        self._decoder = decoder
        self._chunks_left = max_tokens
        self._chars_left = max_tokens * CHARS_PER_TOKEN
        self.events = 0
        self.done = False  # `[DONE]` has come: nothing after it is read

    @property
    def finished(self) -> bool:
        return self._reader.finished

    def of(self, data: bytes) -> tuple[list[StreamPiece], ProviderError | None]:
        """The pieces of a read's bytes, and the error that ended them, if one did (the pieces before an
        error are the answer's: they go out first)."""
        return self._pieces(data, at_end=False)

    def at_end(self) -> tuple[list[StreamPiece], ProviderError | None]:
        """The pieces left at the end of the body, as `of`'s."""
        return self._pieces(b"", at_end=True)

    def _pieces(self, data: bytes, *, at_end: bool) -> tuple[list[StreamPiece], ProviderError | None]:
        pieces: list[Piece] = []
        try:
            self._read(self._decoder.close() if at_end else self._decoder.feed(data), pieces)
            if at_end and not self.done:
                pieces += self._reader.close()
        except ProviderError as exc:
            return self._join(pieces), exc
        return self._join(pieces), None

    def _read(self, events: list[Event], pieces: list[Piece]) -> None:
        self.events += len(events)
        reader = self._reader
        for kind, data in events:
            if kind == ERROR:
                raise reader.error_event(data)
            if data == b"[DONE]":
                pieces += reader.close()
                self.done = True
                return
            reader.read(data, pieces)

    def _join(self, pieces: list[Piece]) -> list[StreamPiece]:
        if len(pieces) == 1 and isinstance(only := pieces[0], str):  # (a read of one token)
            self._chunks_left -= 1
            self._chars_left -= len(only)
            return [TextDelta(only)]
        joined: list[StreamPiece] = []
        run: type[TextDelta | ReasoningDelta] | None = None  # the kind of the run being joined, and its texts
        texts: list[str] = []
        for piece in pieces:
            if isinstance(piece, str):  # answer text, as ChunkReader hands it over
                kind: type[StreamPiece] | None = TextDelta
                text = piece
            elif isinstance(piece, _TEXTS):
                kind, text = type(piece), piece.text
            else:
                kind = None
            if kind is not None:
                self._chunks_left -= 1
                self._chars_left -= len(text)
                if kind is run and self._chunks_left >= 0 and self._chars_left >= 0:
                    texts.append(text)
                    continue
            if run is not None:
                joined.append(_run_piece(run, texts))
                run = None
            if kind is TextDelta or kind is ReasoningDelta:
                run, texts = kind, [text]
            else:
                assert not isinstance(piece, str)
                joined.append(piece)
        if run is not None:
            joined.append(_run_piece(run, texts))
        return joined


def _run_piece(kind: type[TextDelta | ReasoningDelta], texts: list[str]) -> TextDelta | ReasoningDelta:
    return kind(texts[0]) if len(texts) == 1 else kind("".join(texts), len(texts))


def _env_proxy(url: httpx2.URL) -> tuple[str | None, str | None]:
    """The proxy the environment names for the model server (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    unless `NO_PROXY` exempts it), as the SDK's httpx client takes it: once. With the basic auth of the
    credentials in its URL, if any."""
    if urllib.request.proxy_bypass(url.host):
        return None, None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy:
        return None, None
    parsed = httpx2.URL(proxy if "://" in proxy else f"http://{proxy}")
    auth = _basic_auth(parsed.username, parsed.password) if parsed.username else None
    return str(parsed.copy_with(userinfo=b"")), auth


def _basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _reading_paused(between_reads: BetweenReads | None, response: aiohttp.ClientResponse) -> BetweenReads | None:
    """`between_reads` with the upstream connection's reading paused meanwhile: the tokens that arrive
    wait in the kernel's socket buffer and come in with one read when it resumes, instead of one read,
    parse and timer reset each as they arrive (the cost that remained per token at a real model's pace)."""
    if between_reads is None:
        return None
    wait = between_reads

    async def paused() -> None:
        # Looked up each time: once the body has ended, the connection goes back to the pool (None here).
        # The transport, not aiohttp's protocol: the protocol's pause_reading() also pauses its parser,
        # and that flag outlives the pause, so after each resume the parser handed over one token and
        # held the rest of the read back for the next one (a whole flush interval later). Left alone
        # when aiohttp has paused it itself (its buffer is full).
        connection = response.connection
        transport: Any = getattr(getattr(connection, "protocol", None), "transport", None)
        # (uvloop's transports are not asyncio.ReadTransport subclasses: by the methods)
        if not callable(getattr(transport, "is_reading", None)) or not transport.is_reading():
            await wait()
            return
        transport.pause_reading()
        try:
            await wait()
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    return paused


def _model_ids(body: bytes, redact: Redactor) -> list[str]:
    try:
        listing = _decode_models(body)
    except msgspec.DecodeError as exc:
        raise UpstreamBroken(
            "The model server sent a malformed list of models.", detail=redact(f"{exc}: {body[:200]!r}")
        ) from exc
    return [entry["id"] for entry in listing.data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]


def _error_words(status: int, body: str) -> str:
    """The server's words in an error's body: JSON with a message (in an `error` object or not), or plain
    text; as the SDK takes them for its errors."""
    try:
        decoded: object = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = body
    error = decoded.get("error", decoded) if isinstance(decoded, dict) else decoded
    return error_message(error) if error else body or f"Error code: {status}"


def _status_error(status: int, words: str, retry_after_header: str | None, redact: Redactor) -> ProviderError:
    detail = redact(f"HTTP {status}: {words}")
    if status in (401, 403):
        return UpstreamAuthFailed(
            f"The model server answered HTTP {status}: check OPENAI_API_KEY and the account's access.", detail=detail
        )
    retry_after = _retry_after(retry_after_header)
    if status == 429:
        return UpstreamRateLimited(
            f"The model server answered HTTP {status} (too many requests or no quota left). Try again later.",
            retry_after=retry_after,
            detail=detail,
        )
    if status >= 500:
        return UpstreamUnavailable(
            f"The model server answered HTTP {status} ({redact.for_people(words, 160)}). Try again in a moment.",
            retry_after=retry_after,
            detail=detail,
        )
    return UpstreamRejected(f"The model server answered HTTP {status}: {redact.for_people(words)}", detail=detail)


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
