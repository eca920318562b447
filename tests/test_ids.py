"""Element ids come from one place: what the templates render is what the partials aim at."""

from __future__ import annotations

import dataclasses
import re

from markupsafe import Markup

from folyam.components import Answer, AnswerIds, Thinking, make_environment, render_component
from folyam.components._composer import Composer
from folyam.components._conversation_list import ConversationEntry, ConversationList, RenameForm
from folyam.components._export_link import ExportLink
from folyam.components._ids import PAGE_IDS
from folyam.components._theme import ThemeSwitch
from folyam.components._thinking import ThinkingSummary
from folyam.fragments import AnswerFragments, Ending, Endings
from folyam.markdown import MarkdownPipeline
from folyam.rendering import RenderUpdate, TailChange
from tests.test_components import TIMING

ENV = make_environment()


def ids_in(html: str) -> list[str]:
    return re.findall(r' id="([^"]+)"', html)


def targets_in(html: str) -> list[str]:
    return re.findall(r'<hx-partial hx-target="([^"]+)"', html)


def test_answer_ids_are_made_from_the_generation_id() -> None:
    ids = AnswerIds.of("G1")
    assert ids == AnswerIds(
        answer="answer-G1",
        thinking_slot="answer-G1-thinking",
        thinking_summary="answer-G1-thinking-summary",
        reasoning_body="answer-G1-reasoning-body",
        reasoning_tail="answer-G1-reasoning-tail",
        body="answer-G1-body",
        tail="answer-G1-tail",
        status="answer-G1-status",
    )


def test_an_answer_renders_every_id_of_its_answer_ids_and_no_other() -> None:
    ids = AnswerIds.of("G1")
    answer = Answer("G1", None, thinking=Thinking("G1", body=Markup("<p>Hmm.</p>")))
    assert answer.ids == ids
    assert sorted(ids_in(render_component(ENV, answer))) == sorted(dataclasses.astuple(ids))


def test_every_partial_of_an_answer_aims_at_an_id_its_templates_render() -> None:
    ids = AnswerIds.of("G1")
    rendered = {f"#{i}" for i in ids_in(render_component(ENV, Answer("G1", None, thinking=Thinking("G1"))))}
    page = {f"#{PAGE_IDS.composer_action}", f"#{PAGE_IDS.announcer}"}  # (the page's own, see below)
    fragments = AnswerFragments(Endings(ENV, lambda session_id: "T"), "G1")
    ending = Ending("G1", "C1", "S1", "finished", None, TIMING, "text")
    update = RenderUpdate(Markup("<p>a</p>"), (TailChange(" > ul:last-child", "beforeend", Markup("x")),))
    html = Markup().join(
        [
            fragments.update(update),
            fragments.update(update, reasoning=True),
            fragments.thinking_started(),
            fragments.thinking_ended(1.5, close=True),
            fragments.refused(),
            fragments.status(ending)[1],
            fragments.ended(Markup("<p>a</p>"), ending, Thinking("G1")),
        ]
    )
    targets = targets_in(html)
    assert f"#{ids.tail} &gt; ul:last-child" in targets and f"#{ids.reasoning_tail} &gt; ul:last-child" in targets
    assert {t.split(" ")[0] for t in targets} <= rendered | page
    assert {f"#{ids.body}", f"#{ids.status}", f"#{ids.thinking_slot}", f"#{ids.thinking_summary}"} <= set(targets)
    # The summary swapped alone keeps its id.
    assert ids_in(render_component(ENV, ThinkingSummary("G1", 1.5))) == [ids.thinking_summary]


def test_the_page_parts_render_their_page_ids() -> None:
    composer = Composer(action_url="/chat/C1/messages", request_id="R1", csrf_token="T", max_chars=10)
    assert {PAGE_IDS.composer, PAGE_IDS.composer_error, PAGE_IDS.composer_query} <= set(
        ids_in(render_component(ENV, composer))
    )
    assert {PAGE_IDS.composer_action, PAGE_IDS.composer_request_id} <= set(ids_in(render_component(ENV, composer)))
    assert ids_in(render_component(ENV, ExportLink("C1"))) == [PAGE_IDS.export_link]
    assert ids_in(render_component(ENV, ExportLink(None))) == [PAGE_IDS.export_link]
    assert ids_in(render_component(ENV, ThemeSwitch("dark", "T", "/"))) == [PAGE_IDS.theme_switch]
    entries = ConversationList((ConversationEntry("C1", "One"),))
    assert ids_in(render_component(ENV, entries)) == [PAGE_IDS.conversation_list, PAGE_IDS.conversation("C1")]
    assert ids_in(render_component(ENV, RenameForm("C1", "One", "T")))[0] == PAGE_IDS.conversation("C1")


def test_the_tail_paths_of_a_live_code_block_lead_into_the_answers_tail() -> None:
    pipeline = MarkdownPipeline(ENV)
    renderer = pipeline.renderer()
    fragments = AnswerFragments(Endings(ENV, lambda session_id: "T"), "G1")
    renderer.feed("```py\nx = 1\n")
    html = fragments.update(renderer.feed("y = 2\n"))
    assert targets_in(html) == [
        f"#{AnswerIds.of('G1').tail} &gt; div:last-child &gt; pre:last-child &gt; code:last-child"
    ]
