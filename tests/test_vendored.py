"""The vendored htmx files are what static/vendor/VERSIONS.md says, and the page loads those."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"


def test_vendored_files_match_their_recorded_sha256() -> None:
    table = (VENDOR / "VERSIONS.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `[^`]+` \| ([\d.]+) \| `([0-9a-f]{64})` \|$", table, re.M)
    assert {name for name, _, _ in rows} == {p.name for p in VENDOR.glob("*.js")}
    for name, version, digest in rows:
        content = (VENDOR / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest, name
        assert version in name


def test_htmx_reports_the_recorded_version() -> None:
    assert "this.version='4.0.1'" in (VENDOR / "htmx-4.0.1.min.js").read_text().replace('"', "'")


def test_base_template_loads_the_vendored_files() -> None:
    base = (ROOT / "templates" / "base.html").read_text()
    scripts = re.findall(r'<script src="\{\{ static_url\("([^"]+)"\) \}\}"', base)
    assert scripts == ["vendor/htmx-4.0.1.min.js", "vendor/hx-sse-4.0.1.min.js", "folyam.js"]
