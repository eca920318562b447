"""Rendering shared by every component: a component is a frozen dataclass naming its template."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

import jinja2
from jinja2.runtime import Context, new_context
from markupsafe import Markup

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class Component(Protocol):
    template: ClassVar[str]


def render_component(env: jinja2.Environment, component: Any) -> Markup:
    template = env.get_template(component.template)
    context = {name: getattr(component, name) for name in _field_names(component.__class__)}
    return Markup(template.render(context))


@functools.cache
def _field_names(component_class: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(component_class))


class _Template(jinja2.Template):
    """A template whose globals are copied into a plain dict once, at its first render. Jinja keeps them
    as a ChainMap over the environment's and copies that, key by key in Python, into every render's
    context: two thirds of a small component's render. (The environment's globals are all set before
    any render: `make_environment`.)"""

    _flat_globals: dict[str, Any] | None = None

    def new_context(
        self, vars: dict[str, Any] | None = None, shared: bool = False, locals: Mapping[str, Any] | None = None
    ) -> Context:
        if self._flat_globals is None:
            self._flat_globals = dict(self.globals)
        return new_context(self.environment, self.name, self.blocks, vars, shared, self._flat_globals, locals)


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
    env.template_class = _Template
    env.globals["component"] = lambda obj: render_component(env, obj)
    return env
