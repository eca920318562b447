"""What the component gallery shows: one small function per component state, building it exactly as the
app does (markdown through the app's own pipeline). The gallery prints each function's source beside what
it renders, so a designer sees which Python makes which markup.

Every specimen is static: no answer here has an events URL, so nothing connects to an event stream. The
forms carry a placeholder CSRF token and point at a conversation that does not exist: they are to be
looked at, and the server refuses them if sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import jinja2
from markupsafe import Markup, escape

from folyam.components import (
    Answer,
    CodeBlock,
    ErrorNotice,
    Exchange,
    Formula,
    Partial,
    Timing,
    UserMessage,
    render_component,
)
from folyam.components._answer_status import Announcement, AnswerActions, AnswerStatus
from folyam.components._composer import Composer, ComposerAction, ModelChoice
from folyam.components._confirm_delete import ConfirmDelete
from folyam.components._conversation_list import ConversationEntry, ConversationItems, ConversationList, RenameForm
from folyam.components._export_link import ExportLink
from folyam.components._message import EditForm
from folyam.components._stream_assets import StreamAssets
from folyam.components._theme import ThemeSwitch
from folyam.components._thinking import Thinking
from folyam.markdown import MarkdownPipeline

__all__ = ["SHOWCASES", "Build", "Frame", "Kit", "Showcase", "Shown"]

# Where a specimen sits on the app's page (the thread, an answer's content or status, the sidebar or its
# list, the dock, the header, a form page); the gallery recreates that surrounding, so the page's own
# layout rules apply. "markup": it is never seen, only its HTML shown.
Frame = Literal["thread", "markdown", "status", "sidebar", "list", "dock", "header", "page", "markup"]

# Specimens are looked at, never sent: the server refuses this token.
TOKEN: Final = "placeholder-csrf-token"
CONVERSATION: Final = "gallery"
MAX_CHARS: Final = 8000

PROSE: Final = """Server-Sent Events keep **one HTTP response open**, and the server writes each event into it
as it happens:

- plain text over HTTP, through any proxy that does not buffer;
- the browser reconnects by itself and sends `Last-Event-ID`;
- one direction only, server to browser.

