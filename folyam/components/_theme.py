"""The colour theme: the system's (prefers-color-scheme), or light or dark as the person chose, kept in
a cookie and rendered by the server so the page never flashes the wrong one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from folyam.components._ids import PAGE_IDS, PageIds

Theme = Literal["system", "light", "dark"]
THEMES: Final[tuple[Theme, ...]] = ("system", "light", "dark")
THEME_COOKIE: Final = "folyam_theme"


@dataclass(frozen=True)
class ThemeSwitch:
    template: ClassVar[str] = "folyam/theme_switch.html"
    theme: Theme
    csrf_token: str
    # Where the page goes back to after the switch (a path of ours).
    next_url: str
    ids: PageIds = field(default=PAGE_IDS, init=False, repr=False, compare=False)
