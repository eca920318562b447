"""The static files' URLs, each with a version taken from the file's content (`/static/folyam.css?v=…`):
a browser keeps a file under such a URL for a year without asking again, and a deploy that changes the
file changes its URL. Any other request for a static file (no version, or an old one) must be
revalidated, so a stale copy is never kept under a URL that does not name its content."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

__all__ = ["IMMUTABLE", "REVALIDATE", "StaticAssets", "UnknownAsset"]

IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
_VERSION_CHARS: Final = 12


class UnknownAsset(LookupError):
    """A template named a static file that does not exist (a typo would otherwise be a silent 404)."""


class StaticAssets:
    """The files under `directory`, served at `prefix`, with their versions (read once, at start-up: a
    file edited since is linked anew after a restart, as an edited template is rendered)."""

    def __init__(self, directory: Path, prefix: str = "/static") -> None:
        self._prefix = prefix.rstrip("/")
        self._under = self._prefix + "/"
        self._versions = {
            path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:_VERSION_CHARS]
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }
        # The exact query string each file's current URL carries, by request path.
        self._current = {f"{self._prefix}/{name}": f"v={version}".encode() for name, version in self._versions.items()}

    def url(self, name: str) -> str:
        """The URL of the file `name` (relative to the directory), with its version: a template's `static_url`."""
        version = self._versions.get(name)
        if version is None:
            raise UnknownAsset(f"no static file {name!r}")
        return f"{self._prefix}/{name}?v={version}"

    def cache_control(self, path: str, query_string: bytes) -> str | None:
        """The Cache-Control of a response to a request for `path`: immutable only at a file's current
        URL, revalidated elsewhere under the prefix; None outside it (not a static file)."""
        if not path.startswith(self._under):
            return None
        return IMMUTABLE if self._current.get(path) == query_string else REVALIDATE
