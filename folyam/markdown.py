"""Markdown to safe HTML, in one go or incrementally as an answer streams.

markdown-it-py parses with raw HTML off and GFM tables and strikethrough on; finished code blocks are
highlighted once with Pygments (CSS classes only); every piece of HTML then goes through an nh3
allowlist. Model output never loads anything: images become links that show their URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import jinja2
import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from components import render_component
from components.code_block import CodeBlock
from folyam.rendering import NewlineNormalizer, RenderUpdate, TailAppend

__all__ = ["IncrementalMarkdown", "MarkdownPipeline"]

LINK_REL: Final = "nofollow noopener noreferrer"
_ALIGN_CLASSES: Final = {"align-left", "align-center", "align-right"}
_TAGS: Final = {
    "a", "blockquote", "br", "button", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_CLASSES: Final = {
    "a": {"image-link"},
    "button": {"codeblock__copy"},
    "div": {"codeblock", "codeblock__bar"},
    "pre": {"highlight"},
    "span": {"codeblock__lang", *(name for name in STANDARD_TYPES.values() if name)},
    "td": _ALIGN_CLASSES,
    "th": _ALIGN_CLASSES,
}
# nh3 re-serialises attribute values with a literal "<" and ">"; htmx rewrites "<hx-…" anywhere in a
# fragment before parsing it, so those characters must not survive inside attributes.
_ATTRIBUTE_VALUE = re.compile(r'="[^"]*[<>][^"]*"')
_FENCE_LINE = re.compile(r" {0,3}(```|~~~)")
# A half-typed line that is only block syntax ("##", "- ", "```py"): shown once its text arrives.
_BARE_MARKER = re.compile(r"\s*(#{1,6}|[-*+]|\d{1,9}[.)]|>|[-=*_]{2,}|(```|~~~)\S*|\|)\s*")


class MarkdownPipeline:
    """The parsers, highlighter and sanitiser, built once per app and shared by every answer."""

    def __init__(self, env: jinja2.Environment) -> None:
        self._env = env
        self._lexers: dict[str, Lexer] = {}
        self._formatter = HtmlFormatter(nowrap=True)
        self._finished = self._parser(highlight_code=True)
        self._live = self._parser(highlight_code=False)
        self._cleaner = nh3.Cleaner(
            tags=_TAGS,
            clean_content_tags={"script", "style"},
            # `class` is governed by allowed_classes alone (nh3 refuses it in both).
            attributes={"a": {"href", "title"}, "ol": {"start"}},
            allowed_classes=_CLASSES,
            tag_attribute_values={"button": {"type": {"button"}}},
            url_schemes={"http", "https", "mailto"},
            link_rel=LINK_REL,
            strip_comments=True,
        )

    def render(self, source: str, references: dict[str, Any] | None = None, *, live: bool = False) -> Markup:
        """Safe HTML for complete markdown `source`. `live` renders an unfinished block: no highlighting."""
        parser = self._live if live else self._finished
        html = parser.render(source, {"references": dict(references or {})})
        return Markup(_protect_attributes(self._cleaner.clean(html)))

    def parse(self, source: str, env: dict[str, Any]) -> list[Token]:
        return self._live.parse(source, env)

    def render_tokens(self, tokens: Sequence[Token], env: dict[str, Any]) -> Markup:
        """Safe HTML for finished blocks already parsed (both parsers parse alike; they render code
        differently): saves parsing the same text twice."""
        html = self._finished.renderer.render(tokens, self._finished.options, env)
        return Markup(_protect_attributes(self._cleaner.clean(html)))

    def renderer(self) -> IncrementalMarkdown:
        return IncrementalMarkdown(self)

    def _parser(self, *, highlight_code: bool) -> MarkdownIt:
        parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
        parser.core.ruler.push("folyam_images_as_links", _images_as_links)
        parser.core.ruler.push("folyam_align_classes", _align_classes)

        def fence(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            token = tokens[idx]
            language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
            if highlight_code:
                code = Markup(highlight(token.content, self._lexer(language), self._formatter))
            else:
                code = Markup(escapeHtml(token.content))
            return render_component(self._env, CodeBlock(language=language, code=code)) + "\n"

        parser.add_render_rule("fence", fence)
        return parser

    def _lexer(self, language: str) -> Lexer:
        lexer = self._lexers.get(language)
        if lexer is None:
            try:
                lexer = get_lexer_by_name(language) if language else TextLexer()
            except ClassNotFound:
                lexer = TextLexer()
            self._lexers[language] = lexer
        return lexer


class IncrementalMarkdown:
    """Renders a growing text so that each finished top-level block is sent once and only the open
    last block (the live tail) is re-rendered. Work per flush is bounded by the open block's size.

    Block boundaries are decided on complete lines only. A block followed by another block is final:
    CommonMark never reopens it, with one exception, reference definitions, which may come after the
    links that use them; a new definition re-renders the finished part once (`RenderUpdate.replace`).
    """

    def __init__(self, pipeline: MarkdownPipeline) -> None:
        self._pipeline = pipeline
        self._newlines = NewlineNormalizer()
        self._open = ""  # complete lines of the blocks that are not final yet
        self._partial = ""  # the last, incomplete line
        self._final_sources: list[str] = []
        self._references: dict[str, Any] = {}
        self._tail = Markup()
        # Set when the tail ends in text that plain words can extend in place (see _extendable).
        self._extendable: _ExtendableTail | None = None

    def feed(self, text: str) -> RenderUpdate:
        text = self._newlines.feed(text)
        extendable = self._extendable
        if extendable is not None and (_CODE_TEXT if extendable.code else _PLAIN).fullmatch(text):
            # The common case mid-sentence: no markdown can change, so skip parsing and rendering.
            self._partial += text
            return self._extend_tail(extendable, text)
        self._partial += text
        append, replace = Markup(), None
        if "\n" in self._partial:
            complete, _, self._partial = self._partial.rpartition("\n")
            self._open += complete + "\n"
            append, replace = self._settle()
        return self._update(append, replace, self._render_tail())

    def finish(self) -> RenderUpdate:
        self._open += self._partial + self._newlines.finish()
        self._partial = ""
        append, replace = self._settle(everything=True)
        return self._update(append, replace, Markup())

    def _settle(self, *, everything: bool = False) -> tuple[Markup, Markup | None]:
        """Move the blocks that became final out of the open part; returns (append, replace)."""
        env: dict[str, Any] = {"references": dict(self._references)}
        tokens = self._pipeline.parse(self._open, env)
        new_references = env["references"].keys() - self._references.keys()
        self._references = env["references"]
        if everything:
            final, final_tokens, self._open = self._open, tokens, ""
        else:
            starts = [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map is not None]
            if len(starts) < 2:
                final, final_tokens = "", []
            else:
                last = tokens[starts[-1]].map[0]  # type: ignore[index]
                lines = self._open.splitlines(keepends=True)
                final, self._open = "".join(lines[:last]), "".join(lines[last:])
                final_tokens = tokens[: starts[-1]]
        # Blocks sent earlier were rendered without the new definitions: send them all again, once.
        stale = bool(new_references) and any("[" in source for source in self._final_sources)
        if final:
            self._final_sources.append(final)
        if stale:
            return Markup(), self._pipeline.render("".join(self._final_sources), self._references)
        return (self._pipeline.render_tokens(final_tokens, env) if final else Markup()), None

    def _render_tail(self) -> Markup:
        self._extendable = None
        if _inside_fence(self._open):
            # markdown-it renders an open fence as a code block growing to the end of the text; hide
            # only a half-typed line that may yet close the fence.
            partial = "" if _FENCE_PREFIX.fullmatch(self._partial) else self._partial
            tail = self._pipeline.render(self._open + partial, self._references, live=True)
            self._extendable = _extendable_code(tail, partial)
            return tail
        partial = "" if _BARE_MARKER.fullmatch(self._partial) else self._partial
        source = self._open + partial
        if not source.strip():
            return Markup()
        softened = _soften_open_syntax(source)
        tail = self._pipeline.render(softened, self._references, live=True)
        if softened == source:
            self._extendable = _extendable(tail, partial)
        return tail

    def _extend_tail(self, extendable: _ExtendableTail, text: str) -> RenderUpdate:
        if extendable.code:
            return self._extended(extendable, escapeHtml(text).replace("&quot;", '"'))
        visible = extendable.pending_space + text
        words = visible.rstrip(" ")
        extendable.pending_space = visible[len(words) :]  # trailing spaces show only once followed
        return self._extended(extendable, words)

    def _extended(self, extendable: _ExtendableTail, html: str) -> RenderUpdate:
        if not html:
            return RenderUpdate(append=Markup())
        extendable.head += html
        self._tail = Markup(extendable.head + extendable.closing)
        return RenderUpdate(append=Markup(), tail=self._tail, tail_append=TailAppend(extendable.path, Markup(html)))

    def _update(self, append: Markup, replace: Markup | None, tail: Markup) -> RenderUpdate:
        changed = tail != self._tail or replace is not None or bool(append)
        self._tail = tail
        return RenderUpdate(append=append, tail=tail if changed else None, replace=replace)


@dataclass(slots=True)
class _ExtendableTail:
    head: str  # the tail's HTML up to the end of its last text
    closing: str  # the block closing tags after it
    path: str  # selector of the element holding that text, relative to the tail element
    pending_space: str = ""  # trailing spaces of the source, which markdown drops until a word follows
    code: bool = False  # the text is an open code fence's: any text but a line break extends it


def _extendable(tail: str, partial: str) -> _ExtendableTail | None:
    """When the tail ends in a plain word of a line whose block structure is settled (a paragraph,
    heading or list item that has begun with a letter), appending plain words (letters, digits,
    spaces, simple punctuation: nothing markdown gives meaning to) cannot change anything but that
    text. Then the new tail is the old one with the words inserted before its closing tags."""
    words = partial.rstrip(" ")
    if not words or not _PLAIN.fullmatch(words[-1]) or not _SETTLED_LINE.match(partial):
        return None
    tail = str(tail)  # plain str from here: Markup would escape what is appended to it
    closing = _BLOCK_CLOSING.search(tail)
    if closing is None or not tail[: closing.start()].endswith(words[-1]):
        return None
    tags = _CLOSING_TAG.findall(closing.group(0))
    path = "".join(f" > {tag}:last-child" for tag in reversed(tags))
    return _ExtendableTail(tail[: closing.start()], closing.group(0), path, partial[len(words) :])


def _extendable_code(tail: str, partial: str) -> _ExtendableTail | None:
    """Inside an open fence any text extends the code, unless the line could still become the
    closing fence (only spaces, backticks and tildes so far)."""
    tail = str(tail)
    if not partial or not _SETTLED_CODE_LINE.match(partial) or not tail.endswith(_CODE_CLOSING):
        return None
    head = tail[: -len(_CODE_CLOSING)]
    if not head.endswith(escapeHtml(partial[-1]).replace("&quot;", '"')):
        return None
    return _ExtendableTail(head, _CODE_CLOSING, _CODE_PATH, code=True)


def _inside_fence(source: str) -> bool:
    if "```" not in source and "~~~" not in source:
        return False
    return sum(1 for line in source.splitlines() if _FENCE_LINE.match(line)) % 2 == 1


def _soften_open_syntax(source: str) -> str:
    """Close what the last paragraph opened but has not closed yet, so the live tail does not flash
    raw `**`, backticks or half links. Display only: final blocks are rendered from the real text."""
    head, separator, paragraph = source.rpartition("\n\n")
    if not _OPENERS.search(paragraph):
        return source
    paragraph = _HALF_LINK.sub(r"\1", paragraph)
    paragraph = _HALF_BRACKET.sub(r"\1", paragraph)
    open_at: dict[str, int] = {}
    if paragraph.count("`") % 2:
        open_at["`"] = paragraph.rfind("`")
    else:
        for marker, pattern in _EMPHASIS.items():
            text = paragraph if len(marker) == 2 else paragraph.replace(marker * 2, "  ")
            openers = [m.start() for m in pattern[0].finditer(text)]
            if len(openers) > len(pattern[1].findall(text)):
                open_at[marker] = openers[-1]
    if not open_at:
        return head + separator + paragraph
    closers = "".join(sorted(open_at, key=open_at.__getitem__, reverse=True))
    return head + separator + paragraph.rstrip(" ") + closers


def _emphasis_patterns(marker: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    m = re.escape(marker)
    opener = re.compile(rf"(?:^|(?<=[\s(\[]))(?<!\\){m}(?=[^\s{m[-1]}])", re.M)
    closer = re.compile(rf"(?<=[^\s\\{m[-1]}]){m}(?=$|[\s).,;:!?\]])", re.M)
    return opener, closer


# Characters markdown gives no meaning to in the middle of a line (no `*_[]`~<>&;|#\!` …), and which
# HTML serialises as themselves.
_PLAIN: Final = re.compile(r"(?:[^\W_]|[ .,:?'\"()/%+=@$–—“”‘’…-])+")
# Optional indentation and list, quote or heading markers, then a letter: the line's block is settled.
_SETTLED_LINE: Final = re.compile(r"[ ]*(?:(?:[-*+]|\d{1,9}[.)]|#{1,6}|>)[ ]+)*[^\W\d_]")
_BLOCK_CLOSING: Final = re.compile(r"(?:</(?:p|li|ul|ol|h[1-6]|blockquote)>\n?)+\Z")
_CLOSING_TAG: Final = re.compile(r"</([a-z0-9]+)>")
# Code: anything but line breaks and the characters markdown-it or the serialiser would change.
_CODE_TEXT: Final = re.compile(r"[^\r\n\x00\u00a0]+")
_SETTLED_CODE_LINE: Final = re.compile(r"[ ]{4}|[ `~]*[^ `~]")
_FENCE_PREFIX: Final = re.compile(r"[ ]{0,3}(`+|~+)[ ]*")
_CODE_CLOSING: Final = "</code></pre></div>\n"
_CODE_PATH: Final = " > div:last-child > pre:last-child > code:last-child"
_OPENERS: Final = re.compile(r"[`*_~\[]")
_HALF_LINK: Final = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*$")  # [text](http://half…
_HALF_BRACKET: Final = re.compile(r"!?\[([^\]\n]*)$")  # [half text…
_EMPHASIS: Final = {marker: _emphasis_patterns(marker) for marker in ("**", "__", "~~", "*", "_")}


def _images_as_links(state: StateCore) -> None:
    """Model output must not make the browser fetch anything: an image becomes a link that shows its
    URL (a data: image, which would not be a safe link, becomes its alt text)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        for token in block.children:
            if token.type != "image":
                children.append(token)
                continue
            src = str(token.attrGet("src") or "")
            alt = token.content
            if src.lower().startswith("data:"):
                children.append(_text(f"[image: {alt}]" if alt else "[image]"))
                continue
            link = Token("link_open", "a", 1, attrs={"href": src, "class": "image-link"})
            label = f"image: {alt} ({src})" if alt else f"image: {src}"
            children.extend([link, _text(label), Token("link_close", "a", -1)])
        block.children = children


def _align_classes(state: StateCore) -> None:
    """Table alignment as classes: the CSP forbids style attributes."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = str(token.attrGet("style") or "")
            if style.startswith("text-align:"):
                token.attrs.pop("style", None)
                token.attrSet("class", "align-" + style.removeprefix("text-align:"))


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _protect_attributes(html: str) -> str:
    return _ATTRIBUTE_VALUE.sub(lambda m: m.group(0).replace("<", "&lt;").replace(">", "&gt;"), html)
