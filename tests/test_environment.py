"""Folyam's components in a Jinja environment of another app's: `add_to_environment` (and
`make_environment`, built on it)."""

from __future__ import annotations

import importlib
import os
import sys
import time
import typing
from pathlib import Path
from typing import Any

import jinja2
import pytest
from markupsafe import Markup

import folyam.components
from folyam.components import (
    Answer,
    IncompatibleEnvironment,
    Partial,
    SwapStyle,
    UserMessage,
    add_to_environment,
    make_environment,
    render_component,
)
from folyam.components._render import partial_parts
from tests.test_components import COMPONENTS

FOLYAM = make_environment()


@pytest.mark.parametrize(
    "settings",
    [
        {},  # Jinja's defaults
        {"trim_blocks": True},
        {"lstrip_blocks": True},
        {"keep_trailing_newline": True},
        {"trim_blocks": True, "lstrip_blocks": True, "undefined": jinja2.StrictUndefined},
    ],
    ids=repr,
)
def test_every_component_renders_the_same_whatever_the_whitespace_settings(settings: dict[str, Any]) -> None:
    env = add_to_environment(jinja2.Environment(autoescape=True, **settings))
    for name, component in COMPONENTS.items():
        assert render_component(env, component) == render_component(FOLYAM, component), name


def test_a_host_template_calls_component_and_finds_its_own_templates_first(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "answer.html").write_text("the host's own answer template")
    (tmp_path / "page.html").write_text('{% include "components/answer.html" %}|{{ component(message) }}')
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), autoescape=jinja2.select_autoescape())
    add_to_environment(env)
    message = UserMessage(text="<b>hi</b>")
    html = env.get_template("page.html").render(message=message)
    assert html == "the host's own answer template|" + str(render_component(FOLYAM, message))
    assert "&lt;b&gt;hi&lt;/b&gt;" in html


def test_a_host_overrides_a_component_template_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "folyam").mkdir()
    (tmp_path / "folyam" / "message.html").write_text("<q>{{ text }}</q>")
    env = add_to_environment(jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), autoescape=True))
    assert render_component(env, UserMessage(text="<hi>")) == "<q>&lt;hi&gt;</q>"


def test_a_host_package_named_components_does_not_shadow_folyams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "__init__.py").write_text('NAME = "host"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "components", raising=False)
    try:
        assert importlib.import_module("components").NAME == "host"
        assert importlib.reload(folyam.components).Answer is Answer
        assert render_component(make_environment(), UserMessage(text="x")) == render_component(
            FOLYAM, UserMessage(text="x")
        )
    finally:
        sys.modules.pop("components", None)


@pytest.mark.parametrize(
    "autoescape", [False, jinja2.select_autoescape(["xml"]), lambda name: False], ids=["off", "xml only", "never"]
)
def test_an_environment_that_would_not_escape_the_templates_is_refused(autoescape: object) -> None:
    env = jinja2.Environment(autoescape=autoescape)  # type: ignore[arg-type]
    with pytest.raises(IncompatibleEnvironment, match="autoescape"):
        add_to_environment(env)
    assert "component" not in env.globals and env.loader is None


def test_autoescape_turned_off_later_is_refused_at_render_never_sent_unescaped_as_safe() -> None:
    env = add_to_environment(jinja2.Environment(autoescape=True))
    env.autoescape = False
    with pytest.raises(IncompatibleEnvironment, match="autoescape"):
        render_component(env, UserMessage(text="<script>alert(1)</script>"))


def test_other_delimiters_and_a_global_named_component_are_refused() -> None:
    with pytest.raises(IncompatibleEnvironment, match="block_start_string is '<%'"):
        add_to_environment(jinja2.Environment(autoescape=True, block_start_string="<%", block_end_string="%>"))
    env = jinja2.Environment(autoescape=True)
    env.globals["component"] = lambda obj: Markup("the host's")
    with pytest.raises(IncompatibleEnvironment, match="'component'"):
        add_to_environment(env)


def test_adding_twice_changes_nothing(tmp_path: Path) -> None:
    env = add_to_environment(jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), autoescape=True))
    loader = env.loader
    assert add_to_environment(env) is env and env.loader is loader
    assert isinstance(loader, jinja2.ChoiceLoader) and len(loader.loaders) == 2
    assert sorted(env.list_templates()) == sorted(
        f"folyam/{p.name}" for p in Path(folyam.components.__file__).parent.joinpath("templates").glob("*.html")
    )


