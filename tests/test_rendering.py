from __future__ import annotations

from folyam.rendering import PlainTextRenderer


def render_all(*pieces: str) -> str:
    renderer = PlainTextRenderer()
    return "".join(str(renderer.feed(p).append) for p in pieces) + str(renderer.finish().append)


def test_text_is_escaped() -> None:
    assert render_all("<script>", "&", '"x"') == "&lt;script&gt;&amp;&#34;x&#34;"


def test_line_endings_are_normalised_across_piece_boundaries() -> None:
    assert render_all("a\r", "\nb") == "a\nb"
    assert render_all("a\r", "b") == "a\nb"
    assert render_all("a\r\r", "\n") == "a\n\n"
    assert render_all("end\r") == "end\n"
    assert render_all("a\r\nb\rc\n") == "a\nb\nc\n"


def test_nothing_is_emitted_for_a_held_carriage_return() -> None:
    renderer = PlainTextRenderer()
    assert str(renderer.feed("\r").append) == ""
    assert str(renderer.feed("x").append) == "\nx"
