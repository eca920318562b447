"""SSE frames: Folyam's encoder makes exactly the frames Litestar's makes, for any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from litestar.response.sse import ServerSentEventMessage
from markupsafe import Markup

from folyam.sse import encode_event

# Text with every kind of line break, alone and together, among ordinary and HTML-special characters.
_PIECES = ["a", "é", " ", "<", "&", ":", "\r", "\n", "\r\n", "\u2028", "\x00"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join) | st.text()


def litestar_frame(seq: int, data: str, event: str | None = None) -> bytes:
    return ServerSentEventMessage(data=data, event=event, id=seq).encode()


@given(seq=st.integers(min_value=0, max_value=10**12), data=_TEXT, event=st.none() | _TEXT)
def test_frames_are_litestars_for_any_text(seq: int, data: str, event: str | None) -> None:
    assert encode_event(seq, data, event) == litestar_frame(seq, data, event)


def test_every_line_break_starts_a_data_line_of_its_own() -> None:
    data_lines = b"".join(b"data: %s\r\n" % line for line in [b"a", b"b", b"c", b"", b"d", b""])
    assert encode_event(3, "a\rb\r\nc\n\nd\r") == b"id: 3\r\n" + data_lines + b"\r\n"
    assert encode_event(4, "") == b"id: 4\r\ndata: \r\n\r\n"
    assert encode_event(5, "", "done") == b"id: 5\r\nevent: done\r\ndata: \r\n\r\n"


def test_an_event_name_cannot_add_a_field() -> None:
    assert encode_event(6, "x", "done\r\ndata: injected") == b"id: 6\r\nevent: donedata: injected\r\ndata: x\r\n\r\n"


def test_markup_is_framed_as_its_text_not_escaped_again() -> None:
    html = Markup("<p>a &amp; b</p>\n<p>c</p>")
    assert encode_event(7, html) == b"id: 7\r\ndata: <p>a &amp; b</p>\r\ndata: <p>c</p>\r\n\r\n"
    assert encode_event(7, html) == litestar_frame(7, html)
