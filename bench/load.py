"""Load test with dropped connections: N concurrent answers on the demo model at a realistic pace,
a share of the clients dropping their event stream at random moments and reconnecting with
Last-Event-ID, as a browser's SSE client does. Every client rebuilds its answer from the events it
received and compares it with the one-shot render of the same text: nothing may be lost or doubled.

    .venv/bin/python bench/load.py --streams 500 --rate 50 --drop-share 0.3           # prints a row
    .venv/bin/python bench/load.py --streams 500 --rate 50 --drop-share 0.3 --record  # and records it

The app runs as its own process (`python app.py`), so its CPU and memory are its own; this process is
the client (loopback only, a bounded number of streams, and a time limit).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streams import (  # noqa: E402
    BENCH_LIMITS,
    base_env,
    cpu_seconds,
    free_port,
    machine,
    memory_kib,
    percentile,
    serving,
)
from folyam.components import make_environment  # noqa: E402
from folyam.markdown import MarkdownPipeline  # noqa: E402
from folyam.providers.demo import demo_answer  # noqa: E402

FRAME_END = re.compile(rb"\r\n\r\n|\n\n")
PARTIAL = re.compile(r'<hx-partial hx-target="#([^"]+)" hx-swap="([^"]+)">(.*?)</hx-partial>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
ACTION = re.compile(r'<form id="composer"[^>]* hx-post="([^"]+)"')
EVENTS = re.compile(r'hx-sse:connect="([^"]+)"')


@dataclass
class Client:
    drops_planned: int
    drops: int = 0
    events: int = 0
    first_event: float | None = None
    gaps: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    body: str = ""
    tail: str = ""
    complete: bool = False
    error: str | None = None

    def apply(self, data: str) -> None:
        """Swap the frame's partials as htmx would (body appends/replaces, tail replaces/extends)."""
        for target, swap, content in PARTIAL.findall(data):
            if target.endswith("-body"):
                self.body = content if swap == "innerHTML" else self.body + content
            elif target.endswith("-tail"):
                self.tail = content  # (in-place extensions target "-tail > …" and only matter mid-answer)


async def run_client(client: httpx.AsyncClient, base: str, index: int, state: Client, expected: str) -> None:
    page = await client.get(base + "/")
    action = ACTION.search(page.text)
    assert action is not None
    form = dict(HIDDEN.findall(page.text))
    sent = time.perf_counter()
    posted = await client.post(
        base + action.group(1), data={**form, "query": f"Load question {index}"}, headers={"HX-Request": "true"}
    )
    posted.raise_for_status()
    match = EVENTS.search(posted.text)
    assert match is not None
    url = base + match.group(1)
    last_id: str | None = None
    last_at: float | None = None
    while True:
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        # Drop after a random number of events, as a flaky network would.
        drop_after = random.randint(2, 40) if state.drops < state.drops_planned else None
        seen_here = 0
        async with client.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            buffer = b""
            async for chunk in response.aiter_raw():
                buffer += chunk
                *frames, buffer = FRAME_END.split(buffer)
                for frame in frames:
                    if not frame or frame.startswith(b":"):
                        continue
                    now = time.perf_counter()
                    if state.first_event is None:
                        state.first_event = now - sent
                    elif last_at is not None:
                        state.gaps.append(now - last_at)
                    last_at = now
                    fields = _fields(frame.decode())
                    last_id = fields.get("id", last_id)
                    state.ids.append(int(last_id or 0))
                    state.events += 1
                    seen_here += 1
                    if fields.get("event") == "done":
                        state.complete = state.body == expected and state.tail == ""
                        if not state.complete:
                            state.error = "the rebuilt answer differs from the one-shot render"
                        return
                    state.apply(fields.get("data", ""))
                    if drop_after is not None and seen_here >= drop_after:
                        break
                else:
                    continue
                break
        state.drops += 1
        last_at = None  # the reconnect pause is the network's, not the server's
        await asyncio.sleep(random.uniform(0.05, 0.5))


