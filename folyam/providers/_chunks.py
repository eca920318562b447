"""One answer's chat-completion chunks → stream pieces, in every OpenAI-compatible dialect we know:
content as a string or a list of parts, reasoning in its three field spellings or in `<think>` tags,
refusals, the finish reason, usage wherever a server puts it, and errors in the shapes servers send."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from folyam.providers import (
    Finished,
    ReasoningDelta,
    RefusalDelta,
    StreamPiece,
    TextDelta,
    UpstreamBroken,
    Usage,
)
from folyam.redaction import Redactor

__all__ = ["ChunkReader", "Piece", "error_message"]

# What a chunk reads as: a stream piece, or answer text (one chunk's) as a bare str, made a TextDelta when a
# read's pieces are joined (a TextDelta per token cost as much as decoding the token's JSON).
Piece = StreamPiece | str


class _Text(msgspec.Struct):
    text: str = ""


class _Part(msgspec.Struct):
    type: str = ""
    text: str | None = None
    # Mistral's magistral nests text parts here; others send a string.
    thinking: str | list[_Text] | None = None


class _Delta(msgspec.Struct):
    content: str | list[_Part] | None = None
    reasoning_content: str | None = None  # DeepSeek, vLLM, llama.cpp
    reasoning: str | None = None  # OpenRouter, Ollama, Groq, newer vLLM
    refusal: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    # A server that ignores `stream` answers one whole completion, with a message instead of a delta.
    message: _Delta | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    # mlx-vlm's spelling.
    input_tokens: int | None = None
    output_tokens: int | None = None


class _XGroq(msgspec.Struct):
    usage: _Usage | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    x_groq: _XGroq | None = None
    error: Any = None
    # vLLM's older stream errors: {"object": "error", "message": …, "code": …}.
    object: str | None = None
    message: Any = None


_decode: Final = msgspec.json.Decoder(_Chunk).decode
_decode_any: Final = msgspec.json.Decoder().decode
_REASONING_PARTS: Final = frozenset({"thinking", "reasoning"})


class ChunkReader:
    """Reads one attempt's chunks in order; `finished` says whether a finish reason has arrived."""

    __slots__ = ("_redact", "_think", "finished")

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact
        # Until the answer is known not to open with `<think>`; then None, the fast path.
        self._think: _ThinkSplitter | None = _ThinkSplitter()
        self.finished = False

    def read(self, data: bytes, pieces: list[Piece]) -> None:
        """Adds the pieces of one chunk's JSON to `pieces`."""
        try:
            chunk = _decode(data)
        except msgspec.DecodeError as exc:
            raise UpstreamBroken(
                "The model server sent a malformed chunk.", detail=self._redact(f"{exc}: {data[:200]!r}")
            ) from exc
        if chunk.error is not None:
            raise self._error(chunk.error)
        if chunk.object == "error":
            raise self._error(chunk.message)
        if chunk.choices:
            choice = chunk.choices[0]
            delta = choice.delta or choice.message
            if delta is not None:
                reasoning = delta.reasoning_content or delta.reasoning  # some servers send both, alike
                if reasoning:
                    pieces.append(ReasoningDelta(reasoning))
                content = delta.content
                if isinstance(content, str):
                    if content:
                        if self._think is None:
                            pieces.append(content)
                        else:
                            self._split(content, pieces)
                elif content:
                    self._parts(content, pieces)
                if delta.refusal:
                    pieces.append(RefusalDelta(delta.refusal))
            if choice.finish_reason and not self.finished:
                pieces.extend(self.close())
                self.finished = True
                pieces.append(Finished(choice.finish_reason))
        usage = chunk.usage or (chunk.x_groq.usage if chunk.x_groq is not None else None)
        if usage is not None:
            prompt = usage.prompt_tokens or usage.input_tokens or 0
            completion = usage.completion_tokens or usage.output_tokens or 0
            total = usage.total_tokens or prompt + completion  # null, or 0 beside real counts
            pieces.append(Usage(prompt, completion, total))

    def error_event(self, data: bytes) -> UpstreamBroken:
        """An `event: error` (or bare `error:` line): its data is JSON with a message, or plain text."""
        try:
            body = _decode_any(data)
        except msgspec.DecodeError:
            body = data.decode("utf-8", "replace")
        if isinstance(body, dict) and "error" in body:
            body = body["error"]
        return self._error(body)

    def close(self) -> list[Piece]:
        """What the `<think>` splitter still holds, once no more content can come."""
        think, self._think = self._think, None
        return think.close() if think is not None else []

    def _split(self, content: str, pieces: list[Piece]) -> None:
        assert self._think is not None
        if self._think.feed(content, pieces):
            self._think = None

    def _parts(self, parts: list[_Part], pieces: list[Piece]) -> None:
        for part in parts:
            if part.type in _REASONING_PARTS:
                thinking = part.thinking
                text = "".join(t.text for t in thinking) if isinstance(thinking, list) else thinking or part.text
                if text:
                    pieces.append(ReasoningDelta(text))
            elif part.text:  # "text", or a type we do not know that still carries text
                pieces.append(TextDelta(part.text))

    def _error(self, error: object) -> UpstreamBroken:
        # The server's own words, which may echo our request: redacted and trimmed.
        message = error_message(error)
        return UpstreamBroken(
            f"The model server reported an error: {self._redact.for_people(message) or 'no details'}",
            detail=self._redact(message),
        )


