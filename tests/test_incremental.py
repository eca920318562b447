"""The incremental renderer: streamed == one-shot for any cut of any text, the page's tail always what
the renderer says it is, and work and tail changes bounded per token for every block shape (counted,
not timed: timings belong in bench/render.py)."""

from __future__ import annotations

import html
import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from folyam.components import make_environment
from folyam.incremental import IncrementalMarkdown
from folyam.markdown import MarkdownPipeline
from tests.support.page import Page, stream
from tests.support.shapes import shapes, tokens

PIPELINE = MarkdownPipeline(make_environment())


def one_shot(text: str) -> str:
    return str(PIPELINE.render(text.replace("\r\n", "\n").replace("\r", "\n")))


def token_cuts(text: str) -> list[int]:
    """Cuts between the tokens a model would send."""
    return list(itertools.accumulate(map(len, tokens(text))))


MARKDOWN_WORDS = st.sampled_from(
    ["word", "**bold**", "*it*", "`code`", "~~del~~", "[link](https://x.org)", "[ref][r]", "![img](/i.png)",
     "_u_", "**open", "`", "[", "](", "<b>", "&amp;", "|", "\\*", "a_b", "$x^2$", "$5", "$", "$$a$$", "\\(a<b\\)",
     "\\(", "\\frac{1}{2}"]
)  # fmt: skip
INLINE = st.lists(MARKDOWN_WORDS, min_size=1, max_size=6).map(" ".join)
ITEM_SEPARATOR = st.sampled_from(["\n", "\n", "\n\n"])
CODE_LINE = st.sampled_from(["x = 1", "    return x", "", "`not a fence`", "~~", "  ```", "<b>&amp;</b>", "\ty"])


@st.composite
def long_list(draw: st.DrawFn) -> str:
    """Many items (bullets, tasks or numbers, tight or loose), some with a nested item, a fence or a quote."""
    ordered = draw(st.booleans())
    items = []
    for n, text in enumerate(draw(st.lists(INLINE, min_size=2, max_size=12)), 1):
        marker = f"{n}. " if ordered else draw(st.sampled_from(["- ", "- ", "- [ ] ", "- [x] "]))
        pad = " " * (len(f"{n}. ") if ordered else 2)
        extra = draw(
            st.sampled_from(
                [
                    "",
                    "",
                    f"\n{pad}- nested {n}",
                    f"\n{pad}```sh\n{pad}echo {n}\n{pad}```",
                    f"\n{pad}> quoted {n}",
                    f"\n{pad}$$\n{pad}x_{n}\n{pad}$$",
                ]
            )
        )
        items.append(marker + text + extra + draw(ITEM_SEPARATOR))
    return "".join(items).rstrip("\n")


