"""Every recorded stream shape (tests/corpus/streams/) through the whole app over HTTP, as a person sees
it: the answer, the thinking block, the notice and the usage line, after replaying the server's bytes."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from tests.conftest import ask
from tests.support.corpus import Shape, shapes
from tests.support.fake_upstream import FakeUpstream
from tests.support.sse import answer_html, read_events

PIPELINE = MarkdownPipeline(make_environment())
SHAPES = shapes()


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_each_shape_shows_what_the_server_sent(
    shape: Shape, openai_server: str, upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.script(shape.script(write_size=64))
    _, frames = read_events(client, ask(client, openai_server, "corpus"))
    expect = shape.expect
    status = frames[-2].data

    # The answer: its text, or the refusal shown as the answer; never the reasoning.
    assert answer_html(frames) == str(PIPELINE.render(expect.text + expect.refusal))
    # The thinking block holds the reasoning, rendered apart.
    thinking = answer_html(frames, reasoning=True)
    assert thinking == (str(PIPELINE.render(expect.reasoning)) if expect.reasoning else "")
    if expect.refusal:
        assert "answer__refusal" in "".join(frame.data for frame in frames)

    # The notice says what happened.
    if expect.error:
        assert "notice--error" in status, status
        for words in filter(None, [expect.message]):
            assert words.lower() in unescape(re.sub(r"<[^>]+>", "", status)).lower(), status
    elif expect.finish in ("length", "content_filter"):
        assert "notice--warning" in status, status
    else:
        assert "notice--" not in status or (not expect.text and not expect.refusal), status

    # The usage line: the server's counts, or tokens marked as estimated.
    if expect.usage is not None and not expect.error:
        prompt, completion, total = expect.usage
        assert f"{prompt} prompt + {completion} completion = {total} tokens" in status, status
    elif not expect.error:
        assert "estimated" in status, status
