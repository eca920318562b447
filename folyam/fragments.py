"""Fragment building: an answer's render updates, its ending (notice, timing, actions) as `<hx-partial>`s,
each naming its own target, so the server knows nothing of the page beyond the ids the templates render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup, escape

from folyam.components import AnswerIds, ErrorNotice, NoticeTone, SwapStyle, Timing, render_component
from folyam.components._answer_status import Announcement, AnswerActions, AnswerStatus
from folyam.components._composer import ComposerAction
from folyam.components._ids import PAGE_IDS
from folyam.components._render import partial_parts
from folyam.components._thinking import RefusalLabel, Thinking, ThinkingSummary
from folyam.rendering import RenderUpdate
from folyam.store import ExchangeRecord, ExchangeStatus

__all__ = ["AnswerFragments", "Ending", "Endings", "PlainEndings", "thinking_of"]


@dataclass(frozen=True, slots=True)
class Ending:
    """How an answer ended, with what its actions need."""

    exchange_id: str
    conversation_id: str
    session_id: str
    status: ExchangeStatus
    notice: ErrorNotice | None
    timing: Timing | None
    # The answer's markdown, for the Copy button.
    source: str


class PlainEndings:
    """Renders an ended answer's status as any page can show it: its notice and timing, nothing that
    needs the chat page around it."""

    # Whether the chat page's other parts (the composer's button, the live region) follow an answer's end.
    chat_page: ClassVar[bool] = False

    def __init__(self, env: jinja2.Environment) -> None:
        self.env = env

    def status(self, ending: Ending) -> Markup:
        return render_component(self.env, AnswerStatus(ending.notice, ending.timing, None))


class Endings(PlainEndings):
    """Renders an ended answer's status on the chat page: notice, timing and actions (whose forms carry
    the session's CSRF token, so they work without JavaScript)."""

    chat_page = True

    def __init__(self, env: jinja2.Environment, csrf_token: Callable[[str], str]) -> None:
        super().__init__(env)
        self._csrf_token = csrf_token

    def status(self, ending: Ending) -> Markup:
        actions = AnswerActions(
            regenerate_url=f"/chat/{ending.conversation_id}/exchanges/{ending.exchange_id}/regenerate",
            csrf_token=self._csrf_token(ending.session_id),
            source=ending.source,
            retry=ending.status in ("failed", "interrupted"),
        )
        return render_component(self.env, AnswerStatus(ending.notice, ending.timing, actions))

    def of_record(self, record: ExchangeRecord) -> Ending:
        """The ending the store recorded."""
        notice = None
        if record.notice_title:
            # An answer that finished with a notice was cut short (a limit, a filter) but is not an error.
            tones: dict[ExchangeStatus, NoticeTone] = {"stopped": "note", "finished": "warning"}
            tone = tones.get(record.status, "error")
            notice = ErrorNotice(record.notice_title, record.notice_message or "", tone)
        return Ending(
            exchange_id=record.id,
            conversation_id=record.conversation_id,
            session_id=record.session_id,
            status=record.status,
            notice=notice,
            timing=Timing(**record.timing) if record.timing else None,
            source=record.answer,
        )


def thinking_of(record: ExchangeRecord, render_markdown: Callable[[str], Markup]) -> Thinking | None:
    """The thinking block of an ended answer: closed, unless thinking is all the model sent."""
    if not record.reasoning:
        return None
    thinking_ms = (record.timing or {}).get("thinking_ms")
    seconds = thinking_ms / 1000 if isinstance(thinking_ms, int | float) else None
    body = render_markdown(record.reasoning)
    return Thinking(record.id, body=body, seconds=seconds, open=not record.answer.strip())


def announcement(ending: Ending) -> str:
    """What the live region says when an answer ends: short, never the whole timing list."""
    if ending.status == "finished":
        if ending.notice is not None:
            return f"Answer ended: {ending.notice.title}"
        if ending.timing is None:
            return "Answer finished"
        return f"Answer finished in {ending.timing.total_ms / 1000:.1f} s"
    if ending.status == "stopped":
        return "Answer stopped"
    return f"Answer ended: {ending.notice.title}" if ending.notice else "Answer ended"