TABLE = st.tuples(st.lists(INLINE, min_size=1, max_size=3), st.integers(1, 12), st.sampled_from(["", ":", "-:"])).map(
    lambda t: "| " + " | ".join(t[0]) + " |\n" + "|" + "|".join([f"{t[2]}---"] * len(t[0])) + "|\n"
    + "".join(f"| r{n} | **{n}** |\n" for n in range(t[1]))
)  # fmt: skip
TASKS = st.lists(st.tuples(st.sampled_from(" xX"), INLINE), min_size=1, max_size=4).map(
    lambda items: "\n".join(f"- [{mark}] {text}" for mark, text in items)
)
FORMULA = st.sampled_from(["x^2", r"\frac{a}{b}", r"\sqrt{2} < 3", r"\text{<b>}", r"\frac{", "a $ b", ""])
MATH = st.one_of(
    st.tuples(st.sampled_from(["$$", "\\["]), st.lists(FORMULA, max_size=4), st.booleans()).map(
        lambda m: m[0] + "\n" + "".join(f + "\n" for f in m[1]) + ({"$$": "$$", "\\[": "\\]"}[m[0]] if m[2] else "")
    ),
    FORMULA.map(lambda f: f"$${f}$$"),
    st.tuples(INLINE, FORMULA).map(lambda t: f"{t[0]}\n$$\n{t[1]}\n$$\n{t[0]}"),
)
QUOTE = st.lists(st.one_of(INLINE, MATH), min_size=2, max_size=8).map(
    lambda paragraphs: "\n>\n".join("> " + p.replace("\n", "\n> ") for p in paragraphs)
)
FENCE = st.tuples(st.sampled_from(["```", "~~~", "````"]), st.lists(CODE_LINE, max_size=20)).map(
    lambda f: f[0] + "py\n" + "".join(line + "\n" for line in f[1]) + f[0]
)
BLOCK = st.one_of(
    INLINE,
    INLINE.map(lambda s: "# " + s),
    INLINE.map(lambda s: s + "\n---"),
    st.lists(INLINE, min_size=1, max_size=3).map(lambda items: "\n".join("- " + i for i in items)),
    st.lists(INLINE, min_size=1, max_size=3).map(lambda items: "\n".join(f"{n}. {i}" for n, i in enumerate(items, 1))),
    TASKS,
    st.lists(INLINE, min_size=1, max_size=3).map(lambda lines: "\n".join("> " + line for line in lines)),
    st.tuples(st.sampled_from(["", "python", "js"]), st.lists(INLINE, max_size=3)).map(
        lambda f: "```" + f[0] + "\n" + "\n".join(f[1]) + "\n```"
    ),
    st.tuples(INLINE, INLINE).map(lambda r: f"| {r[0]} | x |\n|---|---|\n| {r[1]} | y |"),
    st.just("[r]: https://ref.example"),
    MATH,
    st.just("***"),
    st.just("```\nnever closed"),
    st.just("    indented code"),
    long_list(),
    TABLE,
    QUOTE,
    FENCE,
)
SEPARATOR = st.sampled_from(["\n", "\n\n", "\n\n\n", "\r\n\r\n"])


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[int]]:
    blocks = draw(st.lists(BLOCK, min_size=1, max_size=8))
    separators = draw(st.lists(SEPARATOR, min_size=len(blocks), max_size=len(blocks)))
    text = "".join(b + s for b, s in zip(blocks, separators, strict=True))
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    if draw(st.booleans()):
        cuts = token_cuts(text)  # as a model sends it
    else:
        cuts = draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=40))
    return text, cuts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_text_cut_anywhere_streams_to_the_one_shot_render(document: tuple[str, list[int]]) -> None:
    text, cuts = document
    page = stream(PIPELINE.renderer(), text, cuts)  # the page's tail is checked after every update
    assert page.body == one_shot(text)
    assert page.tail == ""


def test_finished_blocks_are_sent_once_and_only_the_tail_changes() -> None:
    text = "# Title\n\nFirst paragraph.\n\n- a\n- b\n\nLast words"
    page = stream(PIPELINE.renderer(), text, list(range(1, len(text))))
    assert page.appended == [
        "<h1>Title</h1>\n",
        "<p>First paragraph.</p>\n",
        # Final as soon as "Last" began a new paragraph, before that line's end.
        "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n",
        "<p>Last words</p>\n",
    ]


def test_a_late_reference_definition_renders_the_finished_part_again_once() -> None:
    renderer = PIPELINE.renderer()
    first = renderer.feed("Use [x].\n\nNext.\n\n")
    assert first.append == "<p>Use [x].</p>\n" and first.replace is None
    update = renderer.feed("[x]: https://x.org\n\nTail\n")
    assert update.replace is not None and 'href="https://x.org"' in update.replace
    assert renderer.feed("More\n\n").replace is None


def test_the_live_tail_hides_half_typed_syntax() -> None:
    page = Page(PIPELINE.renderer())
    tails = []
    for piece in ["Some **bo", "ld** and [a li", "nk](https://ex"]:
        page.feed(piece)
        tails.append(page.tail)
    assert tails[0] == "<p>Some <strong>bo</strong></p>"
    assert "**" not in tails[1] and "[" not in tails[1]
    assert "](" not in tails[2] and "https://ex" not in tails[2]


def test_an_open_fence_grows_as_a_code_block_line_by_line() -> None:
    page = Page(PIPELINE.renderer())
    page.feed("```python\nx = 1\n")
    update = page.feed("y = 2\nz")
    assert 'aria-label="python code"><code>x = 1\ny = 2\nz</code></pre>' in page.tail
    # Appended as text, not rendered again: the new line, then the half-typed one.
    assert [(c.swap, c.html) for c in update.tail] == [("beforeend", "y = 2\n"), ("beforeend", "z")]
    final = page.finish()
    assert '<span class="n">x</span>' in final.append  # highlighted once, when finished


