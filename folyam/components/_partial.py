"""An htmx 4 `<hx-partial>`: content that names its own target and swap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from markupsafe import Markup

SwapStyle = Literal["innerHTML", "outerHTML", "beforeend", "afterbegin", "beforebegin", "afterend"]


@dataclass(frozen=True)
class Partial:
    """An htmx `<hx-partial>`: `content` swapped into what `target` selects, as `swap` says."""

    template: ClassVar[str] = "folyam/partial.html"
    # A CSS selector, usually "#some-id".
    target: str
    swap: SwapStyle
    content: Markup
