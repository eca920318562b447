"""Folyam as a library: the wheel carries the components with their templates and py.typed, and in a
fresh virtual environment another app, with a `components` package and templates of its own, renders
Folyam's components from its own Jinja environment."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from markupsafe import Markup

import folyam.components
from folyam.components import Answer, Exchange, Thinking, UserMessage, make_environment, render_component
from folyam.markdown import MarkdownPipeline
from tests.support.wheel import ROOT

pytestmark = pytest.mark.timeout(600)

EXCHANGE = Exchange(
    message=UserMessage(text="Is <b>this</b> escaped?"),
    answer=Answer(
        generation_id="G1",
        events_url=None,
        body=Markup("<p>Yes.</p>"),
        status=Markup("<p>timing</p>"),
        thinking=Thinking("G1", body=Markup("<p>Hmm.</p>"), seconds=1.5, open=False),
    ),
)
CODE = "Some code:\n\n```python\nprint('<hi>')\n```\n"

# Another app: a `components` package and a templates/components/ folder of its own, a Jinja environment
# with Jinja's default whitespace settings, and one page that includes its own answer.html and Folyam's.
HOST_FILES = {
    "components/__init__.py": 'NAME = "the host\'s own components"\n',
    "templates/components/answer.html": "the host's answer.html",
    "templates/page.html": '{% include "components/answer.html" %}|{{ component(exchange) }}',
    "host.py": """\
import json, sys
from pathlib import Path

import jinja2
from markupsafe import Markup

import components
import folyam.components
from folyam.components import Answer, Exchange, Thinking, UserMessage, add_to_environment
from folyam.markdown import MarkdownPipeline

env = jinja2.Environment(loader=jinja2.FileSystemLoader("templates"), autoescape=jinja2.select_autoescape())
add_to_environment(env)
exchange = Exchange(
    message=UserMessage(text="Is <b>this</b> escaped?"),
    answer=Answer(
        generation_id="G1",
        events_url=None,
        body=Markup("<p>Yes.</p>"),
        status=Markup("<p>timing</p>"),
        thinking=Thinking("G1", body=Markup("<p>Hmm.</p>"), seconds=1.5, open=False),
    ),
)
print(json.dumps({
    "host_components": components.NAME,
    "folyam_from": folyam.components.__file__,
    "prefix": sys.prefix,
    "page": env.get_template("page.html").render(exchange=exchange),
    "code": MarkdownPipeline(env).render(sys.argv[1]),
}))
""",
}


def test_the_wheel_holds_every_component_template_and_py_typed(folyam_wheel: Path) -> None:
    names = set(zipfile.ZipFile(folyam_wheel).namelist())
    templates = {f"folyam/components/templates/{p.name}" for p in (ROOT / "folyam/components/templates").glob("*.html")}
    assert templates and templates <= names
    assert "folyam/py.typed" in names
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "folyam").rglob("*.py")}
    assert modules <= names  # every subpackage (folyam.store, its migrations) too
    # Only the `folyam` package: nothing another app's own top-level names could collide with.
    assert all(name.startswith("folyam/") or name.split("/")[0].endswith(".dist-info") for name in names)


def test_another_app_renders_the_components_from_the_installed_wheel(wheel_python: Path, tmp_path: Path) -> None:
    for name, text in HOST_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    run = subprocess.run(
        [str(wheel_python), "host.py", CODE], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert Path(result["folyam_from"]).is_relative_to(result["prefix"])  # the wheel's, not this checkout's
    assert result["host_components"] == "the host's own components"
    # The host's template and Folyam's, side by side, Folyam's byte for byte as its own environment has it.
    env = make_environment()
    assert result["page"] == "the host's answer.html|" + str(render_component(env, EXCHANGE))
    assert "Is &lt;b&gt;this&lt;/b&gt; escaped?" in result["page"]
    assert result["code"] == MarkdownPipeline(env).render(CODE)


def test_the_public_api_is_listed_and_documented() -> None:
    for name in folyam.components.__all__:
        value = getattr(folyam.components, name)
        if isinstance(value, type) or inspect.isfunction(value):
            doc = value.__doc__ or ""
            # (A dataclass without a docstring gets its signature as one.)
            assert doc.strip() and not doc.startswith(f"{name}("), name
    private = [p.stem for p in (ROOT / "folyam/components").glob("*.py") if not p.stem.startswith("_")]
    assert private == [], "every module but the package's __init__ is private"


def test_the_readme_shows_the_public_api_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Reusing the fragments")
    section = readme[start : readme.index("\n#", start + 1)]
    snippet = section.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(snippet, namespace)
    assert 'id="answer-g1-body"' in str(namespace["html"])
    listed = set(re.findall(r"`(\w+)`", section.split("Its API")[1]))
    assert listed == set(folyam.components.__all__)
