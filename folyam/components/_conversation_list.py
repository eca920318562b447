"""The session's conversations, newest first, with rename and delete on each (a sidebar on wide
screens, a drawer on phones). Without JavaScript every action is a link to a page of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from folyam.components._ids import PAGE_IDS, PageIds


@dataclass(frozen=True)
class ConversationEntry:
    template: ClassVar[str] = "folyam/conversation_entry.html"
    conversation_id: str
    title: str
    current: bool = False
    autofocus: bool = False
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class ConversationList:
    """A page of the list; `more` is the URL of the next (older) page, if there is one. The sidebar's
    list has the page's id; another (the older conversations' own page, without JavaScript) has none."""

    template: ClassVar[str] = "folyam/conversation_list.html"
    entries: tuple[ConversationEntry, ...]
    more: str | None = None
    in_sidebar: bool = True
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class ConversationItems:
    """A page of the list's items, then a link to the next: what "Older conversations" swaps in for itself.
    The first item takes the focus (htmx focuses `autofocus` in what it swaps in), where the link had it."""

    template: ClassVar[str] = "folyam/conversation_items.html"
    entries: tuple[ConversationEntry, ...]
    more: str | None = None
    focus_first: bool = True
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class RenameForm:
    """Renaming a conversation: in place of its entry (htmx), or on a page of its own."""

    template: ClassVar[str] = "folyam/rename_form.html"
    conversation_id: str
    title: str
    csrf_token: str
    # In the list, in place of the entry (htmx); else on a page of its own.
    in_list: bool = True
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)
