"""Rendering a component (a frozen dataclass naming its template), and the Jinja environments that can:
any autoescaping one, once `add_to_environment` gave it Folyam's templates and `component(obj)`."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

import jinja2
import jinja2.defaults
from jinja2.runtime import Context, new_context
from markupsafe import Markup

# The component templates, package data beside this module; an environment finds them as "folyam/<name>".
TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
_PREFIX: Final = "folyam/"
# Folyam's templates are written for these whitespace rules (see `_ComponentLoader`).
_LINE_START_BEFORE_TAG: Final = re.compile(r"^[ \t]+(?=\{[%#](?!\+))", re.MULTILINE)
_NEWLINE_AFTER_TAG: Final = re.compile(r"(?<!\+)([%#]\})\n")
_DELIMITERS: Final = (
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
)


class IncompatibleEnvironment(ValueError):
    """Raised when a Jinja environment cannot render Folyam's templates as written (autoescape off for
    them, or other tag delimiters)."""


def render_component(env: jinja2.Environment, component: Any) -> Markup:
    """The component's HTML: its template rendered with its fields (`env` needs `add_to_environment`)."""
    template = env.get_template(component.template)
    if env.autoescape is not True:
        _check_autoescape(env, template.name or component.template)
    context = {name: getattr(component, name) for name in _field_names(component.__class__)}
    return Markup(template.render(context))


@functools.cache
def _field_names(component_class: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(component_class))


def add_to_environment(env: jinja2.Environment) -> jinja2.Environment:
    """Lets an existing environment render Folyam's components: their templates (after its own loader,
    which may override any of them) and the `component(obj)` global. Returns `env`."""
    for name in _DELIMITERS:
        if getattr(env, name) != getattr(jinja2.defaults, name.upper()):
            raise IncompatibleEnvironment(
                f"Folyam's templates use Jinja's default delimiters: this environment's {name} is "
                f"{getattr(env, name)!r}, not {getattr(jinja2.defaults, name.upper())!r}"
            )
    _check_autoescape(env, f"{_PREFIX}answer.html")
    current = env.globals.get("component")
    if current is not None and not isinstance(current, _ComponentRenderer):
        raise IncompatibleEnvironment(
            f"this environment already has a global named 'component' ({current!r}); Folyam's templates call "
            "their own `component(obj)`"
        )
    if not _finds_components(env.loader):
        ours = _ComponentLoader()
        env.loader = ours if env.loader is None else jinja2.ChoiceLoader([env.loader, ours])
    env.globals["component"] = _ComponentRenderer(env)
    return env


def make_environment(*template_dirs: str | Path) -> jinja2.Environment:
    """A new environment for pages and streams alike: the given folders' templates, then Folyam's."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dirs) if template_dirs else None,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.template_class = _Template
    return add_to_environment(env)


def _check_autoescape(env: jinja2.Environment, template_name: str) -> None:
    autoescape: bool | Callable[[str | None], bool] = env.autoescape
    if not (autoescape(template_name) if callable(autoescape) else autoescape):
        # Else a question, a title or a notice would go out as raw HTML, and marked safe.
        raise IncompatibleEnvironment(
            f"Folyam's templates need autoescape on: this environment's autoescape is {autoescape!r}, which "
            f"does not escape {template_name!r} (use autoescape=True, or select_autoescape(['html']))"
        )


def _finds_components(loader: jinja2.BaseLoader | None) -> bool:
    if isinstance(loader, _ComponentLoader):
        return True
    return isinstance(loader, jinja2.ChoiceLoader) and any(map(_finds_components, loader.loaders))


class _ComponentRenderer:
    """The `component(obj)` global: renders a component where a template calls it."""

    def __init__(self, env: jinja2.Environment) -> None:
        self._env = env

    def __call__(self, component: Any) -> Markup:
        return render_component(self._env, component)


class _ComponentLoader(jinja2.BaseLoader):
    """Folyam's component templates as "folyam/<name>". They are written for `trim_blocks` and
    `lstrip_blocks`; an environment without them gets the source with those rules already applied, so
    a component renders the same bytes in any environment (whitespace matters inside a paragraph)."""

    def __init__(self) -> None:
        self._files = jinja2.FileSystemLoader(TEMPLATES_DIR)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Any]:
        if not template.startswith(_PREFIX):
            raise jinja2.TemplateNotFound(template)
        source, filename, uptodate = self._files.get_source(environment, template.removeprefix(_PREFIX))
        if not environment.lstrip_blocks:
            source = _LINE_START_BEFORE_TAG.sub("", source)
        if not environment.trim_blocks:
            source = _NEWLINE_AFTER_TAG.sub(r"\1", source)
        if environment.keep_trailing_newline:
            source = source.removesuffix("\n")
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return [_PREFIX + name for name in self._files.list_templates()]


class _Template(jinja2.Template):
    """A template whose globals are copied into a plain dict once, at its first render. Jinja keeps them
    as a ChainMap over the environment's and copies that, key by key in Python, into every render's
    context: two thirds of a small component's render. (`make_environment` sets every global before
    any render.)"""

    _flat_globals: dict[str, Any] | None = None

    def new_context(
        self, vars: dict[str, Any] | None = None, shared: bool = False, locals: Mapping[str, Any] | None = None
    ) -> Context:
        if self._flat_globals is None:
            self._flat_globals = dict(self.globals)
        return new_context(self.environment, self.name, self.blocks, vars, shared, self._flat_globals, locals)
