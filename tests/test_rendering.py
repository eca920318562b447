from __future__ import annotations

from folyam.rendering import NewlineNormalizer


def normalise(*pieces: str) -> str:
    normalizer = NewlineNormalizer()
    return "".join(normalizer.feed(p) for p in pieces) + normalizer.finish()


def test_line_endings_are_normalised_across_piece_boundaries() -> None:
    assert normalise("a\r", "\nb") == "a\nb"
    assert normalise("a\r", "b") == "a\nb"
    assert normalise("a\r\r", "\n") == "a\n\n"
    assert normalise("end\r") == "end\n"
    assert normalise("a\r\nb\rc\n") == "a\nb\nc\n"


def test_a_trailing_carriage_return_is_held_back() -> None:
    normalizer = NewlineNormalizer()
    assert normalizer.feed("\r") == ""
    assert normalizer.feed("x") == "\nx"
