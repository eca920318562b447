"""The question form, pinned to the bottom of the page. It posts with htmx; every response names its own
targets with partials. While an answer streams in the conversation its Ask button is a Stop button, so a
follow-up is never asked with an incomplete history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component
from components.error import ErrorNotice

COMPOSER_ID = "composer"
COMPOSER_ERROR_ID = "composer-error"
COMPOSER_ACTION_ID = "composer-action"
COMPOSER_REQUEST_ID = "composer-request-id"


@dataclass(frozen=True)
class ComposerAction:
    """The composer's button: Ask, or Stop while an answer streams (`stop_url` set)."""

    template: ClassVar[str] = "components/composer_action.html"
    stop_url: str | None = None


@dataclass(frozen=True)
class RequestIdField:
    """The hidden field naming the next question: fresh for every question, the same for a re-sent form."""

    template: ClassVar[str] = "components/request_id_field.html"
    request_id: str


@dataclass(frozen=True)
class ModelChoice:
    """The model picker's options (the upstream's models) and the conversation's choice."""

    names: tuple[str, ...]
    selected: str


@dataclass(frozen=True)
class Composer:
    template: ClassVar[str] = "components/composer.html"
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


def render(env: jinja2.Environment, composer: Composer) -> Markup:
    return render_component(env, composer)
