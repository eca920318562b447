"""Deleting a conversation without JavaScript: the confirming step of its own (htmx asks with hx-confirm)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ConfirmDelete:
    template: ClassVar[str] = "folyam/confirm_delete.html"
    conversation_id: str
    title: str
    csrf_token: str
