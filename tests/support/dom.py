"""A small DOM that applies htmx swaps the way the browser does, for the selectors Folyam sends:
`#id`, then any number of ` > tag:last-child`, ` > :last-child` or ` > :nth-last-child(n)`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser

_VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "area", "base", "col", "source"}
# Whitespace between the children of these elements is not rendered, so it is not compared either
# (swapping one list item for two leaves a newline more or less between them).
_BLOCK_PARENTS = {"#fragment", "div", "ul", "ol", "blockquote", "table", "thead", "tbody", "tr"}
_STEP = re.compile(r" > (?:([a-z0-9]+)?:last-child|:nth-last-child\((\d+)\))")


@dataclass(eq=False)
class Element:
    tag: str
    attrs: list[tuple[str, str | None]] = field(default_factory=list)
    children: list[Element | str] = field(default_factory=list)

    def elements(self) -> list[Element]:
        return [child for child in self.children if isinstance(child, Element)]

    def inner_html(self) -> str:
        return _serialize_children(self)


def _serialize(node: Element | str) -> str:
    if isinstance(node, str):
        return escape(node, quote=False)
    attrs = "".join(f' {k}="{escape(v or "", quote=True)}"' for k, v in node.attrs)
    if node.tag in _VOID:
        return f"<{node.tag}{attrs}>"
    return f"<{node.tag}{attrs}>{node.inner_html()}</{node.tag}>"


def _serialize_children(parent: Element) -> str:
    skip_blank = parent.tag in _BLOCK_PARENTS
    return "".join(
        _serialize(child)
        for child in parent.children
        if not (skip_blank and isinstance(child, str) and not child.strip())
    )


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#fragment")
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, attrs)
        self._stack[-1].children.append(element)
        if tag not in _VOID:
            self._stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(Element(tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self._stack[-1].tag == tag, f"unbalanced </{tag}> in fragment"
        self._stack.pop()

    def handle_data(self, data: str) -> None:
        children = self._stack[-1].children
        if children and isinstance(children[-1], str):
            children[-1] += data
        else:
            children.append(data)


def parse_fragment(html: str) -> list[Element | str]:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    assert len(builder._stack) == 1, f"unclosed elements in fragment {html!r}"
    return builder.root.children


def normalize(html: str) -> str:
    """HTML serialised the way this DOM serialises it, to compare with what a swap left behind."""
    return _serialize_children(Element("#fragment", children=parse_fragment(html)))


class Document:
    """Elements by id, created on first use; each swap resolves its target before changing anything."""

    def __init__(self) -> None:
        self.by_id: dict[str, Element] = {}

    def element(self, element_id: str) -> Element:
        return self.by_id.setdefault(element_id, Element("div", [("id", element_id)]))

    def swap(self, selector: str, style: str, html: str) -> None:
        target, parent = self._resolve(selector)
        nodes = parse_fragment(html)
        if style == "innerHTML":
            target.children = nodes
        elif style == "beforeend":
            target.children.extend(nodes)
        elif style == "outerHTML":
            assert parent is not None, f"outerHTML of a root element: {selector}"
            index = next(i for i, child in enumerate(parent.children) if child is target)
            parent.children[index : index + 1] = nodes
        else:
            raise AssertionError(f"unexpected swap {style!r}")

    def _resolve(self, selector: str) -> tuple[Element, Element | None]:
        element_id, _, rest = selector.removeprefix("#").partition(" ")
        target, parent = self.element(element_id), None
        rest = " " + rest if rest else ""
        position = 0
        for step in _STEP.finditer(rest):
            assert step.start() == position, f"unsupported selector {selector!r}"
            position = step.end()
            tag, nth = step.group(1), step.group(2)
            elements = target.elements()
            assert elements, f"{selector!r}: no element children at {step.group(0)!r}"
            chosen = elements[-int(nth)] if nth else elements[-1]
            assert tag is None or chosen.tag == tag, f"{selector!r}: last child is <{chosen.tag}>, not <{tag}>"
            target, parent = chosen, target
        assert position == len(rest), f"unsupported selector {selector!r}"
        return target, parent
