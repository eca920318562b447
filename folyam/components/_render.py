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
from markupsafe import Markup, escape

from folyam.components._partial import Partial, SwapStyle

# The component templates, package data beside this module; an environment finds them as "folyam/<name>".
TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
_PREFIX: Final = "folyam/"
# Folyam's templates are written for these whitespace rules (see `_ComponentLoader`).
_LINE_START_BEFORE_TAG: Final = re.compile(r"^[ \t]+(?=\{[%#](?!\+))", re.MULTILINE)
_NEWLINE_AFTER_TAG: Final = re.compile(r"(?<!\+)([%#]\})\n")
# Stand-ins rendered in a partial's place, where its HTML is split (escaping leaves them as they are; a
# target never has a NUL).
_TARGET: Final = "\x00target\x00"
_CONTENT: Final = Markup("\x00content\x00")
_OWN_PARTIAL: Final = str(TEMPLATES_DIR / "partial.html")
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
    if (renderer := _renderer_of(env)) is not None:
        return renderer(component)
    return _render(env, env.get_template(component.template), component)


def partial_parts(env: jinja2.Environment, target: str, swap: SwapStyle) -> tuple[str, str]:
    """The HTML of a `Partial` before and after its content, for one to be built by joining strings
    (`env` needs `add_to_environment`; a host's own partial template must render its content once, as
    it is)."""
    if (renderer := _renderer_of(env)) is not None:
        return renderer.partial_parts(target, swap)
    return _partial_parts_rendered(env, env.get_template(Partial.template), target, swap)


def _renderer_of(env: jinja2.Environment) -> _ComponentRenderer | None:
    """The environment's own `component` global (an overlay shares its parent's: not its own)."""
    renderer = env.globals.get("component")
    return renderer if isinstance(renderer, _ComponentRenderer) and renderer.env is env else None


def _partial_parts_rendered(
    env: jinja2.Environment, template: jinja2.Template, target: str, swap: SwapStyle
) -> tuple[str, str]:
    if "\x00" in target and target != _TARGET:
        raise ValueError("a partial's target is a CSS selector: no NUL")  # (the content's stand-in has them)
    html = _render(env, template, Partial(target, swap, _CONTENT))
    if html.count(_CONTENT) != 1:
        raise IncompatibleEnvironment(f"{template.name} does not render its content once, as it is")
    before, _, after = html.partition(_CONTENT)
    return str(before), str(after)


def _render(env: jinja2.Environment, template: jinja2.Template, component: Any) -> Markup:
    if env.autoescape is not True:
        _check_autoescape(env, template.name or component.template)
    fields = {name: getattr(component, name) for name in _field_names(component.__class__)}
    if isinstance(template, _Template) and not template.environment.is_async:
        return Markup(template.render_fields(fields))
    return Markup(template.render(fields))


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
        self.env = env
        # Each component's template, once loaded: Jinja's own cache is an LRU whose lookup (a lock, a
        # deque moved) cost more than a small component's render. Not used while the environment
        # reloads changed templates.
        self._templates: dict[str, jinja2.Template] = {}
        # Per swap style, Folyam's partial template's HTML before its target, between it and the
        # content, and after the content.
        self._partial_shapes: dict[SwapStyle, tuple[str, str, str]] = {}

    def __call__(self, component: Any) -> Markup:
        if type(component) is Partial and (shape := self._partial_shape(component.swap)) is not None:
            # A dozen per answer, around content already rendered: strings joined, not a template run.
            head, between, after = shape
            return Markup("".join((head, escape(component.target), between, escape(component.content), after)))
        return _render(self.env, self._template(component.template), component)

    def partial_parts(self, target: str, swap: SwapStyle) -> tuple[str, str]:
        shape = self._partial_shape(swap)
        if shape is None:
            return _partial_parts_rendered(self.env, self._template(Partial.template), target, swap)
        head, between, after = shape
        return "".join((head, escape(target), between)), after

    def _template(self, name: str) -> jinja2.Template:
        if self.env.auto_reload:
            return self.env.get_template(name)
        template = self._templates.get(name)
        if template is None:
            template = self._templates[name] = self.env.get_template(name)
        return template

    def _partial_shape(self, swap: SwapStyle) -> tuple[str, str, str] | None:
        """Where a partial can be joined from strings: Folyam's own template (a host's may do anything
        with its target and content), an environment that neither reloads it nor finalizes values."""
        if self.env.auto_reload or self.env.finalize is not None:
            return None
        shape = self._partial_shapes.get(swap)
        if shape is None:
            template = self._template(Partial.template)
            if template.filename != _OWN_PARTIAL:
                return None
            before, after = _partial_parts_rendered(self.env, template, _TARGET, swap)
            head, _, between = before.partition(_TARGET)  # (the template renders its target once, escaped)
            shape = self._partial_shapes[swap] = (head, between, after)
        return shape


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
        return new_context(self.environment, self.name, self.blocks, vars, shared, self._globals(), locals)

    def render_fields(self, fields: dict[str, Any]) -> str:
        """`render(fields)` without its copies of the variables on the way to the context (a component's
        render is mostly this overhead)."""
        globals_ = self._globals()
        env = self.environment
        context = env.context_class(env, {**globals_, **fields}, self.name, self.blocks, globals=globals_)
        try:
            return env.concat(self.root_render_func(context))
        except Exception:
            env.handle_exception()

    def _globals(self) -> dict[str, Any]:
        if self._flat_globals is None:
            self._flat_globals = dict(self.globals)
        return self._flat_globals