def test_an_answer_in_a_host_environment_equals_the_one_in_folyams() -> None:
    answer = Answer(generation_id="G1", events_url="/generations/G1/events")
    env = add_to_environment(jinja2.Environment(autoescape=True))
    assert render_component(env, answer) == render_component(FOLYAM, answer)


@pytest.mark.parametrize("swap", typing.get_args(SwapStyle))
@pytest.mark.parametrize("target", ["#answer-G1-body", "#a\"b'&<c>", ""])
def test_a_partial_is_its_template_rendered_with_its_fields(swap: SwapStyle, target: str) -> None:
    """A partial is put together from its template's HTML around its target and content, split once per
    swap style: it must equal the template rendered for that target and content, whatever they hold."""
    for content in (Markup("<p>x</p>"), "<script>alert(1)</script>", Markup("")):
        expected = FOLYAM.get_template(Partial.template).render(target=target, swap=swap, content=content)
        assert render_component(FOLYAM, Partial(target, swap, content)) == expected  # type: ignore[arg-type]
    before, after = partial_parts(FOLYAM, target, swap)
    content = Markup("<p>y</p>")
    assert "".join((before, content, after)) == FOLYAM.get_template(Partial.template).render(
        target=target, swap=swap, content=content
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('<x-p t="{{ target|upper }}" s="{{ swap }}">', '<x-p t="#A&amp;B" s="outerHTML">'),
        ('<x-p t="{{ target|lower }}" s="{{ swap }}">', '<x-p t="#a&amp;b" s="outerHTML">'),
        ('<x-p t="{{ target|replace("#", "") }}" s="{{ swap }}">', '<x-p t="A&amp;b" s="outerHTML">'),
        ('<x-p t="{{ target }}" u="{{ target }}">', '<x-p t="#A&amp;b" u="#A&amp;b">'),
        ('<x-p{% if target == "#A&b" %} hit{% endif %}>', "<x-p hit>"),
    ],
)
def test_a_host_partial_template_is_rendered_as_it_is(tmp_path: Path, template: str, expected: str) -> None:
    for auto_reload in (True, False):
        env = _with_own_partial(tmp_path, template + "{{ content }}</x-p>", auto_reload=auto_reload)
        partial = Partial("#A&b", "outerHTML", Markup("<i>c</i>"))
        assert render_component(env, partial) == expected + "<i>c</i></x-p>"
        assert partial_parts(env, "#A&b", "outerHTML") == (expected, "</x-p>")


@pytest.mark.parametrize(
    "content", ["{{ content }}|{{ content }}", "{% if content %}{{ content }}{% endif %}", "{{ content|upper }}"]
)
def test_a_host_partial_template_that_does_more_with_its_content_is_rendered_as_it_is(
    tmp_path: Path, content: str
) -> None:
    env = _with_own_partial(tmp_path, f'<x-p t="{{{{ target }}}}">{content}</x-p>')
    template = env.get_template("folyam/partial.html")
    for markup in (Markup("<i>c</i>"), Markup()):
        partial = Partial("#a", "innerHTML", markup)
        assert render_component(env, partial) == template.render(target="#a", swap="innerHTML", content=markup)


@pytest.mark.parametrize("content", ["{{ content }}|{{ content }}", "{{ content|upper }}"])
def test_an_answers_events_refuse_a_partial_template_that_does_not_render_its_content_once_as_it_is(
    tmp_path: Path, content: str
) -> None:
    env = _with_own_partial(tmp_path, f'<x-p t="{{{{ target }}}}">{content}</x-p>')
    with pytest.raises(IncompatibleEnvironment, match="content"):
        partial_parts(env, "#a", "innerHTML")