def test_a_line_that_may_close_the_fence_waits_for_its_end() -> None:
    page = Page(PIPELINE.renderer())
    page.feed("```\ncode\n``")
    assert page.tail.endswith("<code>code\n</code></pre></div>")
    page.feed("`\nafter")
    assert "<p>after</p>" in page.tail and "code" not in page.tail
    assert "<code>code\n</code>" in page.body


def test_an_open_display_formula_shows_its_source_until_it_closes() -> None:
    page = Page(PIPELINE.renderer())
    page.feed("$$\n\\frac{a")
    assert page.tail == '<pre class="math-source"><code>$$\n\\frac{a</code></pre>'
    page.feed("}{b}\n$")
    assert "<math" not in page.tail  # (the half-typed "$" may still become the closing "$$")
    page.feed("$")
    assert page.tail.startswith('<div class="math-block" role="group" tabindex="0" aria-label="Formula"><math display')
    assert "<mfrac>" in page.tail and page.body == ""
    page.feed("\nAfter")
    assert "<mfrac>" in page.body and page.tail == "<p>After</p>"


def test_finished_list_items_stay_and_only_the_last_one_changes() -> None:
    page = Page(PIPELINE.renderer())
    page.feed("- one\n- two\n- three\n- four\n")
    assert page.tail == "<ul><li>one</li><li>two</li><li>three</li><li>four</li></ul>"
    update = page.feed("  more *x*")  # the last item goes on
    [change] = update.tail
    assert (change.path, change.swap, change.html) == (
        " > ul:last-child > :last-child",
        "outerHTML",
        "<li>four\nmore <em>x</em></li>",
    )
    update = page.feed("\n- fi")  # a new item: the one before it is final now, and stays
    assert [(c.path, c.swap) for c in update.tail] == [(" > ul:last-child > :last-child", "outerHTML")]
    assert page.tail == "<ul><li>one</li><li>two</li><li>three</li><li>four\nmore <em>x</em></li><li>fi</li></ul>"


@pytest.mark.parametrize(
    ("text", "holder"),
    [
        ("1. one\n2. two\n3. thr", " > ol:last-child"),
        ("> one\n>\n> two\n>\n> thr", " > blockquote:last-child"),
        # A table's rows go in its body, inside the scrolling box the renderer puts around it.
        ("| a |\n| - |\n| 1 |\n| 2 |\n| 3", " > div:last-child > table:last-child > tbody:last-child"),
    ],
)
def test_a_container_in_the_tail_is_found_through_its_own_closing_tags(text: str, holder: str) -> None:
    page = Page(PIPELINE.renderer())
    page.feed(text)
    update = page.feed("ee")
    assert update.tail and all(change.path.startswith(holder + " > ") for change in update.tail)


def test_code_in_the_tail_grows_where_the_code_block_template_closes_its_code() -> None:
    assert PIPELINE.code_block_closing == ["code", "pre", "div"]  # (components/code_block.html)
    page = Page(PIPELINE.renderer())
    page.feed("```py\nx = 1\n")
    [change] = page.feed("y = 2\n").tail
    assert (change.path, change.swap) == (" > div:last-child > pre:last-child > code:last-child", "beforeend")


def test_plain_words_extend_the_tail_in_place() -> None:
    page = Page(PIPELINE.renderer())
    first = page.feed("- A list item")
    assert [c.swap for c in first.tail] == ["innerHTML"]  # rendered: the first time
    update = page.feed(" grows, word by word")
    assert page.tail == "<ul><li>A list item grows, word by word</li></ul>"
    [change] = update.tail
    assert (change.path, change.swap, change.html) == (
        " > ul:last-child > li:last-child",
        "beforeend",
        " grows, word by word",
    )
    assert page.feed(" *emphasis").tail[0].swap == "innerHTML"  # markdown syntax: rendered again


def tail_text(page: Page) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", page.tail))


TABLE_TEXT = "| Name | Value |\n|:-----|------:|\n| alpha | 1 |\n| beta | 22 |\n| gamma | 333 |\n"


