"""Take the README's screenshots from the running app in Debian's Chromium: the desktop in the light theme
and a phone in the dark one, each after a demo answer (with code and a table) has finished.

    .venv/bin/python scripts/screenshots.py        # writes docs/screenshot-desktop.png, docs/screenshot-phone-dark.png
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the app exited before it answered")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the app did not answer within 30 s")


def _ask(page: Page, question: str) -> None:
    expect(page.locator("#composer")).to_have_attribute("data-htmx-powered", "true")
    page.fill("#composer-query", question)
    page.keyboard.press("Enter")
    expect(page.locator(".answer .timing").last).to_be_visible(timeout=60_000)


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FOLYAM_"))}
        env.update(FOLYAM_DATA_DIR=data_dir, FOLYAM_DEMO_TOKENS_PER_SECOND="400")
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env)
        try:
            _wait_until_up(url, process)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                desktop = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
                page = desktop.new_page()
                page.goto(url + "/")
                _ask(page, "What is the difference between threads and processes in Python?")
                page.goto(url + "/")
                _ask(page, "How do I stream HTML over Server-Sent Events?")
                page.screenshot(path=str(DOCS / "screenshot-desktop.png"))
                phone = browser.new_context(
                    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, color_scheme="dark"
                )
                page = phone.new_page()
                page.goto(url + "/")
                _ask(page, "Show me a table of HTTP status codes")
                page.screenshot(path=str(DOCS / "screenshot-phone-dark.png"))
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=15)
    print(f"wrote {DOCS / 'screenshot-desktop.png'} and {DOCS / 'screenshot-phone-dark.png'}")


if __name__ == "__main__":
    main()