def error_message(error: object) -> str:
    """The message in an error as servers send it: a string, or an object with `message` (or `msg`,
    `detail`, a nested `error`)."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "msg", "detail", "error"):
            value = error.get(key)
            if isinstance(value, str | dict) and value:
                return error_message(value)
        return msgspec.json.encode(error).decode()
    return "" if error is None else str(error)


_OPEN: Final = "<think>"
_CLOSE: Final = "</think>"
_START, _THINKING, _AFTER = range(3)
# Whitespace held while waiting to see whether `<think>` comes: past this, it is the answer.
_MAX_LEADING: Final = 256


class _ThinkSplitter:
    """`<think>…</think>` at the start of the content (a reasoning model served without a reasoning
    parser), split into reasoning and answer as it streams; either tag may be cut across chunks. An
    unclosed `<think>` stays reasoning to the end."""

    __slots__ = ("_held", "_state", "_thought")

    def __init__(self) -> None:
        self._state = _START
        self._held = ""
        self._thought = False  # reasoning text has been emitted (leading whitespace is dropped)

    def feed(self, text: str, pieces: list[Piece]) -> bool:
        """Adds the pieces `text` completes; True once the rest is plain answer."""
        text, self._held = self._held + text, ""
        if self._state == _START:
            stripped = text.lstrip()
            if len(stripped) < len(_OPEN) and _OPEN.startswith(stripped) and len(text) <= _MAX_LEADING:
                self._held = text
                return False
            if not stripped.startswith(_OPEN):
                pieces.append(TextDelta(text))
                return True
            self._state = _THINKING
            text = stripped[len(_OPEN) :]
        if self._state == _THINKING:
            end = text.find(_CLOSE)
            if end < 0:
                keep = _tag_prefix_at_end(text)
                self._think(text[: len(text) - keep], pieces)
                self._held = text[len(text) - keep :]
                return False
            self._think(text[:end], pieces)
            self._state = _AFTER
            text = text[end + len(_CLOSE) :]
        text = text.lstrip()  # the blank line models put after `</think>`
        if text:
            pieces.append(TextDelta(text))
        return bool(text)

    def close(self) -> list[Piece]:
        pieces: list[Piece] = []
        if self._held:
            if self._state == _START:
                pieces.append(TextDelta(self._held))
            else:
                self._think(self._held, pieces)
        self._held = ""
        return pieces

    def _think(self, text: str, pieces: list[Piece]) -> None:
        if not self._thought:
            text = text.lstrip()
            self._thought = bool(text)
        if text:
            pieces.append(ReasoningDelta(text))


def _tag_prefix_at_end(text: str) -> int:
    """The length of the longest end of `text` that could begin `</think>`: one that starts at the last
    `<` of the last few characters (the tag holds only one `<`)."""
    start = text.rfind("<", max(0, len(text) - len(_CLOSE) + 1))
    return len(text) - start if start >= 0 and _CLOSE.startswith(text[start:]) else 0
