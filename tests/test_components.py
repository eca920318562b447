"""Every component's HTML, as syrupy snapshots (read a snapshot diff like code)."""

from __future__ import annotations

import jinja2
import pytest
from markupsafe import Markup
from syrupy.assertion import SnapshotAssertion

from components import (
    Answer,
    CodeBlock,
    Composer,
    ErrorNotice,
    Exchange,
    Formula,
    Partial,
    Timing,
    UserMessage,
    make_environment,
    render_component,
)


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return make_environment()


TIMING = Timing(
    model="gpt-4o-mini",
    first_token_ms=412.4,
    total_ms=5321.0,
    chunks=231,
    tokens=230,
    tokens_reported=True,
    tokens_per_second=47.02,
    prompt_tokens=12,
    total_tokens=242,
)

COMPONENTS = {
    "user_message": UserMessage(text="What is <b>SSE</b>?\nTwo lines & more."),
    "answer_streaming": Answer(generation_id="G1", events_url="/generations/G1/events"),
    "answer_streaming_reloaded": Answer(
        generation_id="G3",
        events_url="/generations/G3/events?after=7",
        stop_url="/generations/G3/stop",
        body=Markup("<p>first block</p>"),
        tail=Markup("<p>open tail</p>"),
    ),
    "exchange": Exchange(
        message=UserMessage(text="Question?"),
        answer=Answer(generation_id="G4", events_url="/generations/G4/events", stop_url="/generations/G4/stop"),
    ),
    "answer_finished": Answer(
        generation_id="G2", events_url=None, body=Markup("Done &amp; dusted"), status=Markup("<p>timing</p>")
    ),
    "timing_reported": TIMING,
    "timing_estimated_no_token": Timing(
        model="folyam-demo",
        first_token_ms=None,
        total_ms=12.0,
        chunks=0,
        tokens=0,
        tokens_reported=False,
        tokens_per_second=None,
    ),
    "error": ErrorNotice(title="Could not reach the model server", message="Connection <refused>."),
    "composer": Composer(action_url="/chat/C1/messages", request_id="R1", csrf_token="T1", max_chars=8000),
    "composer_with_error": Composer(
        action_url="/chat/C1/messages",
        request_id="R2",
        csrf_token="T2",
        max_chars=10,
        query="kept text",
        error=ErrorNotice(title="Question too long", message="It has 11 characters; the limit is 10."),
    ),
    "code_block": CodeBlock(language="python", code=Markup('<span class="k">pass</span>\n')),
    "code_block_no_language": CodeBlock(language="", code=Markup("&lt;plain&gt;\n")),
    "formula_inline": Formula(source="$x^2$", mathml=Markup("<math><msup><mi>x</mi><mn>2</mn></msup></math>")),
    "formula_block": Formula(source="$$\nx\n$$", mathml=Markup('<math display="block"><mi>x</mi></math>'), block=True),
    "formula_source_inline": Formula(source="$\\frac{1}{$", mathml=None),
    "formula_source_block": Formula(source="$$\n<b>never closed</b>", mathml=None, block=True),
    "partial": Partial(target="#answer-G1-body", swap="beforeend", content=Markup("<p>x</p>")),
}


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_html(env: jinja2.Environment, name: str, snapshot: SnapshotAssertion) -> None:
    assert render_component(env, COMPONENTS[name]) == snapshot


def test_text_arguments_are_escaped(env: jinja2.Environment) -> None:
    html = render_component(env, UserMessage(text="<script>x</script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    html = render_component(env, ErrorNotice(title="<b>", message='" onload="x'))
    assert "<b>" not in html and "&#34; onload=&#34;x" in html


def test_each_component_template_declares_its_arguments(env: jinja2.Environment) -> None:
    for component in COMPONENTS.values():
        source, _, _ = env.loader.get_source(env, component.template)  # type: ignore[union-attr]
        assert source.startswith("{#-"), component.template
