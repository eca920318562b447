"""Secrets kept out of what people and logs see: the API key, `Authorization` values, key-like tokens
and the credentials in a URL. Upstream error text is untrusted (a server may echo our headers), so it is
redacted and trimmed before anyone sees it. Every pattern here is linear in the text."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["REDACTED", "RedactingFilter", "Redactor"]

REDACTED: Final = "[redacted]"
# Literal prefixes first, so a failed attempt costs O(1) at each position.
_PATTERNS: Final = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;}]+"),
    re.compile(r"(?i)((?:authorization|api[_-]?key|x-api-key|access[_-]?token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&]+"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")
_SPACE: Final = re.compile(r"\s+")


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _without_userinfo(text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def for_people(self, text: str, limit: int = 200) -> str:
        """Redacted, on one line, without control characters, at most `limit` characters."""
        text = _SPACE.sub(" ", _CONTROL.sub("", self(text))).strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _without_userinfo(text: str) -> str:
    """`scheme://user:password@host` → `scheme://[redacted]@host` (a search, not a backtracking regex)."""
    parts, start = [], 0
    while (scheme_end := text.find("://", start)) >= 0:
        authority_start = scheme_end + 3
        end = authority_start
        while end < len(text) and text[end] not in "/?#" and not text[end].isspace():
            end += 1
        at = text.rfind("@", authority_start, end)
        if at >= 0:
            parts.append(text[start:authority_start] + REDACTED)
            start = at
        else:
            parts.append(text[start:end])
            start = end
    parts.append(text[start:])
    return "".join(parts)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message and traceback before any handler sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self._redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self._redactor(record.stack_info)
        return True
