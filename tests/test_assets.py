"""Static files at versioned URLs: kept for a year at the URL naming their content, revalidated elsewhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from folyam.assets import IMMUTABLE, REVALIDATE, StaticAssets, UnknownAsset


def version_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:12]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "site.css").write_bytes(b"body { color: red }")
    (tmp_path / "vendor" / "lib-1.0.js").write_bytes(b"let x = 1")
    return tmp_path


def test_a_url_names_the_files_content(folder: Path) -> None:
    assets = StaticAssets(folder)
    assert assets.url("site.css") == f"/static/site.css?v={version_of(b'body { color: red }')}"
    assert assets.url("vendor/lib-1.0.js") == f"/static/vendor/lib-1.0.js?v={version_of(b'let x = 1')}"
    # A changed file gets a new URL (from the next start), so no browser keeps the old content under it.
    (folder / "site.css").write_bytes(b"body { color: blue }")
    assert StaticAssets(folder).url("site.css") != assets.url("site.css")


def test_a_missing_file_is_an_error_not_a_broken_link(folder: Path) -> None:
    with pytest.raises(UnknownAsset, match=r"nope\.css"):
        StaticAssets(folder).url("nope.css")


def test_only_the_file_at_its_current_url_is_immutable(folder: Path) -> None:
    assets = StaticAssets(folder, prefix="/assets/")
    path, _, query = assets.url("vendor/lib-1.0.js").partition("?")
    current = query.encode()
    assert path == "/assets/vendor/lib-1.0.js"
    assert assets.cache_control(path, current, 200) == IMMUTABLE
    assert assets.cache_control(path, b"", 200) == REVALIDATE  # a link without the version
    assert assets.cache_control(path, b"v=000000000000", 200) == REVALIDATE  # an older page's link
    assert assets.cache_control(path, current + b"&x=1", 200) == REVALIDATE
    assert assets.cache_control("/assets/site.css", current, 200) == REVALIDATE  # another file's version
    assert assets.cache_control("/assets/missing.js", b"", 404) == REVALIDATE
    # Not the file: an error at its URL (a wrong method, a failed read) is never kept for a year.
    for status in (304, 404, 405, 500, 503):
        assert assets.cache_control(path, current, status) == REVALIDATE
    assert assets.cache_control("/chat/x", b"", 200) is None  # not a static file
    assert assets.cache_control("/assets", b"", 200) is None


def test_a_file_changed_since_start_up_is_not_kept_under_its_old_version(folder: Path) -> None:
    assets = StaticAssets(folder)
    path, _, query = assets.url("site.css").partition("?")
    assert assets.cache_control(path, query.encode(), 200) == IMMUTABLE
    # A deploy that changes the files before the process restarts: the old URL now serves other bytes.
    (folder / "site.css").write_bytes(b"body { color: green; margin: 0 }")
    assert assets.cache_control(path, query.encode(), 200) == REVALIDATE
    (folder / "site.css").unlink()
    assert assets.cache_control(path, query.encode(), 200) == REVALIDATE


def test_every_files_version_by_name_as_its_url_carries_it(folder: Path) -> None:
    assets = StaticAssets(folder, prefix="/folyam/static")
    assert assets.versions() == {
        "site.css": f"v={version_of(b'body { color: red }')}",
        "vendor/lib-1.0.js": f"v={version_of(b'let x = 1')}",
    }
    for name, query in assets.versions().items():
        assert assets.url(name) == f"/folyam/static/{name}?{query}"


def test_a_file_by_name_is_kept_as_at_its_path(folder: Path) -> None:
    # A static files router mounted under a prefix the app does not see asks by the matched file's name
    # (Litestar's `file_path` parameter, with its leading slash).
    assets = StaticAssets(folder, prefix="/folyam/static")
    current = assets.versions()["vendor/lib-1.0.js"].encode()
    for name in ("vendor/lib-1.0.js", "/vendor/lib-1.0.js"):
        assert assets.cache_control_of(name, current, 200) == IMMUTABLE
        assert assets.cache_control_of(name, b"", 200) == REVALIDATE
        assert assets.cache_control_of(name, current, 404) == REVALIDATE
    assert assets.cache_control_of("site.css", current, 200) == REVALIDATE  # another file's version
    assert assets.cache_control_of("missing.js", b"", 404) == REVALIDATE
