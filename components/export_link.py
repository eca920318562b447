"""The header's Export link: there once the conversation is stored (the first answer starts it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

EXPORT_LINK_ID = "export-link"


@dataclass(frozen=True)
class ExportLink:
    template: ClassVar[str] = "components/export_link.html"
    conversation_id: str | None
