"""Instructions per answer, counted by valgrind's callgrind: a figure that hardly drifts with the machine.
On this kind of shared machine CPU time swings ±15 to 25 % between runs of the same code, which hides any
cut of a few per cent; the count of instructions the app process runs for the same answers repeats to
within about half a per cent (one at a time; the paced scenario below, about 1 %). It is not CPU time:
it leaves out the kernel's work (socket reads and writes) and what cache misses and the machine's load
add, so it compares code, not capacities; the streams and compare benchmarks give the CPU time.

The app runs under callgrind (instrumentation off until the answers begin), against the fake OpenAI-
compatible upstream, and answers the benchmark's visitors as they come (page, POST, SSE to `done`, each a
new session):

- "1 token, one at a time": an answer's fixed cost (its requests, store rows, renders, upstream request);
- "200 tokens at 50/s, 5 at once": a whole answer at a real model's pace, with the flush interval a
  process uses when 100 or more answers run (`--flush-interval`), so events carry about as many tokens
  as at the issue's 400 answers. Less the fixed cost, divided by the other 199 tokens: the cost per
  token. The upstream keeps the real pace while the app runs some 30 times slower under callgrind, so
  how the tokens gather into events follows the clock (and the machine's load) a little: the table
  shows the events per answer, and this scenario repeats to within about 1 %.

    .venv/bin/python bench/instructions.py                     # this checkout
    .venv/bin/python bench/instructions.py --app-rev HEAD~1    # and a committed revision beside it
    .venv/bin/python bench/instructions.py --app-rev HEAD~1 --record
    .venv/bin/python bench/instructions.py --redis             # on a redis-server, as each of several workers
    .venv/bin/python bench/instructions.py --split             # and what is per answer, per event, per token

`--split` runs the paced scenario again at twice the flush interval: what the fewer events save, per
event missing, is an event's cost (its render, log entry, frame and write, and the upstream read that
comes with each: the provider reads once per flush); what the paced answer costs beyond the fixed cost
and its events, per further token, is what grows with the tokens (each chunk's parsing and decoding).
The table gives each part's share of the paced answer.

Needs valgrind (Debian's `valgrind` package); each scenario takes about half a minute per revision.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import compare, streams  # noqa: E402

# The dump's sum of what it counted (its "summary:" line is worked out otherwise, and is off after --zero).
TOTALS: Final = re.compile(rb"^totals:\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Scenario:
    name: str
    answers: int
    tokens: int
    at_once: int
    tokens_per_second: float  # 0: as fast as the upstream writes


FIXED: Final = Scenario("1 token, one at a time", answers=30, tokens=1, at_once=1, tokens_per_second=0)
PACED: Final = Scenario("200 tokens at 50/s, 5 at once", answers=20, tokens=200, at_once=5, tokens_per_second=50)


@dataclass(frozen=True)
class Target:
    label: str
    app_dir: Path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--app-rev", help="also measure this committed revision (before this checkout)")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=0.150,
        help="the app's flush interval in the paced scenario, s (default 0.150: a busy process's)",
    )
    parser.add_argument(
        "--redis", action="store_true", help="the app on a redis-server of its own, as each of several workers is"
    )
    parser.add_argument(
        "--split", action="store_true", help="also split the paced answer into per answer, per event and per token"
    )
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    targets = []
    if args.app_rev:
        folder, sha = streams.export_revision(args.app_rev)
        targets.append(Target(sha, folder))
    targets.append(Target(streams.checkout_revision(), ROOT))
    rows, counts, splits = [], [], []
    for target in targets:
        fixed, fixed_events = count(target.app_dir, FIXED, args.flush_interval, redis=args.redis)
        paced, events = count(target.app_dir, PACED, args.flush_interval, redis=args.redis)
        per_token = (paced - fixed) / (PACED.tokens - FIXED.tokens)
        counts.append((fixed, paced, per_token))
        if args.split:
            slower, fewer = count(target.app_dir, PACED, 2 * args.flush_interval, redis=args.redis)
            splits.append([target.label, *split_row(fixed, fixed_events, (paced, events), (slower, fewer))])
        rows.append(
            [target.label, f"{fixed / 1e6:.2f}", f"{paced / 1e6:.2f}", f"{events:.1f}", f"{per_token / 1e3:.1f}"]
        )
        print(f"{target.label}: {rows[-1][1]} M per 1-token answer, {rows[-1][2]} M per 200-token answer", flush=True)
    columns = (
        "app",
        f"M instructions, {FIXED.name}",
        f"M instructions, {PACED.name}",
        "its events/answer",
        "k instructions/token",
    )
    if len(rows) == 2:
        (old_fixed, old_paced, old_token), (new_fixed, new_paced, new_token) = counts
        changes = (_change(old_fixed, new_fixed), _change(old_paced, new_paced), _change(old_token, new_token))
        rows.append(["change", changes[0], changes[1], "", changes[2]])
    text = compare.table(rows, columns)
    if splits:
        text += "\n\n" + compare.table(splits, SPLIT_COLUMNS)
    print(f"\n{text}")
    if args.record:
        facts = [
            "callgrind's count of the app process's instructions (user space), from the first measured answer to"
            " the last; each answer from a new visitor (page, POST, SSE to done), the upstream bench/upstream.py",
            f"the paced scenario's flush interval {args.flush_interval * 1000:.0f} ms"
            + (f" (split: again at {2 * args.flush_interval * 1000:.0f} ms)" if args.split else ""),
            *(["the app on a redis-server of its own (its CPU not counted)"] if args.redis else []),
        ]
        streams.append_record("instructions per answer (bench/instructions.py)", facts, text)


SPLIT_COLUMNS: Final = (
    "app",
    "k instructions per event",
    "k instructions per further token",
    "paced answer: fixed cost",
    "its events",
    "its tokens",
)


def split_row(fixed: float, fixed_events: float, paced: tuple[float, float], slower: tuple[float, float]) -> list[str]:
    """The paced answer's instructions split into its fixed cost (a 1-token answer's), its further events
    and its further tokens, from the paced scenario at two flush intervals."""
    (total, events), (fewer_total, fewer_events) = paced, slower
    if events - fewer_events < 1:
        raise RuntimeError(f"twice the flush interval did not cut the events ({events:.1f} → {fewer_events:.1f})")
    per_event = (total - fewer_total) / (events - fewer_events)
    further_events = (events - fixed_events) * per_event
    per_token = (total - fixed - further_events) / (PACED.tokens - FIXED.tokens)
    shares = (fixed / total, further_events / total, 1 - (fixed + further_events) / total)
    return [f"{per_event / 1e3:.0f}", f"{per_token / 1e3:.1f}", *(f"{share * 100:.0f} %" for share in shares)]


def _change(old: float, new: float) -> str:
    return f"{(new / old - 1) * 100:+.1f} %"


def count(app_dir: Path, scenario: Scenario, flush_interval: float, *, redis: bool) -> tuple[float, float]:
    """The app's instructions per answer of `scenario`, after a few answers to warm it up, and the
    events per answer."""
    with contextlib.ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="folyam-instructions-")))
        delay = 1 / scenario.tokens_per_second if scenario.tokens_per_second else 0.0
        env = streams.base_env() | streams.BENCH_LIMITS | {"FOLYAM_DATA_DIR": str(data), "PYTHONHASHSEED": "0"}
        if scenario.tokens > 1:
            env |= {"FOLYAM_FLUSH_INTERVAL": str(flush_interval), "FOLYAM_BUSY_FLUSH_INTERVAL": str(flush_interval)}
        if redis:
            env["FOLYAM_REDIS_URL"] = stack.enter_context(streams.redis_for_bench(data))
        upstream_port = streams.free_port()
        upstream_argv = [
            sys.executable, "-m", "bench.upstream", "--port", str(upstream_port),
            "--chunks", str(scenario.tokens), "--delay", str(delay), "--paragraph", "0",
        ]  # fmt: skip
        upstream = stack.enter_context(streams.serving("upstream", upstream_argv, env, upstream_port))
        env |= {"OPENAI_BASE_URL": f"{upstream.url}/v1", "OPENAI_API_KEY": "sk-bench", "FOLYAM_MODEL": "bench-model"}
        app = stack.enter_context(under_callgrind(app_dir, env, data))
        total, events = asyncio.run(answer(app.url, scenario, app.process.pid, data))
    return total / scenario.answers, events / scenario.answers


@contextlib.contextmanager
def under_callgrind(app_dir: Path, env: dict[str, str], data: Path) -> Iterator[streams.Server]:
    port = streams.free_port()
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={data}/callgrind.%p",
        sys.executable, str(app_dir / "app.py"), "--port", str(port),
    ]  # fmt: skip
    # (It starts and stops some 30 times slower under callgrind.)
    with streams.serving("app-callgrind", argv, env, port, app_dir, listen_timeout=300, stop_timeout=120) as app:
        yield app


async def answer(base: str, scenario: Scenario, pid: int, data: Path) -> tuple[float, int]:
    """Warm up, then count the instructions of `scenario.answers` answers, `scenario.at_once` at a time;
    returns them and the answers' events."""

    async def visit(index: int) -> int:
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout) as client:
            form = await streams.open_page(client, base)
            return (await streams.folyam_stream(client, base, index, scenario.tokens, form)).events

    async def lane(first: int) -> int:
        return sum([await visit(index) for index in range(first, scenario.answers, scenario.at_once)])

    for index in range(10 if scenario.tokens == 1 else 2):  # its caches, its pools, its first compilations
        await visit(index)
    callgrind_control("--instr=on", pid)
    callgrind_control("--zero", pid)
    events = sum(await asyncio.gather(*(lane(first) for first in range(scenario.at_once))))
    callgrind_control("--dump", pid)
    dumps = [path.read_bytes() for path in data.glob(f"callgrind.{pid}.*")]
    if len(dumps) != 1 or not (totals := TOTALS.search(dumps[0])):
        raise RuntimeError(f"expected one callgrind dump with totals, found {len(dumps)}")
    return float(totals.group(1)), events


def callgrind_control(option: str, pid: int) -> None:
    done = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, timeout=60, check=False)
    if done.returncode:
        raise RuntimeError(f"callgrind_control {option} failed: {done.stderr.decode(errors='replace')}")


if __name__ == "__main__":
    main()
