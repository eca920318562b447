"""Markdown to safe HTML: the parsers, the highlighter and the sanitiser every answer shares.

markdown-it-py parses with raw HTML off and GFM tables, strikethrough and task lists on; finished code
blocks are highlighted once with Pygments (CSS classes only); math becomes MathML on the server; every
piece of HTML then goes through an nh3 allowlist. Model output never loads anything: images become
links that show their URL, and link text cannot hide behind bidirectional or invisible characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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

from folyam.components import render_component
from folyam.components._code_block import CodeBlock
from folyam.components._formula import Formula
from folyam.incremental import IncrementalMarkdown, closing_tags
from folyam.math_syntax import math_plugin
from folyam.mathml import MathML

__all__ = ["LINK_REL", "MarkdownPipeline"]

LINK_REL: Final = "nofollow noopener noreferrer"
_ALIGN_CLASSES: Final = {"align-left", "align-center", "align-right"}
_TAGS: Final = {
    "a", "blockquote", "br", "button", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "input", "label", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
# Presentation MathML as latex2mathml writes it, and those of its attributes that cannot fetch, run, link
# or style anything: `\href`, `\style`, `\class` and colours lose theirs.
_MATHML_TAGS: Final = {
    "math", "menclose", "mfrac", "mi", "mn", "mo", "mover", "mpadded", "mphantom", "mroot", "mrow", "mspace",
    "msqrt", "mstyle", "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder", "munderover",
}  # fmt: skip
_MATHML_ATTRIBUTES: Final = {
    "math": {"display"},
    "menclose": {"notation"},
    "mfrac": {"linethickness"},
    "mi": {"mathvariant"},
    "mn": {"mathvariant"},
    "mo": {"accent", "fence", "form", "largeop", "lspace", "mathvariant", "maxsize", "minsize", "movablelimits",
           "rspace", "separator", "stretchy"},
    "mover": {"accent"},
    "mpadded": {"depth", "height", "lspace", "voffset", "width"},
    "mspace": {"depth", "height", "linebreak", "width"},
    "mstyle": {"displaystyle", "mathsize", "scriptlevel"},
    "mtable": {"columnalign", "columnlines", "columnspacing", "displaystyle", "rowlines", "rowspacing"},
    "mtd": {"columnalign"},
    "mtext": {"mathvariant"},
    "munder": {"accentunder"},
    "munderover": {"accent", "accentunder"},
}  # fmt: skip
_CLASSES: Final = {
    "a": {"image-link"},
    "button": {"codeblock__copy"},
    "code": {"math-source"},
    "div": {"codeblock", "codeblock__bar", "math-block", "table-scroll"},
    "li": {"task-list-item"},
    "pre": {"highlight", "math-source"},
    "span": {"codeblock__lang", *(name for name in STANDARD_TYPES.values() if name)},
    "td": _ALIGN_CLASSES,
    "th": _ALIGN_CLASSES,
}
# Containers that scroll sideways (tables, code, display math) take the focus, so a keyboard scrolls them.
_FOCUSABLE: Final = {"role": {"group"}, "tabindex": {"0"}}
_ATTRIBUTE_VALUES: Final = {
    "button": {"type": {"button"}},
    "div": {**_FOCUSABLE, "aria-label": {"Table", "Formula"}},
    "pre": _FOCUSABLE,
    "input": {"checked": {"checked", ""}},
}
# An input is a task list's checkbox, whatever the markup says: shown, never used.
_FORCED_ATTRIBUTES: Final = {"input": {"type": "checkbox", "disabled": "disabled"}}
# A task list item's first paragraph begins so (GFM: any whitespace after the brackets).
_TASK_MARKER: Final = re.compile(r"\[([ xX])\][ \t\n\v\f\r]")
_CHECKBOX: Final = re.compile(
    r'<input((?: checked="[^"]*")?) (?:type="checkbox" disabled="disabled"|disabled="disabled" type="checkbox")>'
)
# Every table scrolls sideways in a box of its own, so its cells can keep their words whole.
_TABLE_SCROLL: Final = '<div class="table-scroll" role="group" tabindex="0" aria-label="Table">\n'
_CLOSING_DELIMITERS: Final = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
# nh3 re-serialises attribute values with a literal "<" and ">"; htmx rewrites "<hx-…" anywhere in a
# fragment before parsing it, so those characters must not survive inside attributes.
_ATTRIBUTE_VALUE = re.compile(r'="[^"]*[<>][^"]*"')
_START_TAG = re.compile(r'<[a-z][a-z0-9-]*(?:\s+[^\s"=>/]+(?:="[^"]*")?)*\s*/?>')
# Bidirectional overrides, isolates and marks, and zero-width characters: in a link's text they can
# make "gnp.exe" read "exe.png". (Link URLs are percent-encoded by markdown-it, so they show as %E2….)
_INVISIBLE_CONTROLS = re.compile("[\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


class MarkdownPipeline:
    """The parsers, highlighter and sanitiser, built once per app and shared by every answer."""

    def __init__(self, env: jinja2.Environment) -> None:
        self._env = env
        self._lexers: dict[str, Lexer] = {}
        self._formatter = HtmlFormatter(nowrap=True)
        self._math = MathML()
        self._finished = self._parser(highlight_code=True)
        self._live = self._parser(highlight_code=False)
        self._cleaner = nh3.Cleaner(
            tags=_TAGS | _MATHML_TAGS,
            clean_content_tags={"script", "style"},
            # `class` is governed by allowed_classes alone (nh3 refuses it in both). A code block's label
            # names its language, which the model chose: any text.
            attributes={"a": {"href", "title"}, "ol": {"start"}, "pre": {"aria-label"}, **_MATHML_ATTRIBUTES},
            allowed_classes=_CLASSES,
            tag_attribute_values=_ATTRIBUTE_VALUES,
            set_tag_attribute_values=_FORCED_ATTRIBUTES,
            url_schemes={"http", "https", "mailto"},
            link_rel=LINK_REL,
            strip_comments=True,
        )
        # Where a code block's code ends, as its template closes it: the live tail appends streamed lines
        # of code there.
        code_end = render_component(env, CodeBlock(language="", code=Markup("\x00"))).partition("\x00")[2]
        self.code_block_closing: Final = closing_tags(code_end)
        # Sanitised container openings (a table's head, a list's <ol start>), keyed by their raw HTML.
        self._openings: dict[str, str] = {}

    def render(self, source: str, references: dict[str, Any] | None = None, *, live: bool = False) -> Markup:
        """Safe HTML for complete markdown `source`. `live` renders an unfinished block: no highlighting."""
        parser = self._live if live else self._finished
        html = parser.render(source, {"references": dict(references or {})})
        return Markup(self._clean(html))

    def clean(self, html: str) -> Markup:
        """`html` through the allowlist every answer goes through."""
        return Markup(self._clean(html))

    def parse(self, source: str, env: dict[str, Any]) -> list[Token]:
        return self._live.parse(source, env)

    def render_tokens(self, tokens: Sequence[Token], env: dict[str, Any], *, live: bool = False) -> Markup:
        """Safe HTML for blocks already parsed: saves parsing the same text twice (both parsers parse
        alike; they render code differently)."""
        return Markup(self._clean(self._raw(tokens, env, live=live)))

    def render_children(
        self, opening: Sequence[Token], children: Sequence[Token], closing: Sequence[Token], env: dict[str, Any],
        *, live: bool = False,
    ) -> tuple[Markup, Markup, Markup] | None:  # fmt: skip
        """Safe HTML for a container (list, table, quote) split into its opening, some of its children
        (items, rows, blocks) and its closing. The children are sanitised inside the container, since a
        `<tr>` alone is not valid HTML. None if the sanitiser changed the container's own tags."""
        raw_opening, raw_closing = self._raw(opening, env, live=live), self._raw(closing, env, live=live)
        clean_opening = self._openings.get(raw_opening)
        if clean_opening is None:
            empty = self._sanitise(raw_opening + raw_closing)
            if not empty.endswith(raw_closing):
                return None
            if len(self._openings) > 256:
                self._openings.clear()
            clean_opening = self._openings[raw_opening] = empty[: len(empty) - len(raw_closing)]
        html = self._sanitise(raw_opening + self._raw(children, env, live=live) + raw_closing)
        if not (html.startswith(clean_opening) and html.endswith(raw_closing)):
            return None
        inner = html[len(clean_opening) : len(html) - len(raw_closing)]
        return (
            Markup(_protect_attributes(clean_opening)),
            Markup(_protect_attributes(inner)),
            Markup(raw_closing),
        )

    def renderer(self) -> IncrementalMarkdown:
        return IncrementalMarkdown(self)

    def _raw(self, tokens: Sequence[Token], env: dict[str, Any], *, live: bool) -> str:
        parser = self._live if live else self._finished
        return str(parser.renderer.render(tokens, parser.options, env))

    def _clean(self, html: str) -> str:
        return _protect_attributes(self._sanitise(html))

    def _sanitise(self, html: str) -> str:
        html = self._cleaner.clean(html)
        if "<input" not in html:
            return html  # almost always
        # nh3 adds the forced attributes in no fixed order (a hash map's): one order, for equal HTML in
        # every process.
        return _CHECKBOX.sub(r'<input type="checkbox" disabled="disabled"\1>', html)

    def _parser(self, *, highlight_code: bool) -> MarkdownIt:
        parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
        math_plugin(parser)
        parser.core.ruler.push("folyam_images_as_links", _images_as_links)
        parser.core.ruler.push("folyam_align_classes", _align_classes)
        parser.core.ruler.push("folyam_visible_link_text", _visible_link_text)
        parser.core.ruler.push("folyam_task_lists", _task_lists)

        def fence(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            token = tokens[idx]
            language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
            if highlight_code:
                code = Markup(highlight(token.content, self._lexer(language), self._formatter))
            else:
                code = Markup(escapeHtml(token.content))
            return render_component(self._env, CodeBlock(language=language, code=code)) + "\n"

        def math(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            token = tokens[idx]
            closed, block = token.meta.get("closed", True), token.type == "math_block"
            latex = _INVISIBLE_CONTROLS.sub("", token.content)  # (no meaning in LaTeX; in a link, a disguise)
            mathml = self._math.convert(latex.strip(), display=token.type != "math_inline") if closed else None
            # What the model wrote, shown when there is no MathML: a block's delimiters on lines of their own.
            parts = [token.markup, latex, _CLOSING_DELIMITERS[token.markup] if closed else ""]
            source = "\n".join(filter(None, parts)) if block else "".join(parts)
            formula = Formula(source, None if mathml is None else Markup(mathml), block=block)
            return render_component(self._env, formula) + ("\n" if block else "")

        def table_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            return _TABLE_SCROLL + str(renderer.renderToken(tokens, idx, options, env))

        def table_close(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            return str(renderer.renderToken(tokens, idx, options, env)) + "</div>\n"

        # A heading with no text ("## " alone, or an answer stopped just after the marker) renders as
        # nothing: an empty <h2> is a nameless heading to a screen reader.
        def heading_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            return str(renderer.renderToken(tokens, idx, options, env)) if tokens[idx + 1].content.strip() else ""

        def heading_close(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            return str(renderer.renderToken(tokens, idx, options, env)) if tokens[idx - 1].content.strip() else ""

        parser.add_render_rule("fence", fence)
        parser.add_render_rule("heading_open", heading_open)
        parser.add_render_rule("heading_close", heading_close)
        for name in ("math_inline", "math_inline_double", "math_block"):
            parser.add_render_rule(name, math)
        parser.add_render_rule("table_open", table_open)
        parser.add_render_rule("table_close", table_close)
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


def _visible_link_text(state: StateCore) -> None:
    """Link text and titles lose bidirectional and invisible controls: what a link says is what it shows."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        inside = 0
        for token in block.children:
            if token.type == "link_open":
                inside += 1
                title = token.attrGet("title")
                if title:
                    token.attrSet("title", _INVISIBLE_CONTROLS.sub("", str(title)))
            elif token.type == "link_close":
                inside -= 1
            elif inside and token.type in ("text", "code_inline"):
                token.content = _INVISIBLE_CONTROLS.sub("", token.content)


def _task_lists(state: StateCore) -> None:
    """GFM task list items ("- [ ] to do", "- [x] done") begin with a disabled checkbox, labelled by
    the item's text (a <label> around both: no ids needed). (As mdit-py-plugins' tasklists does, but
    that one searches back for each item's list: quadratic in a long list.)"""
    if "[" not in state.src:
        return  # (most texts: cheaper than looking at every token)
    tokens = state.tokens
    for i in range(2, len(tokens)):
        inline, item = tokens[i], tokens[i - 2]
        if inline.type != "inline" or item.type != "list_item_open" or tokens[i - 1].type != "paragraph_open":
            continue
        children, marker = inline.children or [], _TASK_MARKER.match(inline.content)
        first = children[0] if children else None
        if marker is None or first is None or first.type != "text" or not first.content.startswith(marker[0][:3]):
            continue  # (a "[x]" that is a reference link is not a task)
        checkbox = Token("task_checkbox", "input", 0, attrs={"type": "checkbox", "disabled": "disabled"})
        if marker.group(1) in "xX":
            checkbox.attrSet("checked", "checked")
        first.content = first.content[3:]
        children[:0] = [Token("label_open", "label", 1), checkbox]
        children.append(Token("label_close", "label", -1))
        item.attrSet("class", "task-list-item")


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _protect_attributes(html: str) -> str:
    if _ATTRIBUTE_VALUE.search(html) is None:
        return html  # almost always
    # Only inside tags: text such as `="<code>x</code>"` holds real tags, not an attribute.
    return _START_TAG.sub(lambda tag: _ATTRIBUTE_VALUE.sub(_escape_brackets, tag.group(0)), html)


def _escape_brackets(value: re.Match[str]) -> str:
    return value.group(0).replace("<", "&lt;").replace(">", "&gt;")
