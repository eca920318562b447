"""The secret key kept in the data directory: made once, private, the same for every process."""

from __future__ import annotations

import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from folyam.secret import load_or_create_secret


def test_the_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "data") == first and len(first) >= 32
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret_key"]  # no temporary file left


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=6) as pool:
        keys = set(pool.map(load_or_create_secret, [tmp_path] * 12))
    assert len(keys) == 1


def test_an_unusable_key_file_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("short")
    with pytest.raises(ValueError, match="delete it to get a new one"):
        load_or_create_secret(tmp_path)
