"""Folyam as another app gets it: the wheel built from this checkout, installed into a fresh virtual
environment. The wheel is built from a copy of what a wheel may contain (pyproject.toml, README.md,
folyam/), so a stale build/ folder or a file outside the package can never make it pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SOURCES = ("pyproject.toml", "README.md", "folyam")


def build_wheel(workdir: Path) -> Path:
    """`pip wheel . --no-deps` on a clean copy of the sources; the built wheel's path."""
    source = workdir / "source"
    source.mkdir(parents=True)
    for name in _SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = workdir / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)])
    [wheel] = wheels.glob("folyam-*.whl")
    return wheel


def fresh_venv(workdir: Path, wheel: Path) -> Path:
    """A new virtual environment with `wheel` installed; its python. Folyam's dependencies come from this
    test run's environment (a .pth line after the venv's own site-packages: no download, and never the
    checkout's folyam, whose editable-install hook lives in a .pth file that a path added so does not run)."""
    venv = workdir / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    own = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (own / "folyam-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    return python


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd="/", check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout
