"""Store benchmark: what the conversation store costs per answer (record it, read the history for the
next question, record its end), on SQLite and on PostgreSQL (a server of its own on a free port), one
answer after another and many at once.

    .venv/bin/python bench/store.py                 # prints a markdown table
    .venv/bin/python bench/store.py --record        # and appends it to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from folyam.store.sql import SqlStore  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402

TIMING = {"model": "m", "first_token_ms": 300.0, "total_ms": 4000.0, "chunks": 200, "tokens": 200,
          "tokens_reported": True, "tokens_per_second": 50.0, "prompt_tokens": 40, "total_tokens": 240}  # fmt: skip
ANSWER = "A paragraph of an answer, about two hundred tokens long. " * 20


async def one_answer(store: SqlStore, session: str, conversation: str) -> None:
    exchange = secrets.token_urlsafe(16)
    await store.start_exchange(
        exchange_id=exchange, session_id=session, conversation_id=conversation,
        request_id=secrets.token_urlsafe(16), question="What about rivers?", model="m", history=10,
    )  # fmt: skip
    await store.finish_exchange(exchange, answer=ANSWER, status="finished", notice=None, timing=TIMING)


async def measure(url: str, answers: int, concurrency: int) -> tuple[float, float]:
    """(ms of wall time, ms of CPU) per answer."""
    store = SqlStore(url, timeout=30)
    await store.migrate()
    await one_answer(store, "warm", "warm-up-conversation")
    semaphore = asyncio.Semaphore(concurrency)

    async def limited(n: int) -> None:
        async with semaphore:
            await one_answer(store, f"s{n % 50}", f"conversation-{n % 200:04d}")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(limited(n) for n in range(answers)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await store.aclose()
    return wall / answers * 1000, cpu / answers * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as data, postgres_server() as postgres:
        for name, url in [
            ("SQLite (file, WAL)", f"sqlite:///{data}/bench.db"),
            ("PostgreSQL 15 (loopback)", postgres.url()),
        ]:
            for concurrency in (1, 50):
                wall, cpu = asyncio.run(measure(url, args.answers, concurrency))
                rows.append(f"| {name} | {concurrency} | {wall:.2f} | {cpu:.2f} |")
                print(rows[-1], flush=True)
    table = "\n".join(["| Database | answers at once | ms per answer (wall) | ms CPU per answer (app side) |",
                       "|---|---:|---:|---:|", *rows])  # fmt: skip
    print(table)
    if args.record:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.processor())  # fmt: skip
        with (ROOT / "bench" / "RESULTS.md").open("a") as results:
            results.write(
                f"\n## Store: cost per answer ({datetime.date.today()}, commit {commit.stdout.strip()})\n\n"
                f"Machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}. Command: "
                f"`.venv/bin/python bench/store.py --answers {args.answers}`. Per answer: record it and read the "
                "history for it, then record its end (two transactions); the app's side of the CPU (the database "
                "server's own is not counted).\n\n"
                f"{table}\n"
            )


if __name__ == "__main__":
    main()
