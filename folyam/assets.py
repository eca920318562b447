"""The static files' URLs, each with a version taken from the file's content (`/static/folyam.css?v=…`):
a browser keeps a file under such a URL for a year without asking again, and a deploy that changes the
file changes its URL. Any other answer for a static file (no version or an old one, an error, a file
changed since the version was taken) must be revalidated, so nothing is kept under a URL that does not
name its content."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["IMMUTABLE", "REVALIDATE", "StaticAssets", "UnknownAsset"]

IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
_VERSION_CHARS: Final = 12


class UnknownAsset(LookupError):
    """A template named a static file that does not exist (a typo would otherwise be a silent 404)."""


@dataclass(frozen=True, slots=True)
class _Versioned:
    path: Path
    url: str  # its current URL: "<prefix>/<name>?v=<version>"
    query: bytes  # what that URL carries: b"v=<version>"
    stamp: tuple[int, int]  # modification time (ns) and size when the version was taken

    def unchanged(self) -> bool:
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_mtime_ns, stat.st_size) == self.stamp


class StaticAssets:
    """The files under `directory`, served at `prefix`, with their versions (taken once, at start-up: a
    file edited since is linked anew after a restart, as an edited template is rendered, and until then
    is served for revalidation only)."""

    def __init__(self, directory: Path, prefix: str = "/static") -> None:
        self._under = prefix.rstrip("/") + "/"
        self._files: dict[str, _Versioned] = {}  # by request path
        for path in sorted(directory.rglob("*")):
            if not path.is_file():
                continue
            stat = path.stat()
            query = f"v={hashlib.sha256(path.read_bytes()).hexdigest()[:_VERSION_CHARS]}"
            request_path = self._under + path.relative_to(directory).as_posix()
            self._files[request_path] = _Versioned(
                path, f"{request_path}?{query}", query.encode(), (stat.st_mtime_ns, stat.st_size)
            )

    def url(self, name: str) -> str:
        """The URL of the file `name` (relative to the directory), with its version: a template's `static_url`."""
        file = self._files.get(self._under + name)
        if file is None:
            raise UnknownAsset(f"no static file {name!r}")
        return file.url

    def cache_control(self, path: str, query_string: bytes, status: int) -> str | None:
        """The Cache-Control of a response with `status` to a request for `path`: immutable only for the
        file itself (200) at its current URL, while it is the file the version was taken from;
        revalidated for anything else under the prefix; None outside it (not a static file)."""
        if not path.startswith(self._under):
            return None
        file = self._files.get(path)
        if status == 200 and file is not None and file.query == query_string and file.unchanged():
            return IMMUTABLE
        return REVALIDATE
