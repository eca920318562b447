"""LaTeX formulas to MathML (latex2mathml), bounded in size and cost, with output the sanitiser reads
as latex2mathml meant it: the formula's own text escaped, its character references kept."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Final
from xml.etree.ElementTree import Element, tostring

from latex2mathml.converter import convert_to_element

__all__ = ["MAX_FORMULA_CHARS", "MathML"]

# Longer formulas show as their source: converting costs up to ~12 µs a character on hostile input.
MAX_FORMULA_CHARS: Final = 4_000
# Macro definitions can expand a short formula into a huge one (latex2mathml caps their depth, not
# their output): a formula that defines any shows as its source.
_MACRO_DEFINITION: Final = re.compile(
    r"\\(?:[egx]?def|let|(?:re)?new(?:command|environment)|providecommand|DeclareMathOperator)(?![A-Za-z])"
)
# latex2mathml keeps "&#x…;" references as text and un-escapes its whole output to turn them into
# references, which also lets a formula's own "<" or "&" through as markup. Here the output is escaped
# properly and only those references are restored.
_ESCAPED_REFERENCE: Final = re.compile(r"&amp;(#x[0-9A-Fa-f]{1,6};)")
# Lengths the model chooses (\hspace, \rule, \kern…): a huge one would push the page sideways.
_LENGTH_ATTRIBUTES: Final = {"width", "height", "depth", "lspace", "rspace", "voffset", "minsize", "maxsize"}
_LENGTH: Final = re.compile(r"[+-]?(\d{1,4}(?:\.\d*)?|\.\d+)\s*(em|ex|mu|pt|px|%)?")
_MAX_LENGTH: Final = {"em": 20.0, "ex": 40.0, "mu": 360.0, "pt": 200.0, "px": 300.0, "%": 400.0, None: 20.0}
_CACHE_SIZE: Final = 128


class MathML:
    """Converts formulas, remembering the last few: the live tail renders the same ones again and again."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, bool], str | None] = OrderedDict()

    def convert(self, latex: str, *, display: bool) -> str | None:
        """MathML for `latex` (a `display="block"` one for display math), or None when it cannot be
        converted or is too long."""
        key = (latex, display)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        mathml = _convert(latex, display=display)
        self._cache[key] = mathml
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return mathml


def _convert(latex: str, *, display: bool) -> str | None:
    if not latex.strip() or len(latex) > MAX_FORMULA_CHARS or _MACRO_DEFINITION.search(latex):
        return None
    try:
        math = convert_to_element(latex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds on input it cannot read (deep nesting: RecursionError)
        return None
    for element in math.iter():
        _limit_lengths(element)
    del math.attrib["xmlns"]  # the HTML parser puts <math> in the MathML namespace by itself
    return _ESCAPED_REFERENCE.sub(r"&\1", tostring(math, encoding="unicode"))


def _limit_lengths(element: Element) -> None:
    for name in _LENGTH_ATTRIBUTES.intersection(element.attrib):
        length = _LENGTH.fullmatch(element.attrib[name].strip())
        if length is None or float(length.group(1)) > _MAX_LENGTH[length.group(2)]:
            del element.attrib[name]
