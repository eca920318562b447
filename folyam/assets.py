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

from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["IMMUTABLE", "REVALIDATE", "StaticAssets", "UnknownAsset", "VersionedCaching"]

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

    def versions(self) -> dict[str, str]:
        """Each file's version as its URL carries it (`v=…`), by its name relative to the directory."""
        return {path.removeprefix(self._under): file.query.decode() for path, file in self._files.items()}

    def cache_control(self, path: str, query_string: bytes, status: int) -> str | None:
        """The Cache-Control of a response with `status` to a request for `path`: immutable only for the
        file itself (200) at its current URL, while it is the file the version was taken from;
        revalidated for anything else under the prefix; None outside it (not a static file)."""
        if not path.startswith(self._under):
            return None
        return _kept_as(self._files.get(path), query_string, status)

    def cache_control_of(self, name: str, query_string: bytes, status: int) -> str:
        """`cache_control` for a request for the file `name` (relative to the directory), wherever it is
        served: for a static files router mounted under a prefix the app does not see."""
        return _kept_as(self._files.get(self._under + name.lstrip("/")), query_string, status)


def _kept_as(file: _Versioned | None, query_string: bytes, status: int) -> str:
    if status == 200 and file is not None and file.query == query_string and file.unchanged():
        return IMMUTABLE
    return REVALIDATE


class VersionedCaching:
    """ASGI middleware for a static files router over `assets`' directory (Litestar's
    `create_static_files_router(..., middleware=[DefineMiddleware(VersionedCaching, assets=…)])`): each
    answer says how long it may be kept, by the file the route matched (its `file_path` parameter) and the
    request's version, whatever prefix the router is mounted under (the app's own static router is covered
    by `folyam.security.security_headers`, which sees its whole path)."""

    def __init__(self, app: ASGIApp, assets: StaticAssets) -> None:
        self._app = app
        self._assets = assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = str(scope.get("path_params", {}).get("file_path", ""))
        query_string = scope["query_string"]
        assets = self._assets

        async def send_with_cache_control(message: Message) -> None:
            if message["type"] == "http.response.start":
                cache = assets.cache_control_of(name, query_string, message["status"]).encode()
                headers = [(key, value) for key, value in message.get("headers", ()) if key.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", cache)]}
            await send(message)

        await self._app(scope, receive, send_with_cache_control)