class AnswerFragments:
    """The partials of one answer's events."""

    def __init__(self, endings: PlainEndings, generation_id: str) -> None:
        self._endings = endings
        self._env = endings.env
        # The targets, from the ids the answer's templates render (computed once per answer).
        ids = AnswerIds.of(generation_id)
        self._body = f"#{ids.body}"
        self._tail = f"#{ids.tail}"
        self._status = f"#{ids.status}"
        self._thinking_slot = f"#{ids.thinking_slot}"
        self._thinking_summary = f"#{ids.thinking_summary}"
        self._generation_id = generation_id
        self._reasoning_body = f"#{ids.reasoning_body}"
        self._reasoning_tail = f"#{ids.reasoning_tail}"
        self._wrappers: dict[tuple[str, SwapStyle], tuple[str, str]] = {}

    def update(self, update: RenderUpdate, *, reasoning: bool = False) -> Markup:
        """One event's data for one update, so an appended block and the tail's change land together; the
        thinking block's body and tail take a second renderer's updates the same way."""
        body, tail = (self._reasoning_body, self._reasoning_tail) if reasoning else (self._body, self._tail)
        partials = []
        if update.replace is not None:
            partials.append(self._wrap(body, "innerHTML", update.replace))
        if update.append:
            partials.append(self._wrap(body, "beforeend", update.append))
        for change in update.tail:
            partials.append(self._wrap(tail + change.path, change.swap, change.html))
        return Markup("".join(partials))

    def thinking_started(self) -> Markup:
        """The empty thinking block, open, into its slot above the answer."""
        block = render_component(self._env, Thinking(self._generation_id))
        return self._partial(self._thinking_slot, "innerHTML", block)

    def thinking_ended(self, seconds: float, *, close: bool) -> Markup:
        """Only the summary is swapped: the block's content stays as its own updates left it."""
        summary = render_component(self._env, ThinkingSummary(self._generation_id, seconds, closes=close))
        return self._partial(self._thinking_summary, "outerHTML", summary)

    def refused(self) -> Markup:
        return self._partial(self._body, "beforebegin", render_component(self._env, RefusalLabel()))

    def status(self, ending: Ending) -> tuple[Markup, Markup]:
        """The status an ended answer shows, and the partials that put it in place: the status, the
        composer's Ask button back in place of Stop, and the live region's short announcement."""
        status = self._endings.status(ending)
        return status, self._partial(self._status, "innerHTML", status) + self._after_end(ending)

    def ended(self, body: Markup, ending: Ending, thinking: Thinking | None = None) -> Markup:
        """The whole answer as it ended, in one event: for a reader that comes after its events expired,
        or when another process ends an answer whose own process died."""
        slot = render_component(self._env, thinking) if thinking is not None else Markup()
        return Markup().join(
            [
                self._partial(self._thinking_slot, "innerHTML", slot),
                self._partial(self._body, "innerHTML", body),
                self._partial(self._tail, "innerHTML", Markup()),
                self._partial(self._status, "innerHTML", self._endings.status(ending)),
                self._after_end(ending),
            ]
        )

    def _after_end(self, ending: Ending) -> Markup:
        if not self._endings.chat_page:
            return Markup()
        ask = render_component(self._env, ComposerAction())
        said = render_component(self._env, Announcement(announcement(ending)))
        return self._partial(f"#{PAGE_IDS.composer_action}", "outerHTML", ask) + self._partial(
            f"#{PAGE_IDS.announcer}", "innerHTML", said
        )

    def _partial(self, target: str, swap: SwapStyle, content: Markup) -> Markup:
        return Markup(self._wrap(target, swap, content))

    def _wrap(self, target: str, swap: SwapStyle, content: Markup) -> str:
        # The partial template is rendered once per target and swap, around a marker; each event then
        # only joins strings (this runs for every event of every answer). Plain str joins, not Markup's
        # operators, which escape and copy every operand: the result is wrapped in Markup once.
        key = (target, swap)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            wrapper = self._wrappers[key] = partial_parts(self._env, target, swap)
        # escape(): a Markup passes as it is; anything else that strayed here is escaped, never trusted.
        return "".join((wrapper[0], escape(content), wrapper[1]))
