"""The colour theme: the system's (prefers-color-scheme), or light or dark as the person chose, kept in
a cookie and rendered by the server so the page never flashes the wrong one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal

Theme = Literal["system", "light", "dark"]
THEMES: Final[tuple[Theme, ...]] = ("system", "light", "dark")
THEME_COOKIE: Final = "folyam_theme"
THEME_SWITCH_ID: Final = "theme-switch"


@dataclass(frozen=True)
class ThemeSwitch:
    template: ClassVar[str] = "components/theme_switch.html"
    theme: Theme
    csrf_token: str
    # Where the page goes back to after the switch (a path of ours).
    next_url: str
