"""What a host page's <head> needs for a streamed answer: htmx and its SSE extension, and the answer's
styles, all served by Folyam under the host's chosen prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class StreamAssets:
    """The <head> lines a host page needs for a streamed answer."""

    template: ClassVar[str] = "folyam/stream_assets.html"
    # Where Folyam's static files are served, e.g. "/folyam/static".
    static_url: str
    # Each file's version (`v=…`) by its name, e.g. "markdown.css": linked with it, a browser keeps the
    # file until its content changes (`AnswerStreams.head()` gives them; a file without one is linked bare).
    versions: Mapping[str, str] = field(default_factory=dict)
