"""The component gallery, GET /-/gallery: every component in every state, rendered by the app's own Jinja
environment and markdown pipeline, each beside the Python that makes it (the states are in
`folyam/gallery_specimens.py`). For designers changing the CSS, and for a snapshot of the whole. It reads
no session and touches neither the store nor the provider; `?theme=light|dark` shows it in a theme."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

import jinja2
from litestar import Request, get
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Template
from markupsafe import Markup

from folyam.components._theme import THEMES, Theme
from folyam.gallery_specimens import SHOWCASES, Build, Frame, Kit
from folyam.markdown import MarkdownPipeline
from folyam.pages import theme_of

__all__ = ["GALLERY_PATH", "GALLERY_ROUTES", "GalleryPage", "Section", "Specimen", "gallery_page"]

GALLERY_PATH = "/-/gallery"

AnyRequest = Request[Any, Any, State]


@dataclass(frozen=True)
class Specimen:
    """One component in one state."""

    # The element id of its heading (for links to it).
    slug: str
    # The state, as its function's docstring names it.
    state: str
    # The Python that builds it, highlighted as an answer's code is.
    python: Markup
    html: Markup
    frame: Frame
    # In a shadow root of its own (see gallery_specimens.Shown).
    isolated: bool

    @property
    def source(self) -> str:
        """Its HTML as text, for the page to show (a str, so the template escapes it)."""
        return str(self.html)


@dataclass(frozen=True)
class Section:
    title: str
    slug: str
    about: str
    specimens: tuple[Specimen, ...]


@dataclass(frozen=True)
class GalleryPage:
    """The context of pages/gallery.html."""

    theme: Theme
    path: str
    sections: tuple[Section, ...]


def gallery_page(env: jinja2.Environment, pipeline: MarkdownPipeline, theme: Theme) -> GalleryPage:
    kit = Kit(env, pipeline)
    sections = tuple(
        Section(
            title=showcase.title,
            slug="gallery-" + _slug(showcase.title),
            about=showcase.about,
            specimens=tuple(
                Specimen(
                    slug="specimen-" + _slug(shown.build.__name__),
                    state=inspect.getdoc(shown.build) or shown.build.__name__,
                    python=pipeline.render(f"```python\n{_source(shown.build)}```\n"),
                    html=_html(kit, shown.build),
                    frame=shown.frame,
                    isolated=shown.isolated,
                )
                for shown in showcase.specimens
            ),
        )
        for showcase in SHOWCASES
    )
    return GalleryPage(theme=theme, path=GALLERY_PATH, sections=sections)


def _html(kit: Kit, build: Build) -> Markup:
    made = build(kit)
    # Most specimens are components; a block that only the markdown pipeline makes is its HTML already.
    return made if isinstance(made, Markup) else kit.render(made)


def _source(build: Build) -> str:
    """The function's source without its docstring (the heading shows it)."""
    source = textwrap.dedent(inspect.getsource(build))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    lines = source.splitlines(keepends=True)
    docstring = function.body[0]
    if isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant):
        del lines[docstring.lineno - 1 : docstring.end_lineno]
    return "".join(lines)


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


@get(GALLERY_PATH, name="gallery")
async def gallery(request: AnyRequest, state: State, theme: FromQuery[str | None] = None) -> Template:
    """`theme` (light, dark or system) overrides the one the theme switch chose."""
    chosen = next((known for known in THEMES if known == theme), None) or theme_of(request)
    page = gallery_page(state.jinja, state.markdown, chosen)
    return Template("pages/gallery.html", context={"theme": page.theme, "gallery": page})


GALLERY_ROUTES = [gallery]
