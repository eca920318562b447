"""Fragment building: an answer's render updates, notice and timing as `<hx-partial>`s, each naming
its own target, so the server knows nothing of the page beyond the ids the answer template renders."""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from components import ErrorNotice, Partial, SwapStyle, Timing, render_component
from components.answer import body_id, status_id, tail_id
from folyam.rendering import RenderUpdate
from folyam.store import ExchangeRecord

__all__ = ["AnswerFragments", "ended_status", "record_status"]

_MARKER = Markup("\x00content\x00")  # only ever inside our own wrapper, never in content


class AnswerFragments:
    """The partials of one answer's events."""

    def __init__(self, env: jinja2.Environment, generation_id: str) -> None:
        self._env = env
        self._body = f"#{body_id(generation_id)}"
        self._tail = f"#{tail_id(generation_id)}"
        self._status = f"#{status_id(generation_id)}"
        self._wrappers: dict[tuple[str, SwapStyle], tuple[str, str]] = {}

    def update(self, update: RenderUpdate) -> Markup:
        """One event's data for one update, so an appended block and the tail's change land together."""
        partials = []
        if update.replace is not None:
            partials.append(self._partial(self._body, "innerHTML", update.replace))
        if update.append:
            partials.append(self._partial(self._body, "beforeend", update.append))
        for change in update.tail:
            partials.append(self._partial(self._tail + change.path, change.swap, change.html))
        return Markup().join(partials)

    def status(self, notice: ErrorNotice | None, timing: Timing | None) -> tuple[Markup, Markup]:
        """The status an ended answer shows (a notice if it did not end normally, then the timing if
        known), and the partial that puts it in place."""
        status = ended_status(self._env, notice, timing)
        return status, self._partial(self._status, "innerHTML", status)

    def ended(self, body: Markup, status: Markup) -> Markup:
        """The whole answer as it ended, in one event: for a reader that comes after its events expired,
        or when another process ends an answer whose own process died."""
        return Markup().join(
            [
                self._partial(self._body, "innerHTML", body),
                self._partial(self._tail, "innerHTML", Markup()),
                self._partial(self._status, "innerHTML", status),
            ]
        )

    def _partial(self, target: str, swap: SwapStyle, content: Markup) -> Markup:
        # The partial template is rendered once per target and swap, around a marker; each event then
        # only joins strings (this runs for every event of every answer).
        key = (target, swap)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            html = render_component(self._env, Partial(target=target, swap=swap, content=_MARKER))
            before, _, after = html.partition(_MARKER)
            wrapper = self._wrappers[key] = (before, after)
        return Markup(wrapper[0] + content + wrapper[1])


def ended_status(env: jinja2.Environment, notice: ErrorNotice | None, timing: Timing | None) -> Markup:
    """An ended answer's status: its notice, if it did not end normally, then its timing, if known."""
    status = Markup()
    if notice is not None:
        status += render_component(env, notice)
    if timing is not None:
        status += render_component(env, timing)
    return status


def record_status(env: jinja2.Environment, record: ExchangeRecord) -> Markup:
    """The status of an exchange as the store recorded its end."""
    notice = ErrorNotice(record.notice_title, record.notice_message or "") if record.notice_title else None
    return ended_status(env, notice, Timing(**record.timing) if record.timing else None)
