"""The header's Export link: there once the conversation is stored (the first answer starts it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from folyam.components._ids import PAGE_IDS, PageIds


@dataclass(frozen=True)
class ExportLink:
    template: ClassVar[str] = "folyam/export_link.html"
    conversation_id: str | None
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)
