"""Every component's HTML, as syrupy snapshots (read a snapshot diff like code)."""

from __future__ import annotations

import dataclasses

import jinja2
import pytest
from markupsafe import Markup
from syrupy.assertion import SnapshotAssertion

from folyam.components import (
    Answer,
    CodeBlock,
    ErrorNotice,
    Exchange,
    Formula,
    Partial,
    Timing,
    UserMessage,
    make_environment,
    render_component,
)
from folyam.components._answer_status import Announcement, AnswerActions, AnswerStatus
from folyam.components._composer import Composer, ComposerAction, ModelChoice
from folyam.components._confirm_delete import ConfirmDelete
from folyam.components._conversation_list import ConversationEntry, ConversationItems, ConversationList, RenameForm
from folyam.components._export_link import ExportLink
from folyam.components._message import EditForm
from folyam.components._stream_assets import StreamAssets
from folyam.components._theme import ThemeSwitch
from folyam.components._thinking import RefusalLabel, Thinking, ThinkingSummary


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
    "user_message_editable": UserMessage(text="Edit <me>", edit_url="/chat/C1/exchanges/E1/edit"),
    "edit_form": EditForm(
        action_url="/chat/C1/exchanges/E1/edit",
        cancel_url="/chat/C1",
        text="Old <question>",
        csrf_token="T1",
        max_chars=100,
    ),
    "note": ErrorNotice(title="Stopped", message="You stopped this answer; what arrived is kept.", tone="note"),
    "answer_actions": AnswerActions(
        regenerate_url="/chat/C1/exchanges/E1/regenerate", csrf_token="T1", source="# Hi <b>\n"
    ),
    "answer_actions_retry": AnswerActions(
        regenerate_url="/chat/C1/exchanges/E1/regenerate", csrf_token="T1", source="", retry=True
    ),
    "answer_status": AnswerStatus(
        notice=ErrorNotice("Stopped", "You stopped this answer.", "note"),
        timing=TIMING,
        actions=AnswerActions(regenerate_url="/chat/C1/exchanges/E1/regenerate", csrf_token="T1", source="text"),
    ),
    "announcement": Announcement("Answer finished in 4.8 s"),
    "conversation_list": ConversationList(
        (ConversationEntry("C1", "Newest <one>", current=True), ConversationEntry("C2", "Older “quoted”"))
    ),
    "conversation_list_empty": ConversationList(()),
    "conversation_list_with_more": ConversationList(
        (ConversationEntry("C1", "Newest"),), more="/conversations?before=1764745200000000.C1"
    ),
    "conversation_list_older_page": ConversationList(
        (ConversationEntry("C9", "Older <one>"),), more="/conversations?before=1.C9", in_sidebar=False
    ),
    "conversation_items": ConversationItems(
        (ConversationEntry("C9", "Older <one>"), ConversationEntry("C8", "Oldest")),
        more="/conversations?before=1.C8",
    ),
    "conversation_items_last": ConversationItems((ConversationEntry("C7", "The first ever"),)),
    "rename_form_in_list": RenameForm("C1", "Old <title>", "T1"),
    "rename_form_page": RenameForm("C1", "Old title", "T1", in_list=False),
    "confirm_delete": ConfirmDelete("C1", "A <title>", "T1"),
    "theme_switch": ThemeSwitch("dark", "T1", "/chat/C1"),
    "export_link": ExportLink("C1"),
    "export_link_none": ExportLink(None),
    "composer_action_ask": ComposerAction(),
    "composer_action_stop": ComposerAction("/generations/G1/stop"),
    "composer_busy_with_models": Composer(
        action_url="/chat/C1/messages",
        request_id="R3",
        csrf_token="T3",
        max_chars=8000,
        action=ComposerAction("/generations/G1/stop"),
        models=ModelChoice(("default-model", "other <model>"), "other <model>"),
        system_prompt="Be <brief>.",
    ),
    "answer_streaming": Answer(generation_id="G1", events_url="/generations/G1/events"),
    "answer_streaming_reloaded": Answer(
        generation_id="G3",
        events_url="/generations/G3/events?after=7",
        body=Markup("<p>first block</p>"),
        tail=Markup("<p>open tail</p>"),
    ),
    "exchange": Exchange(
        message=UserMessage(text="Question?"),
        answer=Answer(generation_id="G4", events_url="/generations/G4/events"),
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
    "thinking_open": Thinking("G5", body=Markup("<p>Let me see.</p>"), tail=Markup("<p>So the</p>")),
    "thinking_closed": Thinking("G5", body=Markup("<p>Let me see.</p>"), seconds=12.345, open=False),
    "thinking_summary_closing": ThinkingSummary("G5", 12.345, closes=True),
    "refusal_label": RefusalLabel(),
    "answer_with_thinking_refused": Answer(
        generation_id="G6",
        events_url=None,
        body=Markup("<p>I can’t help with that.</p>"),
        status=Markup("<p>timing</p>"),
        thinking=Thinking("G6", body=Markup("<p>Hmm.</p>"), seconds=1.5, open=False),
        refused=True,
    ),
    "notice_output_limit": ErrorNotice(
        "The answer reached the model's output limit", "It is cut off there; what arrived is kept.", "warning"
    ),
    "notice_content_filter": ErrorNotice(
        "The provider's content filter stopped the answer", "What arrived before it is kept.", "warning"
    ),
    "notice_ended_early": ErrorNotice(
        "The model server ended the answer early", "The stream ended without a finish reason; what arrived is kept."
    ),
    "timing_with_thinking": dataclasses.replace(
        TIMING,
        first_reasoning_ms=230.0,
        thinking_ms=12345.0,
        first_token_ms=12575.0,
        answering_ms=4000.0,
        total_ms=16575.0,
    ),
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


def test_stream_assets_link_each_file_with_its_version_when_known(env: jinja2.Environment) -> None:
    versions = {"markdown.css": "v=0123456789ab", "vendor/htmx-4.0.1.min.js": "v=ba9876543210"}
    html = str(render_component(env, StreamAssets("/kit/static", versions)))
    assert '<link rel="stylesheet" href="/kit/static/markdown.css?v=0123456789ab">' in html
    assert '<script src="/kit/static/vendor/htmx-4.0.1.min.js?v=ba9876543210"></script>' in html
    # Without a version, a file is linked bare (then revalidated by browsers, never kept stale).
    assert '<link rel="stylesheet" href="/kit/static/pygments.css">' in html
    assert '<script src="/kit/static/vendor/hx-sse-4.0.1.min.js"></script>' in html
    assert html == str(render_component(env, StreamAssets("/kit/static", {**versions, "other.css": "v=1"})))