@pytest.mark.parametrize(
    ("before", "indent"),
    [
        ("", ""),
        ("Some intro\nthat goes on.\n", ""),
        ("Intro\n\n", ""),
        ("- an item\n\n  ", "  "),
        ("> quoted\n> ", "> "),
        ("".join(f"Long paragraph line {n} that keeps going.\n" for n in range(100)), ""),  # over the budget
    ],
)
@pytest.mark.parametrize("cut", ["tokens", "characters"])
def test_a_table_being_written_never_shows_raw_pipes(before: str, indent: str, cut: str) -> None:
    text = before + TABLE_TEXT.replace("\n", "\n" + indent).rstrip(indent + " ") + "\nThe end."
    page = Page(PIPELINE.renderer())
    cuts = token_cuts(text) if cut == "tokens" else range(1, len(text) + 1)
    start = 0
    for end in cuts:
        page.feed(text[start:end])
        start = end
        assert "|" not in tail_text(page), (text[:end], page.tail)
    page.finish()
    assert page.body == one_shot(text) and "<table>" in page.body


def test_lines_with_pipes_that_are_no_table_show_once_the_next_line_tells() -> None:
    page = Page(PIPELINE.renderer())
    page.feed("Choose a | b\n")
    assert page.tail == ""  # it may be a table's header
    page.feed("|-")
    assert page.tail == ""  # and this the beginning of its delimiter row
    page.feed("\\")
    # No delimiter row after all; the half-typed line has a pipe: it may be a header itself.
    assert page.tail == "<p>Choose a | b</p>"
    page.feed(" or c\n")
    assert page.tail == "<p>Choose a | b</p>"
    page.feed("then")
    assert page.tail == "<p>Choose a | b\n|-\\ or c\nthen</p>"


PROSE_WORDS = st.sampled_from(
    ["word", " ", "  ", "Words", ".", ",", "1", "2.", "(x)", '"q"', "'s", "é", "naïve", "—", "-", "=", "%",
     "a_b", "*", "**", "_", "`", "[", "]", "(", "#", ">", "|", "~", "&", ";", "\\", "\n", "\n\n", "- ", "1. ",
     "# ", "> ", "```", "    ", "\u00a0", "\t", "```py\n", "~~~\n", "<", "&", '"', "x = 1", "\x00", "`` ",
     "  - ", "| a | b |\n|---|---|\n", "| ", "- [ ] ", "[x] ", "[", "]", "$", "$$", "$$\n", "\\(", "\\)", "\\[\n",
     "x^2", "\\alpha"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PROSE_WORDS, min_size=1, max_size=60))
def test_growing_the_tail_in_place_equals_rendering_it_again(pieces: list[str]) -> None:
    fast, slow = Page(PIPELINE.renderer()), Page(IncrementalMarkdown(PIPELINE, extend_in_place=False))
    for piece in pieces:
        assert fast.feed(piece).append == slow.feed(piece).append
        assert fast.tail == slow.tail, pieces


def cost(text: str) -> tuple[float, float, int]:
    """Characters parsed per character of text, tail-change bytes per character, and the largest change
    to the tail (after the first few), streaming token by token with every delta rendered."""
    page = stream(PIPELINE.renderer(), text, token_cuts(text), verify=False)
    renderer = page.renderer
    assert isinstance(renderer, IncrementalMarkdown)
    assert page.body == one_shot(text) and page.tail == ""
    sizes = [len(change.html) + len(change.path) for update in page.changes for change in update.tail]
    return renderer.work / len(text), sum(sizes) / len(text), max(sizes[20:], default=0)


# What one child (item, row, paragraph, code line) and its selector add up to, and then some.
SMALL_CHANGE = 700


@pytest.mark.parametrize("shape", sorted(shapes(1)))
def test_work_per_character_stays_flat_as_a_block_grows(shape: str) -> None:
    small_work, small_tail, _ = cost(shapes(50)[shape])
    large_work, large_tail, largest_change = cost(shapes(500)[shape])
    # Linear: ten times the text costs ten times the work, give or take.
    assert large_work <= 1.5 * small_work + 5, (small_work, large_work)
    assert large_tail <= 1.5 * small_tail + 5, (small_tail, large_tail)
    assert large_work < 200 and large_tail < 150
    if shape not in ("nested list", "soft-wrapped paragraph", "one long line", "lines with pipes"):  # on a budget
        assert largest_change < SMALL_CHANGE, largest_change
