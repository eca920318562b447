"""The apps under examples/ as another developer runs them: a copy of the folder, started with its one
command (`python <name>.py`) by a given python, typically a fresh virtual environment holding Folyam
only from its wheel, so a file missing from the wheel fails the tests that use it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
# Each example's module, and the question its page answers.
EXAMPLES = {"litestar_app": "Litestar", "fastapi_app": "FastAPI"}


@contextlib.contextmanager
def run_example(python: Path, name: str, workdir: Path) -> Iterator[str]:
    """`python <name>.py` in a copy of examples/ (not the checkout: only what is installed is importable),
    on a free loopback port; yields its base URL once it answers."""
    folder = workdir / "examples"
    if not folder.exists():
        shutil.copytree(ROOT / "examples", folder, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PORT": str(port)}
    with subprocess.Popen(
        [str(python), f"{name}.py"], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as server:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url + "/", server)
            yield url
        finally:
            server.terminate()
            server.wait(10)
