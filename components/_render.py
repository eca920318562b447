"""Rendering shared by every component: a component is a frozen dataclass naming its template."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

import jinja2
from markupsafe import Markup

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class Component(Protocol):
    template: ClassVar[str]


def render_component(env: jinja2.Environment, component: Any) -> Markup:
    template = env.get_template(component.template)
    context = {f.name: getattr(component, f.name) for f in fields(component)}
    return Markup(template.render(context))


def make_environment(*extra_template_dirs: str | Path) -> jinja2.Environment:
    """A Jinja environment that finds the component templates (after the caller's own folders) and
    offers `component(obj)` to pages, so a page and a stream render the same templates."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*extra_template_dirs, TEMPLATES_DIR]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals["component"] = lambda obj: render_component(env, obj)
    return env
