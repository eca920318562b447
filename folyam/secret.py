"""The secret that signs session cookies and CSRF tokens, kept in the data directory when not configured,
so that a restart (or another worker) does not invalidate every cookie."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["load_or_create_secret"]

_FILE = "secret_key"


def load_or_create_secret(data_dir: Path) -> bytes:
    """The secret in `data_dir/secret_key`, created first if missing: written to a private temporary file
    (owner-only) and linked into place, which fails if another process got there first; then everyone
    reads the one that won."""
    path = data_dir / _FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = data_dir / f".{_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret key (fewer than 32 characters); delete it to get a new one")
    return secret
