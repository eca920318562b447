"""What a browser holds while an answer streams: the body, and the live tail as a small DOM that
applies each tail change the way htmx does. Checks after every update that the tail equals what the
renderer says it is (what a page reloaded at that moment would show)."""

from __future__ import annotations

from folyam.rendering import AnswerRenderer, RenderUpdate
from tests.support.dom import Document, normalize


class Page:
    def __init__(self, renderer: AnswerRenderer, *, verify: bool = True) -> None:
        self.renderer = renderer
        self.verify = verify  # compare the tail after every update (costs a parse of the whole tail)
        self.body = ""
        self.appended: list[str] = []
        self.changes: list[RenderUpdate] = []
        self._document = Document()

    @property
    def tail(self) -> str:
        return self._document.element("tail").inner_html()

    def feed(self, text: str) -> RenderUpdate:
        return self.apply(self.renderer.feed(text))

    def finish(self) -> RenderUpdate:
        return self.apply(self.renderer.finish())

    def apply(self, update: RenderUpdate) -> RenderUpdate:
        self.changes.append(update)
        if update.replace is not None:
            self.body = str(update.replace)
        self.body += str(update.append)
        if update.append:
            self.appended.append(str(update.append))
        assert not any(change.replaces_tail for change in update.tail[1:]), "a whole-tail replacement comes first"
        for change in update.tail:
            self._document.swap("#tail" + change.path, change.swap, str(change.html))
        if self.verify:
            assert self.tail == normalize(str(self.renderer.tail_html())), "the page's tail and the renderer's differ"
        return update


def stream(renderer: AnswerRenderer, text: str, cuts: list[int], *, verify: bool = True) -> Page:
    """Feed `text` cut at `cuts`, then finish."""
    page = Page(renderer, verify=verify)
    start = 0
    for cut in [*sorted(set(cuts)), len(text)]:
        if cut > start:
            page.feed(text[start:cut])
            start = cut
    page.finish()
    return page
