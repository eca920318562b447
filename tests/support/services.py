"""Real PostgreSQL and Redis servers for the tests, each started on a free loopback port in a temporary
directory and always stopped. Debian's packages provide them (`./scripts/test` installs them); a missing
binary fails loudly: these tests are never skipped."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port


def binary(name: str) -> str:
    """A server binary from PATH or from Debian's PostgreSQL directories; fails when there is none."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run ./scripts/test (it installs postgresql and redis-server)")
    return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


@dataclass
class Redis:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    next_database: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def fresh_url(self) -> str:
        """The URL of a database no deployment used before (and emptied): limits and counts that one test
        leaves behind do not reach another."""
        self.next_database += 1
        url = f"redis://127.0.0.1:{self.port}/{self.next_database}"
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(f"SELECT {self.next_database}\r\nFLUSHDB\r\n".encode())
            replies = b""
            while replies.count(b"\r\n") < 2:
                replies += connection.recv(1024)
        return url

    def start(self) -> None:
        self.process = subprocess.Popen(
            [binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--databases", "1000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port, self.process, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def redis_server() -> Iterator[Redis]:
    with tempfile.TemporaryDirectory(prefix="folyam-redis-") as directory:
        server = Redis(free_port(), Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class Postgres:
    port: int
    directory: Path

    def url(self, database: str = "folyam") -> str:
        return f"postgresql://folyam@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.ctl("start", "-w", "-t", "30", "-l", str(self.directory / "log"), "-o", self._options())

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast", "-w")

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        name = "t_" + secrets.token_hex(6)
        self.as_owner([binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "folyam", name])
        return self.url(name)

    def _options(self) -> str:
        # Durability off: these databases live as long as the test run.
        return (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )

    def ctl(self, *args: str) -> None:
        self.as_owner([binary("pg_ctl"), "-D", str(self.directory / "data"), *args])

    def as_owner(self, command: list[str]) -> None:
        # PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user.
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    directory = Path(tempfile.mkdtemp(prefix="folyam-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = Postgres(free_port(), directory)
    try:
        server.as_owner(
            [binary("initdb"), "-D", str(directory / "data"), "-U", "folyam", "--auth=trust", "-E", "UTF8", "--no-sync"]
        )
        server.start()
        server.as_owner([binary("createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "folyam", "folyam"])
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):
            server.ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(directory, ignore_errors=True)
