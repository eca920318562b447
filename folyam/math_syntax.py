"""Math in markdown: `$…$`, `$$…$$`, `\\(…\\)` and `\\[…\\]` (display) as markdown-it tokens (the
pipeline renders them). Conservative, so prices stay text ("costs $5 and $10"), and linear on any input.

Inline `$` math is mdit-py-plugins' dollarmath, with the closing `$` not after a space nor before a
digit (Pandoc's rule). Display blocks are parsed here, like code fences: a line that is only `$$` or
`\\[` opens one, which ends at its closing line, at a blank line, or where its container ends, and
takes every line until then while none of those came. A block's extent then never depends on text
that comes after it ended, so the incremental renderer may treat it as final once another block
follows. (dollarmath's own block rule searches past other blocks for a closing `$$`: a block that
looked finished could turn into math later, and many openers cost quadratic time.)
"""

from __future__ import annotations

from typing import Final

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from mdit_py_plugins.dollarmath import dollarmath_plugin

__all__ = ["math_plugin"]

# Opening and closing delimiters of display math.
_DISPLAY: Final = {"$$": "$$", "\\[": "\\]"}


def math_plugin(md: MarkdownIt) -> None:
    """Adds tokens `math_inline` and `math_inline_double` (display math inside a line), and
    `math_block` (its `meta["closed"]` False while no closing line ended it)."""
    dollarmath_plugin(
        md, allow_labels=False, allow_space=False, allow_digits=False, allow_blank_lines=False, double_inline=True
    )
    md.block.ruler.disable("math_block")  # replaced by _math_block (see the module's docstring)
    md.block.ruler.before(
        "fence", "folyam_math_block", _math_block, {"alt": ["paragraph", "reference", "blockquote", "list"]}
    )
    md.inline.ruler.before("escape", "folyam_math_parentheses", _parenthesis_math)


def _math_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    first = state.bMarks[start] + state.tShift[start]
    opener = state.src[first : first + 2]
    closer = _DISPLAY.get(opener)
    if closer is None or state.is_code_block(start):  # (most lines: two characters tell)
        return False
    rest = state.src[first + 2 : state.eMarks[start]].rstrip()
    if rest and not (len(rest) > len(closer) and rest.endswith(closer)):
        return False  # a formula on the opening line must close on it: `$$x$$`
    if silent:
        return True
    closed = bool(rest)
    lines = [rest[: -len(closer)]] if rest else []
    last = start
    while not closed:
        if last + 1 >= end:
            break
        first, stop = state.bMarks[last + 1] + state.tShift[last + 1], state.eMarks[last + 1]
        if first >= stop or state.sCount[last + 1] < state.blkIndent:
            break  # a blank line, or the end of the container (a list item) the block is in
        last += 1
        line = state.src[first:stop].rstrip()
        closed = line.endswith(closer)
        if not closed:
            lines.append(line)
        elif line != closer:
            lines.append(line[: -len(closer)])
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = "\n".join(lines)
    token.markup = opener
    token.meta = {"closed": closed}
    token.map = [start, last + 1]
    state.line = last + 1
    return True


def _parenthesis_math(state: StateInline, silent: bool) -> bool:
    """`\\(…\\)` inside a line. (Not `\\[…\\]`: inside a line that is more often an escaped bracket.)"""
    if not state.src.startswith("\\(", state.pos):
        return False
    # A closing `\)` missing after one position is missing after every later one: remembered for this
    # parse (per text: an image's alt text is parsed on its own), so many openers cost linear time.
    missing: dict[str, int] = state.env.setdefault("folyam_math_missing_after", {})
    start = state.pos + 2
    if start >= missing.get(state.src, len(state.src) + 1):
        return False
    end = state.src.find("\\)", start)
    if end < 0:
        missing[state.src] = start
        return False
    if end == start:
        return False
    if not silent:
        token = state.push("math_inline", "math", 0)
        token.content = state.src[start:end]
        token.markup = "\\("
    state.pos = end + 2
    return True
