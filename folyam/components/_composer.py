"""The question form, pinned to the bottom of the page. It posts with htmx; every response names its own
targets with partials. While an answer streams in the conversation its Ask button is a Stop button, so a
follow-up is never asked with an incomplete history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from folyam.components._error import ErrorNotice
from folyam.components._ids import PAGE_IDS, PageIds


@dataclass(frozen=True)
class ComposerAction:
    """The composer's button: Ask, or Stop while an answer streams (`stop_url` set)."""

    template: ClassVar[str] = "folyam/composer_action.html"
    stop_url: str | None = None
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class RequestIdField:
    """The hidden field naming the next question: fresh for every question, the same for a re-sent form."""

    template: ClassVar[str] = "folyam/request_id_field.html"
    request_id: str
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class ModelChoice:
    """The model picker's options (the upstream's models) and the conversation's choice."""

    names: tuple[str, ...]
    selected: str


@dataclass(frozen=True)
class Composer:
    """The question form."""

    template: ClassVar[str] = "folyam/composer.html"
    action_url: str
    request_id: str
    # The session's CSRF token, posted back with the form (htmx also sends it as a header).
    csrf_token: str
    max_chars: int
    query: str = ""
    error: ErrorNotice | None = None
    action: ComposerAction = field(default_factory=ComposerAction)
    # None: the picker and the instructions are not shown (a page that cannot ask).
    models: ModelChoice | None = None
    system_prompt: str = ""
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)
