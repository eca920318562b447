"""The component gallery: it shows every component, nothing in it streams, it needs nothing but the Jinja
environment and the markdown pipeline, and the whole page is a snapshot (an HTML file: open it, or read
its diff like code)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jinja2
import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template import TemplateConfig
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

import folyam.components as components
from app import ROOT, create_app
from folyam.assets import StaticAssets
from folyam.components import Answer, Exchange, make_environment
from folyam.components._answer_status import AnswerStatus
from folyam.components._composer import Composer, RequestIdField
from folyam.components._conversation_list import ConversationEntry, ConversationList
from folyam.components._theme import THEME_COOKIE
from folyam.components._thinking import RefusalLabel, ThinkingSummary
from folyam.gallery import GALLERY_PATH, GALLERY_ROUTES, gallery_page
from folyam.gallery_specimens import SHOWCASES, TOKEN, Kit
from folyam.markdown import MarkdownPipeline
from tests.conftest import TEST_SETTINGS
from tests.support.servers import serve

# Components whose template another includes or takes as HTML: shown wherever that one is.
SHOWN_INSIDE: dict[type, type] = {
    AnswerStatus: Answer,  # an answer's status is its rendered HTML
    ThinkingSummary: Answer,  # the thinking block includes it
    RefusalLabel: Answer,  # the answer includes it when refused
    RequestIdField: Composer,  # the composer includes it
    ConversationEntry: ConversationList,  # the list includes its entries
}


class HTMLSnapshot(SingleFileSnapshotExtension):
    file_extension = "html"
    _write_mode = WriteMode.TEXT


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    env = make_environment(ROOT / "templates")
    env.globals["static_url"] = StaticAssets(ROOT / "static").url  # as the app's: the pages link the files
    return env


@pytest.fixture(scope="module")
def kit(env: jinja2.Environment) -> Kit:
    return Kit(env, MarkdownPipeline(env))


@pytest.fixture(scope="module")
def gallery_url() -> Iterator[str]:
    with serve(create_app(TEST_SETTINGS)) as url:
        yield url + GALLERY_PATH


def component_classes() -> set[type]:
    """Every component: a dataclass naming its template, in any module of the components package."""
    found: set[type] = set()
    for module_info in pkgutil.iter_modules(components.__path__):
        module = importlib.import_module(f"folyam.components.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and hasattr(value, "template"):
                found.add(value)
    return found


def components_in(made: Any) -> Iterator[type]:
    """The component classes of `made` and of the components in its fields, all the way down."""
    if dataclasses.is_dataclass(made) and not isinstance(made, type):
        if hasattr(made, "template"):
            yield type(made)
        for field in dataclasses.fields(made):
            yield from components_in(getattr(made, field.name))


def test_every_component_is_shown(kit: Kit) -> None:
    shown = {cls for showcase in SHOWCASES for s in showcase.specimens for cls in components_in(s.build(kit))}
    shown |= {inner for inner, outer in SHOWN_INSIDE.items() if outer in shown}
    assert component_classes() - shown == set(), "add a specimen to folyam/gallery_specimens.py"


def test_no_answer_in_it_connects_to_an_event_stream(kit: Kit, env: jinja2.Environment) -> None:
    answers = [
        made.answer if isinstance(made, Exchange) else made
        for showcase in SHOWCASES
        for made in (s.build(kit) for s in showcase.specimens)
        if isinstance(made, Answer | Exchange)
    ]
    assert len(answers) > 10
    assert all(answer.events_url is None for answer in answers)
    page = gallery_page(env, kit.pipeline, "system")
    html = "".join(str(specimen.html) for section in page.sections for specimen in section.specimens)
    assert "hx-sse:" not in html  # no attribute (the host-head specimen names the script)
    assert re.search(r'="[^"]*/events', html) is None


def test_each_state_is_named_by_its_docstring_and_shown_by_its_source(kit: Kit, env: jinja2.Environment) -> None:
    page = gallery_page(env, kit.pipeline, "system")
    specimens = [specimen for section in page.sections for specimen in section.specimens]
    slugs = [specimen.slug for specimen in specimens] + [section.slug for section in page.sections]
    assert len(set(slugs)) == len(slugs)
    finished = next(specimen for specimen in specimens if specimen.slug == "specimen-answer-finished")
    assert finished.state == "Finished: timing (tokens as the server reported them) and actions"
    code = re.sub(r"<[^>]+>", "", str(finished.python).partition("<code>")[2])
    assert code.startswith("def answer_finished(kit: Kit) -&gt; Answer:\n    status = AnswerStatus(")
    assert "Finished: timing" not in code  # the docstring is the heading, not repeated in the code


def test_it_needs_only_the_jinja_environment_and_the_markdown_pipeline(env: jinja2.Environment) -> None:
    """No session, store, provider or event log: an app holding nothing else serves it."""
    app = Litestar(
        route_handlers=GALLERY_ROUTES,
        state=State({"jinja": env, "markdown": MarkdownPipeline(env)}),
        template_config=TemplateConfig(instance=JinjaTemplateEngine.from_environment(env)),
    )
    with serve(app, lifespan="off") as url:
        response = httpx.get(url + GALLERY_PATH + "?theme=dark", timeout=10)
    assert response.status_code == 200
    assert '<html lang="en" data-theme="dark">' in response.text
    assert response.text.count('class="gallery__specimen"') == sum(len(s.specimens) for s in SHOWCASES)


def test_the_whole_page(gallery_url: str, snapshot: SnapshotAssertion) -> None:
    with httpx.Client(timeout=10) as client:
        page = client.get(gallery_url)
        again = client.get(gallery_url)  # now with the session cookie the first response set
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    # Deterministic: no session's CSRF token, no random id, nothing that differs from one request to the next.
    assert page.text == again.text
    assert TOKEN in page.text
    # The static files' versions change with their content, which this snapshot is not about.
    assert re.findall(r'"/static/[^"?]+\?v=[0-9a-f]{12}"', page.text)
    assert re.sub(r"(/static/[^\"?]+\?v=)[0-9a-f]{12}", r"\1…", page.text) == snapshot(extension_class=HTMLSnapshot)


def test_ids_are_unique_in_the_document_and_in_each_shadow_root(gallery_url: str) -> None:
    html = httpx.get(gallery_url, timeout=10).text
    shadow_roots = re.findall(r'<template shadowrootmode="open">(.*?)</template>', html, re.S)
    assert len(shadow_roots) == sum(s.isolated for showcase in SHOWCASES for s in showcase.specimens)
    document = re.sub(r'<template shadowrootmode="open">.*?</template>', "", html, flags=re.S)
    for tree in [document, *shadow_roots]:
        ids = re.findall(r' id="([^"]+)"', tree)
        assert sorted(ids) == sorted(set(ids))


def test_a_theme_in_the_query_overrides_the_chosen_one(gallery_url: str) -> None:
    with httpx.Client(timeout=10, cookies={THEME_COOKIE: "dark"}) as client:
        chosen = client.get(gallery_url).text
        light = client.get(gallery_url, params={"theme": "light"}).text
        unknown = client.get(gallery_url, params={"theme": "purple"}).text
    assert '<html lang="en" data-theme="dark">' in chosen
    assert '<html lang="en" data-theme="light">' in light
    assert '<a class="button button--quiet" href="/-/gallery?theme=light" aria-current="true">Light</a>' in light
    assert unknown == chosen
