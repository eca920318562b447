"""What a host page's <head> needs for a streamed answer: htmx and its SSE extension, and the answer's
styles, all served by Folyam under the host's chosen prefix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class StreamAssets:
    """The <head> lines a host page needs for a streamed answer."""

    template: ClassVar[str] = "folyam/stream_assets.html"
    # Where Folyam's static files are served, e.g. "/folyam/static".
    static_url: str
