"""`python app.py` as a deployment runs it: a process of its own, configured by the environment only,
started on a free port and always stopped (killed if it is still there)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Folyam's and the openai SDK's variables, a data directory of its own,
    and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FOLYAM_"))}
    return {**env, "FOLYAM_DATA_DIR": tempfile.mkdtemp(prefix="folyam-app-"), **extra}


@contextmanager
def app_process(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Yields the process and its base URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url + "/", process, timeout=20)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
