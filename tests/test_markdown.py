"""The markdown pipeline: safety of the HTML, and streamed == one-shot for any cut of any text."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from syrupy.assertion import SnapshotAssertion

from components import make_environment
from folyam.markdown import IncrementalMarkdown, MarkdownPipeline
from folyam.rendering import RenderUpdate

PIPELINE = MarkdownPipeline(make_environment())


class Page:
    """What the browser holds after applying each update: the body, and the live tail."""

    def __init__(self) -> None:
        self.body = ""
        self.tail = ""
        self.appended: list[str] = []

    def apply(self, update: RenderUpdate) -> None:
        if update.replace is not None:
            self.body = str(update.replace)
        self.body += str(update.append)
        if update.append:
            self.appended.append(str(update.append))
        if update.tail is not None:
            self.tail = str(update.tail)


def stream(text: str, cuts: list[int]) -> Page:
    renderer = PIPELINE.renderer()
    page = Page()
    start = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if cut > start:
            page.apply(renderer.feed(text[start:cut]))
            start = cut
    page.apply(renderer.finish())
    return page


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


MARKDOWN_WORDS = st.sampled_from(
    ["word", "**bold**", "*it*", "`code`", "~~del~~", "[link](https://x.org)", "[ref][r]", "![img](/i.png)",
     "_u_", "**open", "`", "[", "](", "<b>", "&amp;", "|", "\\*", "a_b"]
)  # fmt: skip
INLINE = st.lists(MARKDOWN_WORDS, min_size=1, max_size=6).map(" ".join)
BLOCK = st.one_of(
    INLINE,
    INLINE.map(lambda s: "# " + s),
    INLINE.map(lambda s: s + "\n---"),
    st.lists(INLINE, min_size=1, max_size=3).map(lambda items: "\n".join("- " + i for i in items)),
    st.lists(INLINE, min_size=1, max_size=3).map(lambda items: "\n".join(f"{n}. {i}" for n, i in enumerate(items, 1))),
    st.lists(INLINE, min_size=1, max_size=3).map(lambda lines: "\n".join("> " + line for line in lines)),
    st.tuples(st.sampled_from(["", "python", "js"]), st.lists(INLINE, max_size=3)).map(
        lambda f: "```" + f[0] + "\n" + "\n".join(f[1]) + "\n```"
    ),
    st.tuples(INLINE, INLINE).map(lambda r: f"| {r[0]} | x |\n|---|---|\n| {r[1]} | y |"),
    st.just("[r]: https://ref.example"),
    st.just("***"),
    st.just("```\nnever closed"),
    st.just("    indented code"),
)
SEPARATOR = st.sampled_from(["\n", "\n\n", "\n\n\n", "\r\n\r\n"])


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[int]]:
    blocks = draw(st.lists(BLOCK, min_size=1, max_size=8))
    separators = draw(st.lists(SEPARATOR, min_size=len(blocks), max_size=len(blocks)))
    text = "".join(b + s for b, s in zip(blocks, separators, strict=True))
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    cuts = draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=30))
    return text, cuts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_text_cut_anywhere_streams_to_the_one_shot_render(document: tuple[str, list[int]]) -> None:
    text, cuts = document
    page = stream(text, cuts)
    assert page.body == one_shot(text)
    assert page.tail == ""


def test_finished_blocks_are_sent_once_and_only_the_tail_is_replaced() -> None:
    text = "# Title\n\nFirst paragraph.\n\n- a\n- b\n\nLast words"
    page = stream(text, list(range(1, len(text))))
    assert page.appended == [
        "<h1>Title</h1>\n",
        "<p>First paragraph.</p>\n",
        # "Last words" never got its newline: the list was still the last complete block until the end.
        "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<p>Last words</p>\n",
    ]


def test_a_late_reference_definition_renders_the_finished_part_again_once() -> None:
    renderer = PIPELINE.renderer()
    first = renderer.feed("Use [x].\n\nNext.\n\n")
    assert first.append == "<p>Use [x].</p>\n" and first.replace is None
    update = renderer.feed("[x]: https://x.org\n\nTail\n")
    assert update.replace is not None and 'href="https://x.org"' in update.replace
    assert renderer.feed("More\n\n").replace is None


def test_the_live_tail_hides_half_typed_syntax() -> None:
    renderer = PIPELINE.renderer()
    tails = [renderer.feed(piece).tail for piece in ["Some **bo", "ld** and [a li", "nk](https://ex"]]
    assert tails[0] == "<p>Some <strong>bo</strong></p>\n"
    assert tails[1] is not None and "**" not in tails[1] and "[" not in tails[1]
    assert tails[2] is not None and "](" not in tails[2] and "https://ex" not in tails[2]


def test_an_open_fence_grows_as_a_code_block() -> None:
    renderer = PIPELINE.renderer()
    renderer.feed("```python\nx = 1\n")
    tail = renderer.feed("y = 2").tail
    assert tail is not None and '<pre class="highlight"><code>x = 1\ny = 2</code></pre>' in tail
    final = renderer.finish()
    assert '<span class="n">x</span>' in final.append  # highlighted once, when finished


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
            assert name in {"href", "class", "rel", "type", "title"}, html
            assert not (value or "").lower().startswith(("javascript:", "data:")), html
    assert "<hx-" not in html.lower()


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


class _AlwaysRerender(IncrementalMarkdown):
    """The reference: re-renders the tail on every feed, never extending it in place."""

    def _render_tail(self) -> Markup:
        tail = super()._render_tail()
        self._extendable = None
        return tail


PROSE_WORDS = st.sampled_from(
    ["word", " ", "  ", "Words", ".", ",", "1", "2.", "(x)", '"q"', "'s", "é", "naïve", "—", "-", "=", "%",
     "a_b", "*", "**", "_", "`", "[", "]", "(", "#", ">", "|", "~", "&", ";", "\\", "\n", "\n\n", "- ", "1. ",
     "# ", "> ", "```", "    ", "\u00a0", "\t", "```py\n", "~~~\n", "<", "&", '"', "x = 1", "\x00", "`` "]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PROSE_WORDS, min_size=1, max_size=60))
def test_extending_the_tail_in_place_equals_rendering_it_again(pieces: list[str]) -> None:
    fast, slow = PIPELINE.renderer(), _AlwaysRerender(PIPELINE)
    fast_tail = slow_tail = ""
    for piece in pieces:
        fast_update, slow_update = fast.feed(piece), slow.feed(piece)
        assert fast_update.append == slow_update.append
        fast_tail = str(fast_update.tail) if fast_update.tail is not None else fast_tail
        slow_tail = str(slow_update.tail) if slow_update.tail is not None else slow_tail
        assert fast_tail == slow_tail, pieces


def test_plain_words_extend_the_tail_in_place() -> None:
    renderer = PIPELINE.renderer()
    assert renderer.feed("- A list item").tail_append is None  # rendered: the first time
    update = renderer.feed(" grows, word by word")
    assert update.tail == "<ul>\n<li>A list item grows, word by word</li>\n</ul>\n"
    assert update.tail_append is not None
    assert update.tail_append.path == " > ul:last-child > li:last-child"
    assert update.tail_append.html == " grows, word by word"
    assert renderer.feed(" *emphasis").tail_append is None  # markdown syntax: rendered again
