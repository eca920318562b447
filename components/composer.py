"""The question form. It posts with htmx; every response names its own targets with partials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2
from markupsafe import Markup

from components._render import render_component
from components.error import ErrorNotice

COMPOSER_ID = "composer"
COMPOSER_ERROR_ID = "composer-error"


@dataclass(frozen=True)
class Composer:
    template: ClassVar[str] = "components/composer.html"
    action_url: str
    # Fresh for every question; a re-sent form carries the same one.
    request_id: str
    # The session's CSRF token, posted back with the form (htmx also sends it as a header).
    csrf_token: str
    max_chars: int
    query: str = ""
    error: ErrorNotice | None = None


def render(env: jinja2.Environment, composer: Composer) -> Markup:
    return render_component(env, composer)