See [the WHATWG specification](https://html.spec.whatwg.org/multipage/server-sent-events.html).
"""

HALF_A_TABLE: Final = """How the three transports compare:

| Transport | Direction | Reconnects by itself |
| --- | --- | :---: |
| SSE | server → browser | yes |
| WebSocket | both ways | no |
| Long polling | server → br"""

OPEN_CODE_BLOCK: Final = """A minimal event stream in Litestar:

```python
@get("/events")
async def events() -> ServerSentEvent:
    async def messages() -> AsyncIterator[str]:
"""

CODE: Final = '''```python
async def follow(log: EventLog, cursor: int) -> AsyncIterator[Event]:
    """Replay after the cursor, then follow the log live."""
    async for event in log.read(after=cursor):
        yield event  # nothing lost, nothing twice
```
'''

TABLE: Final = """| Status | Notice | Kept |
| :--- | :--- | ---: |
| finished | — | all |
| stopped | a note | what arrived |
| failed | an error | what arrived |
"""

MATH: Final = r"""A photon's energy is $E = h\nu$, and the Gaussian integral is

$$
\int_{-\infty}^{\infty} e^{-x^2}\,dx = \sqrt{\pi}
$$
"""

REASONING: Final = """The question is how a stream resumes. The browser sends **Last-Event-ID** on reconnect,
so the server can replay the events after it.

I should also mention the `retry:` field.
"""

LONG: Final = r"""# Streaming HTML over SSE

Each finished block is sent **once**; only the open one is replaced as it grows.

## How it works

1. The form posts the question.
2. The server starts the answer as a task of its own.
3. The page connects to the answer's event stream:
   - finished blocks are appended to the body,
   - the open block replaces the live tail.

> A reconnect resumes after the last event received: nothing is lost, nothing is shown twice.

## What the model may send

| Shape | Example | Rendered as |
| --- | --- | --- |
| Emphasis | `**bold**`, `_italic_`, `~~struck~~` | **bold**, _italic_, ~~struck~~ |
| Math | `$a^2 + b^2 = c^2$` | $a^2 + b^2 = c^2$ |
| An image | `![a chart](https://example.com/chart.png)` | a link that shows its URL |

- [x] Tables scroll sideways in a box of their own
- [ ] Images never load

![a chart](https://example.com/chart.png)

```js
const source = new EventSource("/generations/g1/events");
source.addEventListener("done", () => source.close());
```

---

That is all: *one* connection, many small fragments.
"""

TIMING: Final = Timing(
    model="gpt-4o-mini",
    first_token_ms=412.4,
    total_ms=5321.0,
    chunks=231,
    tokens=230,
    tokens_reported=True,
    tokens_per_second=47.02,
    prompt_tokens=12,
    total_tokens=242,
)


@dataclass(frozen=True)
class Kit:
    """What specimens are made with besides the components: the app's own Jinja environment and markdown
    pipeline, so a specimen is rendered exactly as the app renders it."""

    env: jinja2.Environment
    pipeline: MarkdownPipeline

    def markdown(self, text: str) -> Markup:
        """`text` as a finished answer shows it: rendered, highlighted, sanitised."""
        return self.pipeline.render(text)

    def streamed(self, text: str) -> tuple[Markup, Markup]:
        """The body and live tail once `text` has arrived, as a page reloaded mid-answer shows them."""
        renderer = self.pipeline.renderer()
        update = renderer.feed(text)
        body = Markup().join(part for part in (update.replace, update.append) if part)
        return body, renderer.tail_html()

    def render(self, component: object) -> Markup:
        """A component's HTML, for a component that another takes as HTML (an answer's status)."""
        return render_component(self.env, component)


Build = Callable[[Kit], object]


@dataclass(frozen=True)
class Shown:
    """One specimen: the function that builds it (its docstring names the state), where it sits, and
    whether it needs a document of its own (a shadow root): its template renders ids a page holds once,
    which static/folyam.js and its labels find by id."""

    build: Build
    frame: Frame
    isolated: bool = False


@dataclass(frozen=True)
class Showcase:
    """One component (or a family of small ones) and its states."""

    title: str
    about: str
    specimens: tuple[Shown, ...]


def _actions(exchange_id: str, source: str, *, retry: bool = False) -> AnswerActions:
    url = f"/chat/{CONVERSATION}/exchanges/{exchange_id}/regenerate"
    return AnswerActions(regenerate_url=url, csrf_token=TOKEN, source=source, retry=retry)


# -- The question ---------------------------------------------------------------------------------------


def user_message(kit: Kit) -> UserMessage:
    """While its answer streams: no Edit"""
    return UserMessage(text="How does an event stream resume after a dropped connection?")


def user_message_editable(kit: Kit) -> UserMessage:
    """Answered: Edit asks it again (text is escaped, line breaks kept)"""
    return UserMessage(
        text="Compare <SSE> & WebSockets.\nKeep it short.",
        edit_url=f"/chat/{CONVERSATION}/exchanges/e1/edit",
    )


def edit_form(kit: Kit) -> EditForm:
    """Editing, in place of the bubble"""
    return EditForm(
        action_url=f"/chat/{CONVERSATION}/exchanges/e1/edit",
        cancel_url=f"/chat/{CONVERSATION}",
        text="Compare <SSE> & WebSockets.\nKeep it short.",
        csrf_token=TOKEN,
        max_chars=MAX_CHARS,
    )


# -- The answer -----------------------------------------------------------------------------------------


def answer_started(kit: Kit) -> Answer:
    """Streaming, nothing arrived yet (in the app `events_url` is set here; the gallery never connects)"""
    return Answer(generation_id="started", events_url=None)


def answer_streaming_table(kit: Kit) -> Answer:
    """Streaming: finished blocks in the body, half a table in the live tail"""
    body, tail = kit.streamed(HALF_A_TABLE)
    return Answer(generation_id="streaming-table", events_url=None, body=body, tail=tail)


def answer_streaming_code(kit: Kit) -> Answer:
    """Streaming: an open code block in the live tail (plain text until its fence closes)"""
    body, tail = kit.streamed(OPEN_CODE_BLOCK)
    return Answer(generation_id="streaming-code", events_url=None, body=body, tail=tail)


def answer_finished(kit: Kit) -> Answer:
    """Finished: timing (tokens as the server reported them) and actions"""
    status = AnswerStatus(notice=None, timing=TIMING, actions=_actions("finished", PROSE))
    return Answer(generation_id="finished", events_url=None, body=kit.markdown(PROSE), status=kit.render(status))


def answer_estimated(kit: Kit) -> Answer:
    """Finished: the server reported no usage, so the tokens are estimated"""
    timing = Timing(
        model="llama3.2",
        first_token_ms=1250.0,
        total_ms=2210.5,
        chunks=58,
        tokens=58,
        tokens_reported=False,
        tokens_per_second=60.4,
    )
    text = "Yes: the browser sends `Last-Event-ID`, and the server replays what came after it."
    status = AnswerStatus(notice=None, timing=timing, actions=_actions("estimated", text))
    return Answer(generation_id="estimated", events_url=None, body=kit.markdown(text), status=kit.render(status))


def answer_stopped(kit: Kit) -> Answer:
    """Stopped by the person: a note, what arrived is kept"""
    text = "Server-Sent Events keep one HTTP response open, and the server"
    notice = ErrorNotice("Stopped", "You stopped this answer; what arrived is kept.", "note")
    timing = Timing(
        model="gpt-4o-mini",
        first_token_ms=380.0,
        total_ms=1480.0,
        chunks=12,
        tokens=12,
        tokens_reported=False,
        tokens_per_second=10.9,
    )
    status = AnswerStatus(notice=notice, timing=timing, actions=_actions("stopped", text))
    return Answer(generation_id="stopped", events_url=None, body=kit.markdown(text), status=kit.render(status))


def answer_cut_off(kit: Kit) -> Answer:
    """Cut off by the model's output limit: a warning"""
    notice = ErrorNotice(
        "The answer reached the model's output limit", "It is cut off there; what arrived is kept.", "warning"
    )
    status = AnswerStatus(notice=notice, timing=TIMING, actions=_actions("cut-off", PROSE))
    return Answer(generation_id="cut-off", events_url=None, body=kit.markdown(PROSE), status=kit.render(status))


def answer_failed(kit: Kit) -> Answer:
    """Ended by an error: an alert, and Retry"""
    notice = ErrorNotice("Could not reach the model server", "Check that it is running, then retry.")
    status = AnswerStatus(notice=notice, timing=None, actions=_actions("failed", "", retry=True))
    return Answer(generation_id="failed", events_url=None, status=kit.render(status))


def answer_refused(kit: Kit) -> Answer:
    """A refusal, marked as one"""
    text = "I can't help with that request."
    status = AnswerStatus(notice=None, timing=TIMING, actions=_actions("refused", text))
    return Answer(
        generation_id="refused", events_url=None, body=kit.markdown(text), status=kit.render(status), refused=True
    )


def answer_thinking(kit: Kit) -> Answer:
    """Thinking: the block open, its own body and live tail, no answer yet"""
    body, tail = kit.streamed(REASONING)
    return Answer(generation_id="thinking", events_url=None, thinking=Thinking("thinking", body=body, tail=tail))


def answer_thought(kit: Kit) -> Answer:
    """Thought, then answered: the block closed, with how long it took; timing apart"""
    timing = Timing(
        model="deepseek-reasoner",
        first_token_ms=4630.0,
        total_ms=7950.0,
        chunks=310,
        tokens=298,
        tokens_reported=True,
        tokens_per_second=89.8,
        prompt_tokens=25,
        total_tokens=323,
        first_reasoning_ms=410.0,
        thinking_ms=4220.0,
        answering_ms=3320.0,
    )
    thinking = Thinking("thought", body=kit.markdown(REASONING), seconds=4.22, open=False)
    status = AnswerStatus(notice=None, timing=timing, actions=_actions("thought", PROSE))
    return Answer(
        generation_id="thought",
        events_url=None,
        body=kit.markdown(PROSE),
        status=kit.render(status),
        thinking=thinking,
    )


def answer_long(kit: Kit) -> Answer:
    """A long answer: headings, lists, a quote, a table, math, an image as a link, code"""
    status = AnswerStatus(notice=None, timing=TIMING, actions=_actions("long", LONG))
    return Answer(generation_id="long", events_url=None, body=kit.markdown(LONG), status=kit.render(status))


def exchange(kit: Kit) -> Exchange:
    """A question and its finished answer, as the thread shows them"""
    message = UserMessage(text="What is SSE?", edit_url=f"/chat/{CONVERSATION}/exchanges/exchange/edit")
    status = AnswerStatus(notice=None, timing=TIMING, actions=_actions("exchange", PROSE))
    answer = Answer(generation_id="exchange", events_url=None, body=kit.markdown(PROSE), status=kit.render(status))
    return Exchange(message=message, answer=answer)


# -- Inside an answer -----------------------------------------------------------------------------------


def code_block(kit: Kit) -> Markup:
    """A finished code block, highlighted by Pygments"""
    return kit.markdown(CODE)


def code_block_live(kit: Kit) -> CodeBlock:
    """A code block still streaming: plain text"""
    return CodeBlock(language="python", code=escape('async def follow(log: EventLog, cursor: int):\n    """Rep'))


def code_block_unnamed(kit: Kit) -> CodeBlock:
    """A fence that names no language"""
    return CodeBlock(language="", code=escape("$ ./scripts/serve\nFolyam is serving on http://127.0.0.1:8000/"))


def table(kit: Kit) -> Markup:
    """A table (it scrolls sideways in a box of its own; columns aligned as the markdown says)"""
    return kit.markdown(TABLE)


def formula(kit: Kit) -> Markup:
    """Math: inline and display, MathML made on the server"""
    return kit.markdown(MATH)


def formula_unconverted(kit: Kit) -> Formula:
    """A formula that could not be converted: its source, as code"""
    return Formula(source=r"$$\begin{unknown} x \end{unknown}$$", mathml=None, block=True)


# -- How an answer ended --------------------------------------------------------------------------------


def notice_error(kit: Kit) -> ErrorNotice:
    """An error (an alert)"""
    return ErrorNotice("The model server is rate limiting us", "Wait a moment, then retry.")


def notice_warning(kit: Kit) -> ErrorNotice:
    """A warning: the answer ended, but not whole"""
    return ErrorNotice("The provider's content filter stopped the answer", "What arrived before it is kept.", "warning")


def notice_note(kit: Kit) -> ErrorNotice:
    """A note: the person stopped the answer"""
    return ErrorNotice("Stopped", "You stopped this answer; what arrived is kept.", "note")


def timing_reported(kit: Kit) -> Timing:
    """Tokens and usage as the server reported them"""
    return TIMING


def timing_estimated(kit: Kit) -> Timing:
    """No usage reported: tokens estimated from the chunks"""
    return Timing(
        model="llama3.2",
        first_token_ms=1250.0,
        total_ms=2210.5,
        chunks=58,
        tokens=58,
        tokens_reported=False,
        tokens_per_second=60.4,
    )


def timing_thinking(kit: Kit) -> Timing:
    """A model that thought first: thinking and answering apart"""
    return Timing(
        model="deepseek-reasoner",
        first_token_ms=4630.0,
        total_ms=7950.0,
        chunks=310,
        tokens=298,
        tokens_reported=True,
        tokens_per_second=89.8,
        prompt_tokens=25,
        total_tokens=323,
        first_reasoning_ms=410.0,
        thinking_ms=4220.0,
        answering_ms=3320.0,
    )


def timing_no_text(kit: Kit) -> Timing:
    """No answer text arrived: no first token, no speed"""
    return Timing(
        model="gpt-4o-mini",
        first_token_ms=None,
        total_ms=30000.0,
        chunks=0,
        tokens=0,
        tokens_reported=False,
        tokens_per_second=None,
    )


def actions(kit: Kit) -> AnswerActions:
    """Copy (the answer's markdown) and Regenerate"""
    return _actions("e1", PROSE)


def actions_retry(kit: Kit) -> AnswerActions:
    """After an error, with no text to copy: Retry"""
    return _actions("e1", "", retry=True)


# -- The composer ---------------------------------------------------------------------------------------


def composer_idle(kit: Kit) -> Composer:
    """Idle: Ask, the model picker, the instructions folded"""
    return Composer(
        action_url=f"/chat/{CONVERSATION}/messages",
        request_id="r1",
        csrf_token=TOKEN,
        max_chars=MAX_CHARS,
        models=ModelChoice(names=("gpt-4o-mini", "gpt-4o", "o3-mini"), selected="gpt-4o-mini"),
    )


def composer_streaming(kit: Kit) -> Composer:
    """While an answer streams: Stop in place of Ask; instructions set, so unfolded"""
    return Composer(
        action_url=f"/chat/{CONVERSATION}/messages",
        request_id="r2",
        csrf_token=TOKEN,
        max_chars=MAX_CHARS,
        action=ComposerAction(stop_url="/generations/streaming/stop"),
        models=ModelChoice(names=("gpt-4o-mini", "gpt-4o"), selected="gpt-4o"),
        system_prompt="Answer in one short paragraph.",
    )


def composer_error(kit: Kit) -> Composer:
    """A question refused: the error above the box, the question kept"""
    return Composer(
        action_url=f"/chat/{CONVERSATION}/messages",
        request_id="r3",
        csrf_token=TOKEN,
        max_chars=MAX_CHARS,
        query="A question that was far too long …",
        error=ErrorNotice("Question too long", "Keep it under 8,000 characters."),
        models=ModelChoice(names=("gpt-4o-mini",), selected="gpt-4o-mini"),
    )


def composer_plain(kit: Kit) -> Composer:
    """Without the picker and the instructions (a page that cannot ask)"""
    return Composer(action_url="/", request_id="r4", csrf_token=TOKEN, max_chars=MAX_CHARS)


def composer_action_stop(kit: Kit) -> ComposerAction:
    """The button alone, as the answer's last event swaps it back: here Stop"""
    return ComposerAction(stop_url="/generations/streaming/stop")


# -- The conversation list and the header ---------------------------------------------------------------


def conversations_empty(kit: Kit) -> ConversationList:
    """Empty: a new visitor"""
    return ConversationList(entries=())


def conversations_several(kit: Kit) -> ConversationList:
    """Several, newest first; the open one is current; a long title is cut with an ellipsis"""
    return ConversationList(
        entries=(
            ConversationEntry("c1", "How SSE resumes", current=True),
            ConversationEntry("c2", "Compare <SSE> & WebSockets"),
            ConversationEntry("c3", "A very long title that does not fit the sidebar's width at all, so it is cut"),
        )
    )


def conversations_with_more(kit: Kit) -> ConversationList:
    """More than a page: the newest, then a link to the older ones (with htmx, they replace it)"""
    return ConversationList(
        entries=(ConversationEntry("c1", "How SSE resumes", current=True), ConversationEntry("c2", "Keyset paging")),
        more="/conversations?before=1764745200000000.c2",
    )


def older_conversations(kit: Kit) -> ConversationItems:
    """The next page, swapped in for "Older conversations": its entries, and the link to the page after"""
    return ConversationItems(
        entries=(ConversationEntry("c8", "An older question"), ConversationEntry("c9", "Older still")),
        more="/conversations?before=1764745100000000.c9",
        focus_first=False,  # (here, the gallery page's focus stays where it is)
    )


def rename_in_list(kit: Kit) -> RenameForm:
    """Renaming, in place of the entry"""
    return RenameForm(conversation_id="c2", title="Compare <SSE> & WebSockets", csrf_token=TOKEN)


def theme_switch(kit: Kit) -> ThemeSwitch:
    """The theme switch, Dark chosen (a plain form; the page comes back in the theme)"""
    return ThemeSwitch(theme="dark", csrf_token=TOKEN, next_url="/-/gallery")


def export_link(kit: Kit) -> ExportLink:
    """The header's Export link, once the conversation is stored"""
    return ExportLink(conversation_id=CONVERSATION)


def export_link_absent(kit: Kit) -> ExportLink:
    """Before the first answer: an empty placeholder the first answer fills"""
    return ExportLink(conversation_id=None)


# -- Pages of their own (without JavaScript) ------------------------------------------------------------


def rename_page(kit: Kit) -> RenameForm:
    """Renaming, on a page of its own"""
    return RenameForm(conversation_id="c1", title="How SSE resumes", csrf_token=TOKEN, in_list=False)


def confirm_delete(kit: Kit) -> ConfirmDelete:
    """Deleting, confirmed first"""
    return ConfirmDelete(conversation_id="c1", title="How SSE resumes", csrf_token=TOKEN)


# -- Fragments that carry others ------------------------------------------------------------------------


def partial(kit: Kit) -> Partial:
    """An htmx partial: content that names its own target and swap (one per change in an event)"""
    return Partial(target="#answer-g1-body", swap="beforeend", content=kit.markdown("A finished paragraph."))


def stream_assets(kit: Kit) -> StreamAssets:
    """What another app's page head needs for a streamed answer (folyam.streaming's head())"""
    return StreamAssets(static_url="/folyam/static")


def announcement(kit: Kit) -> Announcement:
    """What the page's live region says when an answer ends"""
    return Announcement("Answer finished in 5.3 s")


SHOWCASES: Final = (
    Showcase(
        "User message",
        "The person's question, and editing it.",
        (Shown(user_message, "thread"), Shown(user_message_editable, "thread"), Shown(edit_form, "thread")),
    ),
    Showcase(
        "Answer",
        "Where a streamed answer lands, and how an ended one shows again; with its thinking block, "
        "refusal label and status.",
        (
            Shown(answer_started, "thread"),
            Shown(answer_streaming_table, "thread"),
            Shown(answer_streaming_code, "thread"),
            Shown(answer_finished, "thread"),
            Shown(answer_estimated, "thread"),
            Shown(answer_stopped, "thread"),
            Shown(answer_cut_off, "thread"),
            Shown(answer_failed, "thread"),
            Shown(answer_refused, "thread"),
            Shown(answer_thinking, "thread"),
            Shown(answer_thought, "thread"),
            Shown(answer_long, "thread"),
        ),
    ),
    Showcase("Exchange", "A question and its answer.", (Shown(exchange, "thread"),)),
    Showcase(
        "Code block",
        "A fenced code block, with its language and Copy.",
        (Shown(code_block, "markdown"), Shown(code_block_live, "markdown"), Shown(code_block_unnamed, "markdown")),
    ),
    Showcase("Table", "A markdown table.", (Shown(table, "markdown"),)),
    Showcase("Formula", "Math as MathML.", (Shown(formula, "markdown"), Shown(formula_unconverted, "markdown"))),
    Showcase(
        "Notice",
        "The one notice fragment: an error, a warning or a note; never a traceback.",
        (Shown(notice_error, "status"), Shown(notice_warning, "status"), Shown(notice_note, "status")),
    ),
    Showcase(
        "Timing",
        "The last fragment of every answer.",
        (
            Shown(timing_reported, "status"),
            Shown(timing_estimated, "status"),
            Shown(timing_thinking, "status"),
            Shown(timing_no_text, "status"),
        ),
    ),
    Showcase(
        "Answer actions",
        "Under an ended answer.",
        (Shown(actions, "status"), Shown(actions_retry, "status")),
    ),
    Showcase(
        "Composer",
        "The question form at the bottom of the page.",
        (
            Shown(composer_idle, "dock", isolated=True),
            Shown(composer_streaming, "dock", isolated=True),
            Shown(composer_error, "dock", isolated=True),
            Shown(composer_plain, "dock", isolated=True),
            Shown(composer_action_stop, "dock", isolated=True),
        ),
    ),
    Showcase(
        "Conversation list",
        "The session's conversations: a sidebar, a drawer on phones.",
        (
            Shown(conversations_empty, "sidebar", isolated=True),
            Shown(conversations_several, "sidebar", isolated=True),
            Shown(conversations_with_more, "sidebar", isolated=True),
            Shown(older_conversations, "list"),
            Shown(rename_in_list, "list"),
        ),
    ),
    Showcase("Theme switch", "At the foot of the sidebar.", (Shown(theme_switch, "sidebar", isolated=True),)),
    Showcase(
        "Export link",
        "In the header.",
        (Shown(export_link, "header", isolated=True), Shown(export_link_absent, "header", isolated=True)),
    ),
    Showcase(
        "Form pages",
        "The steps that get a page of their own without JavaScript.",
        (Shown(rename_page, "page"), Shown(confirm_delete, "page")),
    ),
    Showcase(
        "Carriers",
        "Fragments that carry others, never seen themselves: their HTML.",
        (Shown(partial, "markup"), Shown(announcement, "markup"), Shown(stream_assets, "markup")),
    ),
)