def test_a_partial_in_an_environment_that_finalizes_values_is_rendered_through_it() -> None:
    env = add_to_environment(jinja2.Environment(autoescape=True, finalize=lambda v: "" if v is None else v))
    assert render_component(env, Partial("#a", "innerHTML", None)) == (  # type: ignore[arg-type]
        '<hx-partial hx-target="#a" hx-swap="innerHTML"></hx-partial>'
    )


def test_folyams_own_partials_are_joined_and_a_target_with_a_nul_is_refused() -> None:
    renderer = FOLYAM.globals["component"]
    assert renderer._partial_shape("innerHTML") == (
        '<hx-partial hx-target="',
        '" hx-swap="innerHTML">',
        "</hx-partial>",
    )
    env = add_to_environment(jinja2.Environment(autoescape=True))  # reloads templates: rendered each time
    with pytest.raises(ValueError, match="NUL"):
        partial_parts(env, "#a\x00content\x00", "innerHTML")


def test_an_environment_that_reloads_templates_renders_the_changed_ones(tmp_path: Path) -> None:
    """Templates are kept once loaded only where the environment does not reload them."""
    (tmp_path / "folyam").mkdir()
    message, partial = tmp_path / "folyam" / "message.html", tmp_path / "folyam" / "partial.html"
    message.write_text("<q>{{ text }}</q>")
    partial.write_text('<x-p t="{{ target }}">{{ content }}</x-p>')
    env = add_to_environment(jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), autoescape=True))
    assert render_component(env, UserMessage(text="hi")) == "<q>hi</q>"
    assert render_component(env, Partial("#a", "innerHTML", Markup("c"))) == '<x-p t="#a">c</x-p>'
    message.write_text("<blockquote>{{ text }}</blockquote>")
    partial.write_text('<y-p t="{{ target }}">{{ content }}</y-p>')
    future = time.time() + 10  # (Jinja compares modification times, in whole seconds on some file systems)
    os.utime(message, (future, future))
    os.utime(partial, (future, future))
    assert render_component(env, UserMessage(text="hi")) == "<blockquote>hi</blockquote>"
    assert render_component(env, Partial("#a", "innerHTML", Markup("c"))) == '<y-p t="#a">c</y-p>'


def test_an_environment_that_starts_reloading_templates_renders_the_changed_ones(tmp_path: Path) -> None:
    (tmp_path / "folyam").mkdir()
    message = tmp_path / "folyam" / "message.html"
    message.write_text("<q>{{ text }}</q>")
    env = make_environment(tmp_path)
    assert render_component(env, UserMessage(text="hi")) == "<q>hi</q>"
    env.auto_reload = True
    message.write_text("<blockquote>{{ text }}</blockquote>")
    future = time.time() + 10
    os.utime(message, (future, future))
    assert render_component(env, UserMessage(text="hi")) == "<blockquote>hi</blockquote>"


def test_a_component_rendered_through_another_environment_uses_that_one(tmp_path: Path) -> None:
    """An overlay shares its parent's globals, `component` included: rendering in the overlay still
    loads from the overlay."""
    (tmp_path / "folyam").mkdir()
    (tmp_path / "folyam" / "message.html").write_text("<q>{{ text }}</q>")
    env = make_environment()
    overlay = env.overlay(loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(tmp_path), env.loader]))  # type: ignore[list-item]
    assert render_component(overlay, UserMessage(text="hi")) == "<q>hi</q>"
    assert render_component(env, UserMessage(text="hi")) == render_component(FOLYAM, UserMessage(text="hi"))


def _with_own_partial(folder: Path, template: str, *, auto_reload: bool = True) -> jinja2.Environment:
    """A host's environment with its own partial template."""
    (folder / "folyam").mkdir(exist_ok=True)
    (folder / "folyam" / "partial.html").write_text(template)
    return add_to_environment(
        jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True, auto_reload=auto_reload)
    )
