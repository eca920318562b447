"""Incremental markdown: an answer rendered while it streams, with bounded work per token.

Finished top-level blocks are rendered once, from a parse of their whole text, and appended to the
body; the open last block is the live tail. An open list, quote or table becomes a container in the
tail: its finished children (items, blocks, rows) are frozen there once, and only the last child is
parsed, rendered and replaced again. Lines inside an open code fence, and plain words at the end of a
line, are appended as text without parsing. A line with a pipe that may still become a table's header
waits for the next line, so a table never flashes as raw pipes. Whatever these shapes do not cover (a
huge paragraph, a long list inside one item) is rendered again only after it grew by a fraction of its
size, so the total work stays linear in the answer's length whatever the model sends.

Block boundaries are decided on complete lines, and a block becomes final only by a parse of the whole
open part: CommonMark never reopens a block that another block followed, with one exception, reference
definitions, which may come after the links that use them; a new definition renders the finished part
again (`RenderUpdate.replace`), on the same budget.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token
from markupsafe import Markup

from folyam.rendering import NewlineNormalizer, RenderUpdate, TailChange

if TYPE_CHECKING:
    from folyam.markdown import MarkdownPipeline

__all__ = ["IncrementalMarkdown", "closing_tags"]

# Regions up to this size are rendered on every change; larger ones once they grew by 1/_GROWTH.
_SMALL: Final = 2_048
_GROWTH: Final = 8
_NO_CHANGE: Final = RenderUpdate()


class IncrementalMarkdown:
    """Renders a growing text: finished blocks go to the body once; the open block is the live tail,
    kept up to date with small changes (see the module's docstring)."""

    def __init__(self, pipeline: MarkdownPipeline, *, extend_in_place: bool = True) -> None:
        self._pipeline = pipeline
        # False: every change is rendered, never appended as text (the reference the fast paths are
        # tested against).
        self._extend_in_place = extend_in_place
        self._newlines = NewlineNormalizer()
        self._lines: list[str] = []  # complete lines of the part that is not final yet
        self._ends: list[int] = []  # where each of those lines ends, counting characters from the first
        self._partial: list[str] = []  # pieces of the last, incomplete line
        self._partial_chars = 0
        self._final_sources: list[str] = []
        self._final_chars = 0
        self._final_has_brackets = False
        self._references: dict[str, Any] = {}
        self._stale_body = False
        self._container: _Container | None = None
        self._fence: _OpenFence | None = None  # the open fence the region ends in, when its lines can be appended
        self._in_fence = False  # the region ends in an open fence
        # The open region as the tail shows it: the whole tail, or a container's last children.
        self._region: list[str] = []
        self._region_closing = ""
        self._region_elements = 0
        self._tail_outdated = False  # the page's tail must be replaced whole at the next update
        self._extension: _Extension | None = None
        # Over the budget the region is not rendered for a while; text then shows as it is, appended here.
        self._text_at: str | None = None
        self._unshown: list[str] = []  # text fed since the page last showed all of it
        self._show_budget = _Budget()
        self._structure_budget = _Budget()
        self._body_budget = _Budget()
        self._last_env: dict[str, Any] = {}  # the environment of the last parse (its references)
        # Characters handed to markdown-it's parser so far: linear in the answer, whatever its shape.
        self.work = 0

    def feed(self, text: str) -> RenderUpdate:
        text = self._newlines.feed(text)
        if not text:
            return _NO_CHANGE
        self._partial.append(text)
        self._partial_chars += len(text)
        extension = self._extension
        if extension is not None and "\n" not in text and extension.accepts(text):
            # The common case: no markdown can change, so nothing is parsed or rendered.
            return self._extend(extension, text)
        self._unshown.append(text)
        if "\n" not in text:
            fence = self._fence
            return self._fence_partial(fence) if fence is not None else self._show()
        complete, _, rest = "".join(self._partial).rpartition("\n")
        self._partial, self._partial_chars = ([rest] if rest else []), len(rest)
        return self._take_lines((complete + "\n").splitlines(keepends=True))

    def finish(self) -> RenderUpdate:
        rest = "".join(self._partial) + self._newlines.finish()
        self._partial, self._partial_chars = [], 0
        if rest:
            self._add_lines([rest])
        had_tail = self._tail_outdated or bool(self.tail_html())
        append, replace = self._settle(self._parse("".join(self._lines)), everything=True)
        replace = self._refresh_body(force=True) or replace
        self._container, self._fence, self._extension, self._text_at = None, None, None, None
        self._unshown.clear()
        self._set_region("")
        tail = (TailChange("", "innerHTML", Markup()),) if had_tail else ()
        return RenderUpdate(Markup() if replace is not None else append, tail, replace)

    def tail_html(self) -> Markup:
        region = "".join(self._region) + self._region_closing
        container = self._container
        if container is None:
            return Markup(region)
        return Markup(container.opening + "".join(container.frozen) + region + container.closing)

    # -- Lines -------------------------------------------------------------------------------------

    def _take_lines(self, lines: list[str]) -> RenderUpdate:
        self._add_lines(lines)
        fence = self._fence
        if fence is not None:
            codes = [code for code in map(fence.code, lines) if code is not None]
            if len(codes) == len(lines) and codes[0].startswith(fence.shown):
                return self._grow_fence(fence, codes)
        return self._restructure()

    def _restructure(self) -> RenderUpdate:
        """New complete lines: freeze finished children, or settle finished blocks."""
        self._fence = None
        self._extension = None
        container = self._container
        if container is not None:
            if not self._structure_budget.allow(self._window_chars()):
                return self._show()
            window = self._window()
            tokens = self._parse("".join(window))
            shape = _children(tokens)
            if shape is not None:
                frozen = self._freeze(container, tokens, shape)
                if self._container is not None:
                    self._find_fence(tokens, window)
                    return self._show(frozen)
            # No longer one container: the block may have ended, and only the whole block can tell.
            self._drop_container()
        if not self._structure_budget.allow(self._window_chars()):
            return self._show()
        tokens = self._parse("".join(self._lines))
        append, replace = Markup(), None
        if len(_starts(tokens)) >= 2:
            append, replace = self._settle(tokens)
            tokens = self._parse("".join(self._lines))
        self._adopt(tokens)
        return _merge(append, replace, self._show())

    def _freeze(self, container: _Container, tokens: list[Token], shape: tuple[list[int], int]) -> str:
        """Children followed by another child are final: they stay in the tail as they are."""
        starts, end = shape
        if len(starts) < 2:
            return ""
        parts = self._pipeline.render_children(
            tokens[: starts[0]], tokens[starts[0] : starts[-1]], tokens[end:], self._env()
        )
        if parts is None:
            self._drop_container()
            return ""
        container.anchor = self._line_of(_line(tokens[starts[-1]]))
        self._structure_budget.reset()
        self._show_budget.reset()
        return str(parts[1])

    def _adopt(self, tokens: list[Token]) -> None:
        """The open block (alone in `tokens`) becomes a container once it has two children."""
        shape = _children(tokens)
        if shape is not None and len(shape[0]) >= 2:
            starts, end = shape
            parts = self._pipeline.render_children(
                tokens[: starts[0]], tokens[starts[0] : starts[-1]], tokens[end:], self._env()
            )
            # The holder is found from the container's own closing tags (a table's are its scrolling box's).
            holder = _holder(str(parts[2])) if parts is not None else None
            if parts is not None and holder is not None:
                opening, frozen, closing = map(str, parts)
                first = _line(tokens[0])
                head = (first, first + 2) if tokens[0].type == "table_open" else (0, 0)
                self._container = _Container(
                    holder=holder,
                    head=head,
                    anchor=_line(tokens[starts[-1]]),
                    opening=opening,
                    closing=closing,
                    frozen=[frozen],
                )
                self._tail_outdated = True
                self._structure_budget.reset()
                self._show_budget.reset()
                self._find_fence(self._parse("".join(self._window())), self._window())
                return
        self._find_fence(tokens, self._lines)

    def _drop_container(self) -> None:
        self._container = None
        self._tail_outdated = True
        self._structure_budget.reset()
        self._show_budget.reset()

    def _settle(self, tokens: list[Token], *, everything: bool = False) -> tuple[Markup, Markup | None]:
        """Move the blocks of `tokens` (a parse of all the open lines, perhaps plus one tentative
        line) that are followed by another block into the body. Returns (append, replace)."""
        env = self._last_env
        new_references = env["references"].keys() - self._references.keys()
        self._references = env["references"]
        if everything:
            final_tokens, final_lines = tokens, self._lines
            self._keep_lines_from(len(self._lines))
        else:
            starts = _starts(tokens)
            last = _line(tokens[starts[-1]])
            final_tokens, final_lines = tokens[: starts[-1]], self._lines[:last]
            self._keep_lines_from(last)
        # Blocks sent earlier were rendered without the new definitions: they must be sent again.
        self._stale_body = self._stale_body or (bool(new_references) and self._final_has_brackets)
        final = "".join(final_lines)
        self._structure_budget.reset()
        self._show_budget.reset()
        if not final:
            return Markup(), self._refresh_body()
        self._final_sources.append(final)
        self._final_chars += len(final)
        self._final_has_brackets = self._final_has_brackets or "[" in final
        append = self._pipeline.render_tokens(final_tokens, env)
        return append, self._refresh_body()

    def _refresh_body(self, *, force: bool = False) -> Markup | None:
        """The whole body again, when a late reference definition made it stale (on a budget)."""
        if not self._stale_body or not (force or self._body_budget.allow(self._final_chars)):
            return None
        self._stale_body = False
        source = "".join(self._final_sources)
        self.work += len(source)
        return self._pipeline.render(source, self._references)

    # -- What the tail shows -----------------------------------------------------------------------

    def _show(self, frozen: str = "") -> RenderUpdate:
        """Render the open region again (the open child of a container, or the whole open block) and
        say how the tail changes."""
        fence = self._fence
        size = self._window_chars() + self._partial_chars
        if not (frozen or self._tail_outdated or self._show_budget.allow(size)):
            return self._show_as_text()  # (checked first: this runs for every token, so it costs O(1))
        partial = "".join(self._partial)
        window = self._window()
        complete = "".join(window)
        in_fence = fence is not None or self._in_fence
        if fence is not None:
            shown = ""  # appended as code text by _fence_partial
        elif in_fence:
            shown = partial if _SETTLED_CODE_LINE.match(partial) else ""  # else it may close the fence
        else:
            shown = "" if _BARE_MARKER.fullmatch(partial) else partial
        container = self._container
        held = 0  # lines held back: the last complete one and the half-typed one, or the half-typed one
        if not in_fence and ("|" in shown or (window and "|" in window[-1])) and not _is_table(container):
            held = _table_head(window, partial, shown, top_level=container is None)
        if held:
            source = "".join(window[:-1] if held == 2 else window)
            softened = _soften_open_syntax(source)
            tokens = self._parse(softened) if source else []
            if _in_table(tokens, len(window) - held) or (source and container and _children(tokens) is None):
                held = 0  # they continue a table (rows, not a header); or what is left is no container
            else:
                shown = ""
        if not held:
            source = complete + shown
            # Inside an open fence nothing is markup: closing a "`" would add one to the code.
            softened = source if in_fence else _soften_open_syntax(source)
            tokens = self._parse(softened)
        if held and not source:
            html, elements = "", 0  # the held line was all the region had
        elif container is None:
            if shown and _settles_early(tokens, len(window), partial):
                return self._settle_early(partial)
            html, elements = str(self._pipeline.render_tokens(tokens, self._last_env, live=True)), 0
        else:
            shape = _children(tokens)
            if shape is None and shown:
                if _settles_early(tokens, len(window), partial):
                    return self._settle_early(partial)
                # The half-typed line leaves the container: it shows once complete.
                shown = ""
                source = softened = "".join(window)
                tokens = self._parse(source)
                shape = _children(tokens)
            if shape is None:
                self._drop_container()
                return self._show()
            starts, end = shape
            if len(starts) >= 2:
                # The half-typed line began a new child: the one before it is finished on the page now
                # (whatever else happens, the body gets the whole block rendered from its own text).
                finished = self._pipeline.render_children(
                    tokens[: starts[0]], tokens[starts[0] : starts[-1]], tokens[end:], self._last_env
                )
                if finished is None:
                    self._drop_container()
                    return self._show()
                frozen += str(finished[1])
                container.anchor = self._line_of(_line(tokens[starts[-1]]))
                self._structure_budget.reset()
                self._show_budget.reset()
            opening = tokens[: starts[0]] if starts else tokens[:end]
            children = tokens[starts[-1] : end] if starts else []
            parts = self._pipeline.render_children(opening, children, tokens[end:], self._last_env, live=True)
            if parts is None:
                self._drop_container()
                return self._show()
            html, elements = str(parts[1]), min(len(starts), 1)
        changes = self._replace_region(frozen, html, elements)
        self._extension, self._text_at = None, None
        self._unshown.clear()
        if fence is not None:
            return _after(changes, self._enter_fence(fence, html))
        head, closing, tags = _split_closing(html)
        if tags and tags[0] in _TEXT_ENDS and not held:  # (held text must not show before what holds it)
            self._region, self._region_closing = [head], closing
            path = (container.holder if container else "") + _path(tags)
            self._text_at = path
            if softened == source and shown and self._extend_in_place:
                self._extension = _extendable(head, tags, shown, path)
        return RenderUpdate(tail=changes)

    def _show_as_text(self) -> RenderUpdate:
        """Over the budget: what came since the last render is appended as plain text (markup and all)
        where the region's text ends, until the region grew enough to be rendered again."""
        self._extension = None
        text, at = "".join(self._unshown), self._text_at
        self._unshown.clear()
        if at is None or not text or not self._extend_in_place:
            return _NO_CHANGE
        if "|" in text:
            # It may begin a table: nothing more shows as text until the next render shows what it is.
            text, self._text_at = text[: text.index("|")], None
            if not text:
                return _NO_CHANGE
        html = _escape_code(text)
        self._region.append(html)
        return RenderUpdate(tail=(TailChange(at, "beforeend", Markup(html)),))

    def _replace_region(self, frozen: str, html: str, elements: int) -> tuple[TailChange, ...]:
        unchanged = not frozen and html == "".join(self._region) + self._region_closing
        self._set_region(html)
        container = self._container
        if container is not None and frozen:
            container.frozen.append(frozen)
        if self._tail_outdated:
            self._tail_outdated = False
            self._region_elements = elements
            return (TailChange("", "innerHTML", self.tail_html()),)
        if unchanged:
            return ()
        if container is None:
            return (TailChange("", "innerHTML", Markup(html)),)
        # The region is the holder's last `old` element children: replace the first, remove the rest
        # (htmx finds every target before it swaps, so the selectors all name the old elements). Without
        # its last newline: the one after the element it replaces stays, so whitespace never piles up.
        old, self._region_elements = self._region_elements, elements
        content = Markup((frozen + html).rstrip("\n"))
        if old == 0:
            return (TailChange(container.holder, "beforeend", content),) if content else ()
        changes = [TailChange(f"{container.holder} > {_nth_last(old)}", "outerHTML", content)]
        changes.extend(
            TailChange(f"{container.holder} > {_nth_last(n)}", "outerHTML", Markup()) for n in range(old - 1, 0, -1)
        )
        return tuple(changes)

    def _set_region(self, html: str) -> None:
        self._region, self._region_closing = ([html] if html else []), ""

    def _settle_early(self, partial: str) -> RenderUpdate:
        """A half-typed line that certainly starts a new block (it begins with a word) makes the blocks
        before it final now, not when its line ends: a paragraph after a list streams at once."""
        tokens = self._parse("".join(self._lines) + partial + "\n")
        starts = _starts(tokens)
        self._drop_container()
        self._fence, self._in_fence = None, False
        if len(starts) < 2 or _line(tokens[starts[-1]]) != len(self._lines):
            return self._show()  # the whole text disagrees with the window: nothing is final yet
        append, replace = self._settle(tokens)
        self._adopt(self._parse("".join(self._lines)))
        return _merge(append, replace, self._show())

    # -- Growing in place --------------------------------------------------------------------------

    def _extend(self, extension: _Extension, text: str) -> RenderUpdate:
        if extension.code:
            html = _escape_code(text)
            if self._fence is not None:
                self._fence.shown += text
        else:
            visible = extension.pending_space + text
            html = visible.rstrip(" ")
            extension.pending_space = visible[len(html) :]  # trailing spaces show only once followed
        if not html:
            return _NO_CHANGE
        self._region.append(html)
        return RenderUpdate(tail=(TailChange(extension.path, "beforeend", Markup(html)),))

    def _add_lines(self, lines: list[str]) -> None:
        end = self._ends[-1] if self._ends else 0
        for line in lines:
            end += len(line)
            self._ends.append(end)
        self._lines.extend(lines)

    def _keep_lines_from(self, index: int) -> None:
        self._lines = self._lines[index:]
        self._ends = list(itertools.accumulate(map(len, self._lines)))

    def _window_chars(self) -> int:
        """The size of `_window()`, without building it (this runs for every token)."""
        container = self._container
        total = self._ends[-1] if self._ends else 0
        if container is None:
            return total
        start, end = container.head
        head = (self._ends[end - 1] - (self._ends[start - 1] if start else 0)) if end > start else 0
        return head + total - (self._ends[container.anchor - 1] if container.anchor else 0)

    def _find_fence(self, tokens: list[Token], window: Sequence[str]) -> None:
        """Notice when the region ends in an open code fence: its lines then need no parsing."""
        self._fence = None
        self._in_fence = False
        stack: list[Token] = []
        last: Token | None = None
        path: list[Token] = []
        for token in tokens:
            if token.nesting == 1:
                stack.append(token)
            elif token.nesting == -1 and stack:
                stack.pop()
            elif token.map is not None:
                last, path = token, list(stack)
        if last is not None and last.type == "math_block" and last.map is not None and last.map[1] == len(window):
            self._in_fence = not last.meta["closed"]  # an open display formula: its lines are not markdown
            return
        if last is None or last.type != "fence" or last.map is None or last.map[1] != len(window):
            return
        self._in_fence = True  # unless its last line closes it, below
        prefixes: list[_Prefix] = []
        for container in path:
            if container.type == "blockquote_open":
                prefixes.append(_Prefix(quote=True))
            elif container.type == "list_item_open":
                first = _apply(window[_line(container)].rstrip("\n"), prefixes, first_line=True)
                offset = _item_offset(first) if first is not None else None
                if offset is None:
                    self._in_fence = _inside_fence("".join(window))  # a guess, for display only
                    return
                prefixes.append(_Prefix(indent=offset))
            elif container.type not in ("bullet_list_open", "ordered_list_open"):
                self._in_fence = _inside_fence("".join(window))
                return
        opening = _apply(window[last.map[0]].rstrip("\n"), prefixes, first_line=True)
        marker = _FENCE_OPENING.match(opening or "")
        if opening is None or marker is None:
            self._in_fence = _inside_fence("".join(window))
            return
        if last.map[1] - last.map[0] >= 2:
            closing = _apply(window[last.map[1] - 1].rstrip("\n"), prefixes)
            fence = marker.group(2)
            if closing is not None and re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", closing):
                self._in_fence = False  # closed: the next line starts something else
                return
        if self._extend_in_place:
            self._fence = _OpenFence(prefixes, len(marker.group(1)))

    def _enter_fence(self, fence: _OpenFence, html: str) -> RenderUpdate:
        head, closing, tags = _split_closing(html)
        # The region must end inside a code block's code, as its template closes it.
        if tags[: len(self._pipeline.code_block_closing)] != self._pipeline.code_block_closing:
            self._fence = None
            return _NO_CHANGE
        holder = self._container.holder if self._container is not None else ""
        fence.path = holder + _path(tags)
        fence.shown = ""
        self._region, self._region_closing = [head], closing
        return self._fence_partial(fence)

    def _grow_fence(self, fence: _OpenFence, codes: list[str]) -> RenderUpdate:
        text = codes[0][len(fence.shown) :] + "\n" + "".join(code + "\n" for code in codes[1:])
        fence.shown = ""
        self._unshown.clear()
        html = _escape_code(text)
        self._region.append(html)
        return _after((TailChange(fence.path, "beforeend", Markup(html)),), self._fence_partial(fence))

    def _fence_partial(self, fence: _OpenFence) -> RenderUpdate:
        """Show the half-typed line of code, unless it may still close the fence (then it waits), or
        leaves the fence's container (then it shows as any other line would)."""
        self._extension = None
        partial = "".join(self._partial)
        if partial and fence.leaves(partial):
            self._fence = None
            return self._show()
        self._unshown.clear()
        code = fence.code(partial, complete=False) if partial else None
        if code is None:
            return _NO_CHANGE
        self._extension = _Extension(fence.path, code=True)
        added, fence.shown = code[len(fence.shown) :], code
        if not added:
            return _NO_CHANGE
        html = _escape_code(added)
        self._region.append(html)
        return RenderUpdate(tail=(TailChange(fence.path, "beforeend", Markup(html)),))

    # -- Helpers -----------------------------------------------------------------------------------

    def _window(self) -> list[str]:
        """The open region's complete lines: from its anchor, after the container's head lines."""
        container = self._container
        if container is None:
            return self._lines
        start, end = container.head
        return self._lines[start:end] + self._lines[container.anchor :]

    def _line_of(self, window_line: int) -> int:
        container = self._container
        if container is None:
            return window_line
        start, end = container.head
        head = end - start
        return start + window_line if window_line < head else container.anchor + window_line - head

    def _env(self) -> dict[str, Any]:
        return {"references": dict(self._references)}

    def _parse(self, source: str) -> list[Token]:
        self.work += len(source)
        self._last_env = self._env()
        return self._pipeline.parse(source, self._last_env)


@dataclass(slots=True)
class _Container:
    """An open top-level list, quote or table, shown in the tail as its element with its children."""

    holder: str  # selector of the element holding the children, relative to the tail
    head: tuple[int, int]  # lines every window starts with (a table's header and delimiter rows)
    anchor: int  # the line where the open (last) child starts
    opening: str  # the tail's HTML before the children, and after them
    closing: str
    frozen: list[str]  # finished children, as the tail shows them


@dataclass(slots=True)
class _OpenFence:
    """The open code fence the region ends in: which lines continue it, and where its text goes."""

    prefixes: list[_Prefix]  # the containers around the fence, outermost first
    indent: int  # the opening fence's indentation, removed from each line
    path: str = ""  # selector of the <code> element, relative to the tail
    shown: str = ""  # the code of the half-typed line the page already shows

    def leaves(self, line: str) -> bool:
        """The line does not continue the containers the fence is in (no `>`, or too little indentation)."""
        return _apply(line, self.prefixes) is None

    def code(self, line: str, *, complete: bool = True) -> str | None:
        """The code `line` adds, or None when it may end the fence (or leave a container)."""
        text = _apply(line[:-1] if line.endswith("\n") else line, self.prefixes)
        if text is None or _MAY_CLOSE.fullmatch(text):
            return None
        if not complete and not _SETTLED_CODE_LINE.match(text):
            return None  # only spaces, backticks or tildes so far: it may become the closing fence
        spaces = len(text) - len(text.lstrip(" "))
        if "\t" in text[: self.indent] and spaces < self.indent:
            return None
        return text[min(spaces, self.indent) :]


@dataclass(slots=True)
class _Extension:
    """The region ends in text that plain words (or any code text) extend without a render."""

    path: str  # selector of the element holding that text, relative to the tail
    code: bool = False
    pending_space: str = ""  # trailing spaces of the source, which markdown drops until a word follows

    def accepts(self, text: str) -> bool:
        return bool((_CODE_TEXT if self.code else _PLAIN).fullmatch(text))


class _Budget:
    """Allows work on a region of `size` characters when it is small, or once it grew by a fraction
    since the last time: renders of an ever-growing region then add up to a few times its size."""

    def __init__(self) -> None:
        self._last = 0

    def allow(self, size: int) -> bool:
        if size <= _SMALL or size < self._last or size - self._last >= size // _GROWTH:
            self._last = size
            return True
        return False

    def reset(self) -> None:
        self._last = 0


# -- Tokens ----------------------------------------------------------------------------------------

# Blocks that become containers in the tail, their finished children frozen there.
_CONTAINERS: Final = frozenset({"bullet_list_open", "ordered_list_open", "blockquote_open", "table_open"})


def _line(token: Token) -> int:
    assert token.map is not None
    return token.map[0]


def _starts(tokens: Sequence[Token]) -> list[int]:
    """Indices of the top-level blocks."""
    return [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map is not None]


def _children(tokens: Sequence[Token]) -> tuple[list[int], int] | None:
    """When `tokens` are one list, quote or table (with body rows): the indices where its children
    (items, blocks, rows) start, and where its closing tokens start. Else None."""
    if not tokens or tokens[0].type not in _CONTAINERS or len(_starts(tokens)) != 1:
        return None
    kind = tokens[0].type
    if kind == "table_open":
        body = next((i for i, t in enumerate(tokens) if t.type == "tbody_open"), None)
        if body is None:
            return None
        return [i for i in range(body + 1, len(tokens)) if tokens[i].type == "tr_open"], len(tokens) - 2
    if kind == "blockquote_open":
        return [i for i, t in enumerate(tokens) if t.level == 1 and t.nesting >= 0 and t.map is not None], len(
            tokens
        ) - 1
    return [i for i, t in enumerate(tokens) if t.level == 1 and t.type == "list_item_open"], len(tokens) - 1


def _settles_early(tokens: Sequence[Token], window_lines: int, partial: str) -> bool:
    starts = _starts(tokens)
    return len(starts) >= 2 and _line(tokens[starts[-1]]) == window_lines and bool(_NEW_BLOCK_LINE.match(partial))


def _table_head(window: Sequence[str], partial: str, shown: str, *, top_level: bool) -> int:
    """How many of the last lines may still become a table's header and delimiter row: 2 (the last
    complete line, and the half-typed one if any), 1 (the half-typed line) or 0. They are held back
    from the tail until the next line tells, so a table never shows as a paragraph of raw pipes first.
    (Whether the line before them already makes them a table's rows, a parse tells.)"""
    last = window[-1] if window else ""
    if (
        "|" in last
        and (not partial or _DELIMITER_ROW_PREFIX.fullmatch(partial) is not None)
        and _DELIMITER_ROW_PREFIX.fullmatch(last.rstrip("\n")) is None  # (it may make a table with the line before)
        and not (top_level and last.startswith(("    ", "\t")))  # (indented code)
    ):
        return 2
    return 1 if "|" in shown else 0


def _is_table(container: _Container | None) -> bool:
    return container is not None and container.head[1] > container.head[0]


def _in_table(tokens: Sequence[Token], line: int) -> bool:
    return any(t.type == "table_open" and t.map is not None and t.map[0] <= line < t.map[1] for t in tokens)


def _merge(append: Markup, replace: Markup | None, update: RenderUpdate) -> RenderUpdate:
    """What settling gave, followed by a later update (which may have settled more)."""
    if update.replace is not None:
        return update  # the whole body again, the blocks settled first included
    if replace is not None:
        return RenderUpdate(Markup(), update.tail, replace + update.append)
    return RenderUpdate(append + update.append, update.tail) if append else update


def _after(changes: tuple[TailChange, ...], update: RenderUpdate) -> RenderUpdate:
    """`changes`, then `update` (which may make them moot by replacing the whole tail)."""
    if update.replaces_tail or not changes:
        return update
    return RenderUpdate(update.append, (*changes, *update.tail), update.replace)


def _path(tags: Sequence[str]) -> str:
    """The selector that leads through the last children named by closing tags (innermost first)."""
    return "".join(f" > {tag}:last-child" for tag in reversed(tags))


def _nth_last(n: int) -> str:
    return ":last-child" if n == 1 else f":nth-last-child({n})"


# -- Lines inside containers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prefix:
    """What a line must start with to stay inside a quote (`>`) or a list item (its indentation)."""

    quote: bool = False
    indent: int = 0

    def strip(self, line: str, *, first_line: bool = False) -> str | None:
        """The line without the marker, or None when the line does not continue the container."""
        if self.quote:
            marker = _QUOTE.match(line)
            return line[marker.end() :] if marker is not None else None
        if first_line or not line.strip():  # the item's marker line, or a blank line
            return line[self.indent :]
        return line[self.indent :] if line.startswith(" " * self.indent) else None


def _apply(line: str | None, prefixes: Sequence[_Prefix], *, first_line: bool = False) -> str | None:
    for prefix in prefixes:
        if line is None:
            return None
        line = prefix.strip(line, first_line=first_line)
    return line


def _item_offset(line: str) -> int | None:
    """The column where a list item's content starts, from its marker line (CommonMark's rule)."""
    marker = _ITEM_MARKER.match(line)
    if marker is None or "\t" in marker.group(3):
        return None
    base = len(marker.group(1)) + len(marker.group(2))
    spaces = len(marker.group(3))
    if not line[marker.end() :].strip() or spaces >= 5:
        return base + 1
    return base + spaces


# -- HTML --------------------------------------------------------------------------------------------


def _escape_code(text: str) -> str:
    # As markdown-it (NUL becomes U+FFFD) and then the sanitiser serialise text: quotes stay quotes.
    html = escapeHtml(text).replace("&quot;", '"')
    if "\x00" in html or "\u00a0" in html:
        html = html.replace("\x00", "\ufffd").replace("\u00a0", "&nbsp;")
    return html


def closing_tags(html: str) -> list[str]:
    """The names of the closing tags `html` ends with, innermost first."""
    return _split_closing(html)[2]


def _holder(closing: str) -> str | None:
    """The selector, relative to the tail, of the element a container's children go in: through the
    last children its closing tags name. None when `closing` is not only closing tags."""
    head, _, tags = _split_closing(closing)
    return _path(tags) if tags and not head.strip() else None


def _split_closing(html: str) -> tuple[str, str, list[str]]:
    """`html` split before the closing tags it ends with; the tags' names, innermost first."""
    end, tags = len(html), list[str]()
    while True:
        stop = end - 1 if end and html[end - 1] == "\n" else end
        start = html.rfind("</", 0, stop)
        name = html[start + 2 : stop - 1] if start >= 0 and stop and html[stop - 1] == ">" else ""
        if not (name.isascii() and name.isalnum() and name.islower()):
            tags.reverse()
            return html[:end], html[end:], tags
        tags.append(name)
        end = start


def _extendable(head: str, tags: Sequence[str], partial: str, path: str) -> _Extension | None:
    """When the region ends in a plain word of a line whose block structure is settled (a paragraph,
    heading or list item that has begun with a letter), appending plain words (letters, digits,
    spaces, simple punctuation: nothing markdown gives meaning to) cannot change anything but that
    text: it goes before the region's closing tags."""
    words = partial.rstrip(" ")
    if not words or not _PLAIN.fullmatch(words[-1]) or not _SETTLED_LINE.match(partial):
        return None
    if not set(tags) <= _TEXT_BLOCKS or not head.endswith(words[-1]):
        return None
    return _Extension(path, False, partial[len(words) :])


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
    paragraph = _drop_half_link(paragraph)
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


def _drop_half_link(paragraph: str) -> str:
    """`[text](http://half…` and `[half text…` on the last line show as their text. (String search,
    not a regex: a line of many `[` would make a backtracking pattern quadratic.)"""
    end = len(paragraph) - 1 if paragraph.endswith("\n") else len(paragraph)
    line_start = paragraph.rfind("\n", 0, end) + 1
    target = paragraph.rfind("](", line_start, end)
    if target >= 0 and paragraph.find(")", target + 2, end) < 0:
        # [text](url…: the link text is what lies between the last "]" or line start and the target.
        opener = paragraph.find("[", max(paragraph.rfind("]", line_start, target) + 1, line_start), target)
        if opener >= 0:
            start = opener - 1 if opener > line_start and paragraph[opener - 1] == "!" else opener
            return paragraph[:start] + paragraph[opener + 1 : target] + paragraph[end:]
    opener = paragraph.find("[", max(paragraph.rfind("]", line_start, end) + 1, line_start), end)
    if opener < 0:
        return paragraph
    start = opener - 1 if opener > line_start and paragraph[opener - 1] == "!" else opener
    return paragraph[:start] + paragraph[opener + 1 :]


def _emphasis_patterns(marker: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    m = re.escape(marker)
    opener = re.compile(rf"(?:^|(?<=[\s(\[]))(?<!\\){m}(?=[^\s{m[-1]}])", re.M)
    closer = re.compile(rf"(?<=[^\s\\{m[-1]}]){m}(?=$|[\s).,;:!?\]])", re.M)
    return opener, closer


# Characters markdown gives no meaning to in the middle of a line (no `*_[]`~<>&;|#\!$` …), and which
# HTML serialises as themselves.
_PLAIN: Final = re.compile(r"(?:[^\W_]|[ .,:?'\"()/%+=@–—“”‘’…-])+")
# Optional indentation and list, quote or heading markers, then a letter: the line's block is settled.
_SETTLED_LINE: Final = re.compile(r"[ ]*(?:(?:[-*+]|\d{1,9}[.)]|#{1,6}|>)[ ]+)*[^\W\d_]")
# A line that begins a new block whatever follows on it: a heading, or a word (perhaps emphasised).
_NEW_BLOCK_LINE: Final = re.compile(r" {0,3}(?:#{1,6} +\S|(?:[*_`~]{1,2})?[^\W\d_])")
# A half-typed line that is only block syntax ("##", "- ", "```py"): shown once its text arrives.
_BARE_MARKER: Final = re.compile(r"\s*(#{1,6}|[-*+]|\d{1,9}[.)]|>|[-=*_]{2,}|(```|~~~)\S*|\||\$\$|\\\[)\s*")
# What a table's delimiter row may have begun with ("|", "|:-", "---|"), in a quote or list item.
_DELIMITER_ROW_PREFIX: Final = re.compile(r"[ \t>|:-]*")
_TEXT_BLOCKS: Final = {"p", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "label"}
_TEXT_ENDS: Final = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "label"}
# Code: anything but a line break.
_CODE_TEXT: Final = re.compile(r"[^\r\n]+")
_SETTLED_CODE_LINE: Final = re.compile(r"[ ]{4,}\S|[ ]{0,3}[`~]*[^\s`~]")
_FENCE_LINE: Final = re.compile(r" {0,3}(```|~~~)")
_MAY_CLOSE: Final = re.compile(r" {0,3}(?:`{3,}|~{3,})[ \t]*")
_FENCE_OPENING: Final = re.compile(r"( {0,3})(`{3,}|~{3,})")
_QUOTE: Final = re.compile(r" {0,3}> ?")
_ITEM_MARKER: Final = re.compile(r"( {0,3})([-+*]|\d{1,9}[.)])([ \t]*)")
_OPENERS: Final = re.compile(r"[`*_~\[]")
_EMPHASIS: Final = {marker: _emphasis_patterns(marker) for marker in ("**", "__", "~~", "*", "_")}
