"""The session's conversations, newest first, with rename and delete on each (a sidebar on wide
screens, a drawer on phones). Without JavaScript every action is a link to a page of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

CONVERSATION_LIST_ID = "conversation-list"


@dataclass(frozen=True)
class ConversationEntry:
    template: ClassVar[str] = "components/conversation_entry.html"
    conversation_id: str
    title: str
    current: bool = False


@dataclass(frozen=True)
class ConversationList:
    template: ClassVar[str] = "components/conversation_list.html"
    entries: tuple[ConversationEntry, ...]


@dataclass(frozen=True)
class RenameForm:
    """Renaming a conversation: in place of its entry (htmx), or on a page of its own."""

    template: ClassVar[str] = "components/rename_form.html"
    conversation_id: str
    title: str
    csrf_token: str
    # In the list, in place of the entry (htmx); else on a page of its own.
    in_list: bool = True
