"""Server-sent events framing (WHATWG HTML, "event stream interpretation") read from a model server's
raw bytes, with the leniencies real servers need.

Why by hand: httpx's `aiter_lines` decodes to text first, the SDK's `SSEDecoder` is private and sets no
size limit; splitting bytes here keeps CR, LF and CRLF line ends, caps an event's size, and hands the
JSON decoder bytes. Each byte is looked at a constant number of times (linear in the stream).
"""

from __future__ import annotations

from typing import Final

from folyam.providers import UpstreamBroken

__all__ = ["ERROR", "MAX_EVENT_BYTES", "Event", "EventStreamDecoder"]

# (event type, data): b"" is the default "message" type; ERROR marks an error event in any framing.
Event = tuple[bytes, bytes]
ERROR: Final = b"error"
MAX_EVENT_BYTES: Final = 4 * 1024 * 1024
_BOM: Final = b"\xef\xbb\xbf"


class EventStreamDecoder:
    """Feed it the body's chunks as they arrive; it returns the events they complete."""

    __slots__ = ("_data", "_json_body", "_limit", "_partial", "_partial_size", "_size", "_skip_lf", "_sniff", "_type")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        self._partial: list[bytes] = []  # an unfinished line, in the pieces it arrived in
        self._partial_size = 0
        self._skip_lf = False  # the last chunk ended in CR: an LF starting the next one is the same line end
        self._sniff = True  # before the first non-blank line: BOM, or a bare JSON body
        self._json_body = False
        self._data: list[bytes] = []
        self._size = 0
        self._type = b""

    def feed(self, chunk: bytes) -> list[Event]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            if chunk:
                self._hold(chunk)
            return []
        head, tail = chunk[: end + 1], chunk[end + 1 :]
        if self._partial:
            head = b"".join((*self._partial, head))
            self._partial.clear()
            self._partial_size = 0
        if tail:
            self._hold(tail)
        else:
            self._skip_lf = head[-1] == 0x0D
        events = self._plain_events(head)
        return events if events is not None else self._lines(head.splitlines())

    def close(self) -> list[Event]:
        """At EOF. Unlike a browser we keep an event the server did not end with a blank line: some send
        their last chunk or `[DONE]` without it, and dropping it would lose the finish reason."""
        lines = [b"".join(self._partial)] if self._partial else []
        self._partial.clear()
        events = self._lines(lines)
        if self._data:
            events.append(self._dispatch())
        return events

    def _hold(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._partial_size + self._size > self._limit:
            raise _too_large(self._limit)

    def _plain_events(self, head: bytes) -> list[Event] | None:
        """The events of `head` (whole lines) when it is nothing but events of one `data: ` line each, what
        servers send and a read at a real pace holds, as `_lines` reads them but without its work per line
        (a third of the cost of decoding a token); None for anything else, or when an event is begun."""
        if self._sniff or self._json_body or self._data or self._size or self._type or len(head) > self._limit:
            return None
        if not head.endswith(b"\n\n") or b"\r" in head:
            return None
        blocks = head[:-2].split(b"\n\n")
        if head.count(b"\n") != 2 * len(blocks):  # a line inside a block, or a blank line more
            return None
        events = [(b"", block[6:]) for block in blocks if block.startswith(b"data: ")]
        return events if len(events) == len(blocks) else None

    def _lines(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        for line in lines:
            if self._sniff:
                if line.startswith(_BOM):
                    line = line[3:]
                if not line.strip():
                    continue
                self._sniff = False
                # A body that opens with JSON is no event stream: an error (or a whole completion) sent
                # as plain JSON. It is kept whole and read as one event at EOF.
                self._json_body = line.lstrip()[:1] in (b"{", b"[")
            if self._json_body:
                self._add(line)
            elif not line:
                if self._data:
                    events.append(self._dispatch())
                self._type = b""
            elif line[0] != 0x3A:  # ":" opens a comment (keep-alives such as `: OPENROUTER PROCESSING`)
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._add(value)
                elif name == b"event":
                    self._type = value
                elif name == ERROR:  # llama.cpp's server writes its errors as a bare `error: {…}` line
                    self._type = ERROR
                    self._add(value)
                # `id`, `retry` and unknown fields change nothing we read.
        return events

    def _add(self, value: bytes) -> None:
        self._size += len(value) + 1
        if self._size > self._limit:
            raise _too_large(self._limit)
        self._data.append(value)

    def _dispatch(self) -> Event:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = (self._type, data)
        self._data = []
        self._size = 0
        self._type = b""
        return event


def _too_large(limit: int) -> UpstreamBroken:
    return UpstreamBroken("The model server sent an oversized chunk.", detail=f"an event over {limit} bytes")