def _fields(frame: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in re.split(r"\r\n|\r|\n", frame):
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name:
            fields[name] = value
    fields["data"] = "\n".join(data)
    return fields


async def run(args: argparse.Namespace, base: str) -> list[Client]:
    pipeline = MarkdownPipeline(make_environment())
    clients = [Client(drops_planned=random.randint(1, 3) if random.random() < args.drop_share else 0)
               for _ in range(args.streams)]  # fmt: skip
    limits = httpx.Limits(max_connections=args.streams * 2, max_keepalive_connections=args.streams * 2)
    async with asyncio.timeout(args.timeout):
        tasks = []
        for index, state in enumerate(clients):
            expected = str(pipeline.render(demo_answer(f"Load question {index}")))
            http = httpx.AsyncClient(timeout=60, limits=limits)
            tasks.append(asyncio.create_task(_guarded(http, base, index, state, expected)))
            if args.ramp:
                await asyncio.sleep(args.ramp / args.streams)
        await asyncio.gather(*tasks)
    return clients


async def _guarded(http: httpx.AsyncClient, base: str, index: int, state: Client, expected: str) -> None:
    async with http:
        try:
            await run_client(http, base, index, state, expected)
        except Exception as exc:  # reported, not raised: one failing client must not hide the others
            state.error = f"{type(exc).__name__}: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="demo tokens per second")
    parser.add_argument("--drop-share", type=float, default=0.3, help="share of clients that drop 1-3 times")
    parser.add_argument("--ramp", type=float, default=1.0, help="spread the starts over this many seconds")
    parser.add_argument("--flush-interval", type=float, default=0.03)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    args = parser.parse_args()
    random.seed(args.seed)
    if not 1 <= args.streams <= 2000:
        parser.error("--streams must be between 1 and 2000")

    port = free_port()
    env = {
        **base_env(),
        "FOLYAM_DEMO_TOKENS_PER_SECOND": str(args.rate),
        "FOLYAM_DEMO_FIRST_TOKEN_DELAY": "0.35",
        "FOLYAM_FLUSH_INTERVAL": str(args.flush_interval),
        **BENCH_LIMITS,
        "FOLYAM_MAX_RUNNING_PER_SESSION": "10",
    }
    with serving("load-app", [sys.executable, "app.py", "--port", str(port)], env, port) as app:
        cpu_before, started = cpu_seconds(app.pid), time.perf_counter()
        clients = asyncio.run(run(args, app.url))
        wall, cpu = time.perf_counter() - started, cpu_seconds(app.pid) - cpu_before
        peak_rss = memory_kib(app.pid, "VmHWM") / 1024

    complete = sum(c.complete for c in clients)
    errors = [c.error for c in clients if c.error]
    repeated = sum(len(c.ids) != len(set(c.ids)) or c.ids != sorted(c.ids) for c in clients)
    dropped = [c for c in clients if c.drops]
    gaps = [gap for c in clients for gap in c.gaps]
    first = [c.first_event for c in clients if c.first_event is not None]
    header = (
        "| streams | dropping clients | drops | complete answers | repeated ids | wall s | app CPU s | "
        "CPU % of a core | events | gap p50 ms | gap p99 ms | TTFE p50 ms | TTFE p99 ms | peak RSS MiB |"
    )
    row = (
        f"| {len(clients)} | {len(dropped)} | {sum(c.drops for c in clients)} | {complete}/{len(clients)} | "
        f"{repeated} | {wall:.1f} | {cpu:.2f} | {cpu / wall:.0%} | {sum(c.events for c in clients)} | "
        f"{percentile(gaps, 50) * 1000:.0f} | {percentile(gaps, 99) * 1000:.0f} | "
        f"{percentile(first, 50) * 1000:.0f} | {percentile(first, 99) * 1000:.0f} | {peak_rss:.0f} |"
    )
    table = f"{header}\n|{'---|' * (header.count('|') - 1)}\n{row}"
    print(table)
    for error in sorted(set(errors))[:10]:
        print("error:", error)
    if args.record:
        command = "`.venv/bin/python bench/load.py " + " ".join(sys.argv[1:]).replace(" --record", "") + "`"
        with (ROOT / "bench" / "RESULTS.md").open("a") as results:
            results.write(
                f"\n## {datetime.now(UTC):%a %b %d %H:%M:%S UTC %Y}: load test with drops, demo model\n\n"
                f"- command: {command}\n- machine: {machine()}\n"
                f"- demo pace {args.rate:g} tokens/s, flush interval {args.flush_interval * 1000:.0f} ms; "
                "a dropping client reconnects 50–500 ms later with Last-Event-ID; gaps exclude that pause\n"
                f"- errors: {len(errors)}\n\n{table}\n"
            )
    if complete != len(clients):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
