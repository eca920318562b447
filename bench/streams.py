"""Streaming benchmark: N concurrent answers over SSE, and what they cost the server in CPU.

The app under test runs as its own process (`python app.py` configured through FOLYAM_* variables), so
its CPU time can be read from /proc alone. With `--provider openai` a fast fake OpenAI-compatible
upstream (bench/upstream.py) runs as a third process and the app is pointed at it; with `--seed` the
app is replaced by the seed relay of bench/seed_relay.py (FastAPI + the openai SDK) against the same
upstream. This process is the client: N concurrent visitors on loopback, each loading the page, posting
a question and reading its event stream to the end, bounded by --streams and --timeout; all of it is
measured (page, POST, upstream read, render, SSE write). `--pin CPU` pins the app to that one core (and
this client and the upstream to the others).

    .venv/bin/python bench/streams.py --streams 200 --provider demo
    .venv/bin/python bench/streams.py --streams 200 --provider openai --chunks 500
    .venv/bin/python bench/streams.py --streams 500 --provider demo --rate 50
    .venv/bin/python bench/streams.py --streams 200 --seed --chunks 500
    .venv/bin/python bench/streams.py --streams 200 --provider openai --rate 50 --paragraph 60
    .venv/bin/python bench/streams.py --streams 200 --provider openai --profile bench/out/openai.txt

`--rate` paces the demo model or the fake upstream (tokens per second; default 0, no delay: a
throughput test whose latency columns show a saturated server). `--app-rev REV` runs the app as
committed at REV (exported into bench/out/), not the work tree, so edits in progress do not leak in.

It prints one markdown table row (and the header); `--record` appends it to bench/RESULTS.md with the
date, the machine, the app's revision and the exact command. `--profile FILE` samples the app with
py-spy during the run (`pip install py-spy`) and prints the hottest functions; sampling slows the app, so
a profiled run cannot be recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # server logs and profiles (git-ignored)
RESULTS = ROOT / "bench" / "RESULTS.md"
MAX_STREAMS = 5_000
# Every client of a benchmark comes from 127.0.0.1 and the load is the point: lift the per-address and
# total limits (revisions without them ignore the variables).
BENCH_LIMITS = {
    "FOLYAM_RATE_LIMIT_PER_MINUTE": str(10**9),
    "FOLYAM_MAX_RUNNING_PER_CLIENT": str(MAX_STREAMS),
    "FOLYAM_MAX_RUNNING": str(MAX_STREAMS),
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")

EVENTS_URL = re.compile(r'hx-sse:connect="([^"]+)"')
COMPOSER_ACTION = re.compile(r'<form id="composer"[^>]* hx-post="([^"]+)"')
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
# What else a browser submits with the composer: the model picked in its list, and the instructions.
SELECTED_OPTION = re.compile(r'<select[^>]* name="([^"]+)">.*?<option value="([^"]*)" selected', re.S)
TEXTAREA = re.compile(r'<textarea[^>]* name="([^"]+)"[^>]*>([^<]*)</textarea>')
CHUNKS = re.compile(rb"<dt>Chunks</dt><dd>(\d+)</dd>")
CONTENT = re.compile(rb'"content":"[^"]')
FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
DONE_LINE = re.compile(rb"^(?:event: done|data: \[DONE\])\r?$", re.M)

COLUMNS = (
    "target",
    "streams",
    "rate tok/s",
    "flush ms",
    "errors",
    "wall s",
    "app CPU s",
    "upstream tokens",
    "events",
    "CPU µs/token",
    "CPU µs/event",
    "TTFE p50 ms",
    "TTFE p99 ms",
    "max gap p99 ms",
    "stream p50 s",
    "peak RSS MiB",
)


# --- processes -------------------------------------------------------------------------------------


@dataclass
class Server:
    """A server in a process of its own, with its output in bench/out/<name>.log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    port: int,
    cwd: Path = ROOT,
    *,
    listen_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Server]:
    """Start `argv` (a server listening on `port`) in `cwd`; always stop it."""
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, process, port, log)
    try:
        _wait_listening(server, listen_timeout)
        yield server
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", server.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not listen on port {server.port} within {timeout:g} s")


def base_env() -> dict[str, str]:
    """This environment without the variables that configure the app, so only our own apply."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FOLYAM_", "OPENAI_")) and key != "PYTHONPATH"
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its live child processes (the
    workers of `app.py --workers N`), from /proc/<pid>/stat."""
    total = 0.0
    for process in [pid, *descendants(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            stat = Path(f"/proc/{process}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state); utime is 14, stime 15
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def memory_kib(pid: int, key: str) -> int:
    """A `Vm*` line of /proc/<pid>/status, in KiB (VmHWM is the peak resident set size)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


# --- clients ---------------------------------------------------------------------------------------


@dataclass
class StreamResult:
    error: str | None = None
    # Seconds from sending the request (the POST, for Folyam) to the first SSE data frame.
    first_event: float | None = None
    # Longest time between two consecutive data frames of the stream, seconds, and when it ended
    # (`time.perf_counter()`).
    max_gap: float = 0.0
    max_gap_at: float = 0.0
    # Data frames delivered (keep-alive comments excluded; the timing and `done` frames included).
    events: int = 0
    # Upstream tokens of the answer: the "Chunks" of Folyam's timing fragment, the seed's content events.
    tokens: int = 0
    # Seconds from sending the question to the end of the stream.
    duration: float = 0.0
    # Bytes of the event stream's body.
    body_bytes: int = 0


async def read_stream(
    response: aiohttp.ClientResponse,
    sent_at: float,
    result: StreamResult,
    on_frame: Callable[[bytes], None] | None = None,
) -> bytes:
    """Read SSE frames up to `event: done` (or `data: [DONE]`), timing each data frame; returns the frame
    before it."""
    response.raise_for_status()
    buffer = b""
    previous = b""
    last_at = 0.0
    async for chunk in response.content.iter_any():
        now = time.perf_counter()
        result.body_bytes += len(chunk)
        buffer += chunk
        *frames, buffer = FRAME_END.split(buffer)
        for frame in frames:
            if not frame or frame.startswith(b":"):
                continue  # keep-alive comment
            result.events += 1
            if result.first_event is None:
                result.first_event = now - sent_at
            elif now - last_at > result.max_gap:
                result.max_gap, result.max_gap_at = now - last_at, now
            last_at = now
            if (b"event: done" in frame or b"[DONE]" in frame) and DONE_LINE.search(frame):
                result.duration = now - sent_at
                return previous
            previous = frame
            if on_frame is not None:
                on_frame(frame)
    raise RuntimeError("the stream ended without a done event")


Form = dict[str, str]


async def open_page(client: aiohttp.ClientSession, base: str) -> Form:
    """Load the chat page like a browser (which gives the client its session cookie) and read the
    composer's action and the fields a browser submits with the question: the hidden ones (request_id,
    and csrf_token where the app has one), the model picked and the instructions, where it has them."""
    async with client.get(f"{base}/") as page:
        page.raise_for_status()
        text = await page.text()
    action = COMPOSER_ACTION.search(text)
    if action is None:
        raise RuntimeError("the chat page has no composer form")
    fields = [*HIDDEN_INPUT.findall(text), *SELECTED_OPTION.findall(text), *TEXTAREA.findall(text)]
    return {"action": action.group(1), **dict(fields)}


async def folyam_stream(
    client: aiohttp.ClientSession, base: str, index: int, expected: int | None, form: Form | None
) -> StreamResult:
    """Ask like the composer does, then follow the generation's events to `done`."""
    if form is None:
        raise RuntimeError("no composer form")
    fields = {key: value for key, value in form.items() if key != "action"}
    result = StreamResult()
    sent_at = time.perf_counter()
    # HX-Request: htmx's header (without it the app answers with a streamed page, for browsers without JS).
    async with client.post(
        base + form["action"],
        data={**fields, "query": f"Benchmark question {index}"},
        headers={"HX-Request": "true"},
    ) as posted:
        text = await posted.text()
        if posted.status >= 400:
            title = re.search(r'notice__title">([^<]*)<', text)
            raise RuntimeError(f"POST answered {posted.status}: {title.group(1) if title else text[:80]}")
    match = EVENTS_URL.search(text)
    if match is None:
        raise RuntimeError("the answer has no events URL")
    async with client.get(base + match.group(1), headers={"Accept": "text/event-stream"}) as response:
        timing = await read_stream(response, sent_at, result)
    chunks = CHUNKS.search(timing)
    if chunks is None:
        raise RuntimeError("no timing fragment before done")
    result.tokens = int(chunks.group(1))
    if expected is not None and result.tokens != expected:
        raise RuntimeError(f"{result.tokens} chunks, expected {expected}")
    return result


async def open_seed_page(client: aiohttp.ClientSession, base: str) -> Form:
    async with client.get(f"{base}/") as page:
        page.raise_for_status()
        await page.read()
    return {}


async def seed_stream(
    client: aiohttp.ClientSession, base: str, index: int, expected: int | None, form: Form | None
) -> StreamResult:
    """Ask the seed relay; its events are the upstream's chunks as JSON, then `data: [DONE]`."""
    result = StreamResult()
    sent_at = time.perf_counter()
    counter = ContentCounter()
    async with client.get(f"{base}/chat", params={"q": f"Benchmark question {index}"}) as response:
        await read_stream(response, sent_at, result, counter)
    result.tokens = counter.count
    if expected is not None and result.tokens != expected:
        raise RuntimeError(f"{result.tokens} content chunks, expected {expected}")
    return result


@dataclass
class ContentCounter:
    """Counts the seed's frames that carry answer text (not the role, finish or usage chunks)."""

    count: int = 0

    def __call__(self, frame: bytes) -> None:
        if CONTENT.search(frame):
            self.count += 1


StreamFn = Callable[[aiohttp.ClientSession, str, int, int | None, Form | None], Awaitable[StreamResult]]
SetupFn = Callable[[aiohttp.ClientSession, str], Awaitable[Form]]


@dataclass(frozen=True)
class Snapshot:
    """Clocks read at one instant: wall time, and the CPU seconds of each process and of the machine."""

    wall: float
    app: float
    upstream: float
    client: float
    machine: float

    @classmethod
    def take(cls, app_pid: int, upstream_pid: int | None) -> Snapshot:
        return cls(
            wall=time.perf_counter(),
            app=cpu_seconds(app_pid),
            upstream=cpu_seconds(upstream_pid) if upstream_pid else 0.0,
            client=time.process_time(),
            machine=machine_busy_seconds(),
        )


@dataclass
class Window:
    """What the measured phase cost each process: snapshots at its start and its end."""

    app_pid: int
    upstream_pid: int | None
    rss_before_kib: int = 0
    start_at: Snapshot | None = None
    end_at: Snapshot | None = None
    # The client loop's stalls (`watch_loop`).
    stalls: list[tuple[float, float]] = field(default_factory=list)

    def start(self) -> None:
        self.rss_before_kib = memory_kib(self.app_pid, "VmRSS")
        self.start_at = Snapshot.take(self.app_pid, self.upstream_pid)

    def stop(self) -> None:
        self.end_at = Snapshot.take(self.app_pid, self.upstream_pid)

    def delta(self, name: str) -> float:
        if self.start_at is None or self.end_at is None:
            raise RuntimeError("the window was not started and stopped")
        return float(getattr(self.end_at, name) - getattr(self.start_at, name))

    @property
    def other_cpu(self) -> float:
        """CPU that processes other than these three used meanwhile (other work skews latencies)."""
        ours = self.delta("app") + self.delta("upstream") + self.delta("client")
        return max(0.0, self.delta("machine") - ours)  # /proc/stat counts ticks: a few ms of rounding


async def run_clients(
    stream: StreamFn,
    setup: SetupFn,
    base: str,
    *,
    streams: int,
    expected: int | None,
    ramp: float,
    timeout: float,
    first: int = 0,
    window: Window | None = None,
    waves: int = 1,
) -> list[StreamResult]:
    """`streams` visitors started over `ramp` seconds inside the measured `window`: each loads the page
    (`setup`) and streams an answer, `waves` times over, as a new visitor each time (no cookies kept), so
    `streams` answers run at once throughout; unfinished ones fail at `timeout`.

    Each visitor has an aiohttp session of its own (its own cookies: its own session, and its own
    connections, as a browser has). aiohttp, not httpx: its C parser costs the client a fraction of what
    httpx's pure-Python one did per read, and a client that falls behind times frames late (the gap and
    first-event columns were then partly the client's; see `watch_loop`)."""
    timeouts = aiohttp.ClientTimeout(total=timeout, connect=10.0)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=2),
                    timeout=timeouts,
                    cookie_jar=aiohttp.CookieJar(unsafe=True),  # unsafe: cookies from an IP address (127.0.0.1)
                )
            )
            for _ in range(streams)
        ]

        async def one(index: int) -> StreamResult:
            client = clients[index % streams]
            client.cookie_jar.clear()
            try:
                form = await setup(client, base)
            except Exception as exc:
                return StreamResult(error=f"page: {type(exc).__name__}: {exc}")
            try:
                return await stream(client, base, first + index, expected, form)
            except Exception as exc:
                return StreamResult(error=f"{type(exc).__name__}: {exc}")

        async def visitor(index: int) -> list[StreamResult]:
            if ramp > 0:
                await asyncio.sleep(ramp * index / streams)
            results: list[StreamResult] = []
            try:
                for wave in range(waves):
                    results.append(await one(wave * streams + index))
            except asyncio.CancelledError:
                results += [StreamResult(error=f"unfinished after {timeout:g} s")] * (waves - len(results))
            return results

        # No cyclic collection in this client while it times frames: one of its full collections stood
        # it still for 130 ms, which showed as the app's gaps. (A round's garbage is collected after it.)
        gc.collect()
        gc.disable()
        if window is not None:
            window.start()
        probe = asyncio.create_task(watch_loop(window.stalls if window is not None else []))
        tasks = [asyncio.create_task(visitor(index)) for index in range(streams)]
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        finally:
            gc.enable()
            probe.cancel()
        if window is not None:
            window.stop()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return [result for task in tasks for result in task.result()]


# Wake-ups of a loop later than this are counted as its stalls; a frame timed within STALL_SLACK of a
# stall's end was (probably) read when the loop got back.
PROBE_INTERVAL = 0.002
STALL_SLACK = 0.010


async def watch_loop(stalls: list[tuple[float, float]]) -> None:
    """Record when this process's event loop was late: (`time.perf_counter()` at the end, seconds late).
    A frame that reaches a busy client is timed when the client gets back to it, and a busy fake upstream
    sends its chunks late: either way a gap may be the harness's, not the app's."""
    while True:
        asleep_at = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL)
        now = time.perf_counter()
        late = now - asleep_at - PROBE_INTERVAL
        if late > PROBE_INTERVAL:
            stalls.append((now, late))


def longest_stall(stalls: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """The longest stall that ended between `start` and `end`, seconds."""
    return max((late for at, late in stalls if start < at <= end), default=0.0)


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Measurement:
    results: list[StreamResult]
    wall: float
    app_cpu: float
    client_cpu: float
    upstream_cpu: float | None
    rss_before_kib: int
    peak_rss_kib: int
    other_cpu: float
    errors: Counter[str] = field(default_factory=Counter)
    client_stalls: list[tuple[float, float]] = field(default_factory=list)
    upstream_stalls: list[tuple[float, float]] = field(default_factory=list)
    # False when other processes used more CPU meanwhile than --max-other-cpu allows.
    kept: bool = True

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.results if r.error is None)

    @property
    def cpu_per_token(self) -> float:
        return self.app_cpu * 1e6 / self.tokens if self.tokens else math.inf


def median_round(rounds: Sequence[Measurement]) -> Measurement:
    """The kept round with the median CPU per token (the lower one of an even count); when every
    round was disturbed, the median of them all."""
    kept = [m for m in rounds if m.kept] or list(rounds)
    return sorted(kept, key=lambda m: m.cpu_per_token)[(len(kept) - 1) // 2]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def measure(args: argparse.Namespace, app: Server, upstream: Server | None) -> list[Measurement]:
    """Warm up, then `--repeat` measured rounds of `--streams` concurrent streams against the same servers."""
    stream = seed_stream if args.seed else folyam_stream
    setup = open_seed_page if args.seed else open_page
    expected = None if args.provider == "demo" else args.chunks

    def clients(streams: int, first: int, window: Window | None = None) -> list[StreamResult]:
        run = run_clients(
            stream,
            setup,
            app.url,
            streams=streams,
            expected=expected,
            ramp=args.ramp if window else 0.0,
            timeout=args.timeout,
            first=first,
            window=window,
            waves=args.waves if window else 1,
        )
        return run_loop(run)

    # Warm up (imports, templates, connection pools), one stream at a time; not measured.
    for index in range(args.warmup):
        (warm,) = clients(1, MAX_STREAMS + index)
        if warm.error:
            raise RuntimeError(f"warm-up stream failed: {warm.error}")

    profiler = start_profiler(args.profile, app.pid) if args.profile else None
    rounds: list[Measurement] = []
    # A round disturbed by other work on the machine is run again (at most twice per round).
    while sum(m.kept for m in rounds) < args.repeat and len(rounds) < 3 * args.repeat:
        window = Window(app.pid, upstream.pid if upstream else None)
        results = clients(args.streams, len(rounds) * args.streams * args.waves, window)
        rounds.append(
            Measurement(
                results=results,
                wall=window.delta("wall"),
                app_cpu=window.delta("app"),
                client_cpu=window.delta("client"),
                upstream_cpu=window.delta("upstream") if upstream else None,
                rss_before_kib=window.rss_before_kib,
                peak_rss_kib=memory_kib(app.pid, "VmHWM"),
                other_cpu=window.other_cpu,
                errors=Counter(r.error for r in results if r.error),
                client_stalls=window.stalls,
                upstream_stalls=upstream_stalls(upstream, window) if upstream else [],
                kept=args.max_other_cpu is None or 100 * window.other_cpu / window.delta("wall") <= args.max_other_cpu,
            )
        )
    if profiler is not None:
        stop_profiler(profiler, args.profile)
    return rounds


def upstream_stalls(upstream: Server, window: Window) -> list[tuple[float, float]]:
    """The fake upstream's stalls during the window (its clock is this one: CLOCK_MONOTONIC)."""
    if window.start_at is None or window.end_at is None:
        return []
    stalls = httpx.get(f"{upstream.url}/bench/stalls").raise_for_status().json()
    return [(at, late) for at, late in stalls if window.start_at.wall < at <= window.end_at.wall]


def run_loop(coroutine: Coroutine[object, object, T]) -> T:
    """Run the client on uvloop when it is installed (it is with uvicorn[standard]): less client CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def run(args: argparse.Namespace) -> list[Measurement]:
    with contextlib.ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="folyam-bench-")))
        env = base_env() | {
            **({"FOLYAM_FLUSH_INTERVAL": str(args.flush_interval)} if args.flush_interval is not None else {}),
            "FOLYAM_DATA_DIR": str(data),
            # Every client of a benchmark comes from 127.0.0.1: lift the per-address limits
            # (revisions without them ignore the variables).
            **BENCH_LIMITS,
        }
        if args.workers > 1 or args.redis:
            env["FOLYAM_REDIS_URL"] = stack.enter_context(redis_for_bench(data))
        return run_with(args, env)


@contextlib.contextmanager
def redis_for_bench(directory: Path) -> Iterator[str]:
    """A redis-server of our own (Debian's) on a free port, for several workers."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_with(args: argparse.Namespace, env: dict[str, str]) -> list[Measurement]:
    delay = 1 / args.rate if args.rate > 0 else 0.0
    if args.provider == "demo":
        env |= {
            "FOLYAM_DEMO_FIRST_TOKEN_DELAY": str(args.first_token_delay),
            "FOLYAM_DEMO_TOKENS_PER_SECOND": str(args.rate),
        }
        app_port = free_port()
        with serving("app", app_argv(args, app_port), env, app_port, cwd=args.app_dir) as app:
            return measure(args, app, None)

    upstream_port = free_port()
    upstream_argv = [
        sys.executable, "-m", "bench.upstream", "--port", str(upstream_port),
        "--chunks", str(args.chunks), "--delay", str(delay), "--paragraph", str(args.paragraph),
    ]  # fmt: skip
    with serving("upstream", upstream_argv, env, upstream_port) as upstream:
        env |= {
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "OPENAI_API_KEY": "sk-bench",
            "FOLYAM_MODEL": "bench-model",
        }
        app_port = free_port()
        if args.seed:
            seed_argv = [*pinned(args), sys.executable, "-m", "bench.seed_relay", "--port", str(app_port)]
            with serving("seed-relay", seed_argv, env, app_port) as app:
                return measure(args, app, upstream)
        with serving("app", app_argv(args, app_port), env, app_port, cwd=args.app_dir) as app:
            return measure(args, app, upstream)


def app_argv(args: argparse.Namespace, port: int) -> list[str]:
    workers = ["--workers", str(args.workers)] if args.workers > 1 else []
    return [*pinned(args), sys.executable, str(args.app_dir / "app.py"), "--port", str(port), *workers]


def pinned(args: argparse.Namespace) -> list[str]:
    """`taskset` for --pin: the server (its worker processes too) runs on that one core."""
    return ["taskset", "--cpu-list", str(args.pin)] if args.pin is not None else []


def git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, check=False)
    return done.stdout.decode().strip()


def export_revision(rev: str) -> tuple[Path, str]:
    """Extract the app at a committed revision into bench/out/app-<sha>, so a run measures committed
    code whatever is being edited in the work tree; returns the folder and the short sha."""
    sha = git("rev-parse", "--short", "--verify", f"{rev}^{{commit}}")
    if not sha:
        raise SystemExit(f"--app-rev {rev!r} is not a commit")
    folder = OUT / f"app-{sha}"
    if not (folder / "app.py").exists():
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True, check=True)
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
    return folder, sha


# --- profiling -------------------------------------------------------------------------------------


def start_profiler(output: Path, pid: int) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    # --nonblocking: sampling does not stop the process (stopping it 500 times a second starved the
    # store's thread until requests timed out).
    argv = [
        py_spy,
        "record",
        "--nonblocking",
        "--gil",  # only what holds the GIL: uvloop waits in epoll without it, which is not work
        "--subprocesses",  # the workers, with --workers
        "--pid",
        str(pid),
        "--rate",
        "500",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    profiler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach before the load starts
    if profiler.poll() is not None:
        raise SystemExit(f"py-spy failed: {profiler.stderr.read().decode() if profiler.stderr else ''}")
    return profiler


def stop_profiler(profiler: subprocess.Popen[bytes], output: Path) -> None:
    profiler.send_signal(signal.SIGINT)
    profiler.wait(timeout=30)
    print(f"\nprofile: {output} (py-spy raw, collapsed stacks)")
    print(summarize_profile(output))


# py-spy counts these waits of idle threads (logging's queue listener, the default executor) as active.
IDLE_FRAMES = frozenset(
    {
        "Condition.wait (threading.py)",
        "_worker (concurrent/futures/thread.py)",
    }
)


def summarize_profile(path: Path, top: int = 25) -> str:
    """The functions with the most samples on the stack (inclusive) and on top of it (self), over the
    samples that were not idle threads waiting for work."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        if frames[-1] in IDLE_FRAMES:
            continue
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples (idle threads excluded)"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"\ntop {top} {title}:")
        lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(lines)


# --- reporting -------------------------------------------------------------------------------------


def target_name(args: argparse.Namespace) -> str:
    workers = f", {args.workers} workers + Redis" if args.workers > 1 else (", 1 worker + Redis" if args.redis else "")
    if args.provider == "demo":
        return "folyam demo" + workers
    name = f"{'seed relay' if args.seed else 'folyam openai'}, {args.chunks} chunks"
    return name + (f" in paragraphs of {args.paragraph}" if args.paragraph else "") + workers


def row(args: argparse.Namespace, m: Measurement) -> list[str]:
    ok = [r for r in m.results if r.error is None]
    tokens = m.tokens
    events = sum(r.events for r in m.results)
    first_events = [r.first_event for r in ok if r.first_event is not None]
    gaps = [r.max_gap for r in ok]

    def per(count: int) -> str:
        return f"{m.app_cpu * 1e6 / count:.1f}" if count else "n/a"

    return [
        target_name(args),
        str(args.streams) + (f" × {args.waves}" if args.waves > 1 else ""),
        f"{args.rate:g}" if args.rate > 0 else "no delay",
        "n/a" if args.seed else ("default" if args.flush_interval is None else f"{args.flush_interval * 1000:g}"),
        str(len(m.results) - len(ok)),
        f"{m.wall:.2f}",
        f"{m.app_cpu:.2f}",
        str(tokens),
        str(events),
        per(tokens),
        per(events),
        f"{percentile(first_events, 50) * 1000:.1f}",
        f"{percentile(first_events, 99) * 1000:.1f}",
        f"{percentile(gaps, 99) * 1000:.1f}",
        f"{percentile([r.duration for r in ok], 50):.2f}",
        f"{m.peak_rss_kib / 1024:.1f}",
    ]


def table(cells: Sequence[str]) -> str:
    return "\n".join(
        [
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "|".join("---" for _ in COLUMNS) + "|",
            "| " + " | ".join(cells) + " |",
        ]
    )


def details(m: Measurement, rounds: Sequence[Measurement]) -> list[str]:
    lines = []
    if len(rounds) > 1:
        figures = ", ".join(f"{r.cpu_per_token:.1f}" + ("" if r.kept else " (disturbed)") for r in rounds)
        lines.append(f"{len(rounds)} rounds against the same servers, CPU µs/token {figures}; the median is shown")
    if not m.kept:
        lines.append("every round was disturbed by other processes (over --max-other-cpu)")
    lines += [
        f"other processes' CPU during the run {m.other_cpu:.2f} s ({100 * m.other_cpu / m.wall:.0f}% of one core)",
        f"app RSS before the run {m.rss_before_kib / 1024:.1f} MiB",
        f"event streams' bodies {sum(r.body_bytes for r in m.results) / 2**20:.1f} MiB"
        f" ({sum(r.body_bytes for r in m.results) / 1024 / max(1, len(m.results)):.1f} KiB per answer)",
        f"client CPU {m.client_cpu:.2f} s ({100 * m.client_cpu / m.wall:.0f}% of one core)",
        f"app CPU {100 * m.app_cpu / m.wall:.0f}% of one core",
    ]
    if m.upstream_cpu is not None:
        lines.append(f"upstream CPU {m.upstream_cpu:.2f} s ({100 * m.upstream_cpu / m.wall:.0f}% of one core)")
    lines += stalls(m)
    lines += [f"{count} streams: {error}" for error, count in m.errors.most_common(5)]
    return lines


def stalls(m: Measurement) -> list[str]:
    """How late the client's and the upstream's own loops were, and the gap column without them: each
    stream's longest gap less the client's stall that ended with it (the frame was timed late) and the
    upstream's longest stall within it (its chunks went out late)."""
    ok = [r for r in m.results if r.error is None]
    less_client, less_both = [], []
    for r in ok:
        start, end = r.max_gap_at - r.max_gap, r.max_gap_at
        client = min(r.max_gap, longest_stall(m.client_stalls, end - STALL_SLACK, end + STALL_SLACK))
        less_client.append(r.max_gap - client)
        less_both.append(max(0.0, r.max_gap - client - longest_stall(m.upstream_stalls, start, end)))
    lines = []
    for name, found in (("client", m.client_stalls), ("upstream", m.upstream_stalls)):
        lates = [late for _, late in found]
        lines.append(
            f"{name} loop stalls over {PROBE_INTERVAL * 1000:g} ms: {len(lates)},"
            f" p99 {percentile(lates, 99) * 1000:.0f} ms, longest {max(lates, default=0) * 1000:.0f} ms"
        )
    lines.append(
        f"max gap p99 less the client's stall at its end {percentile(less_client, 99) * 1000:.1f} ms,"
        f" less the upstream's within it too {percentile(less_both, 99) * 1000:.1f} ms"
    )
    return lines


# Run on the app's core before a benchmark: this machine's speed swings two- or threefold from hour to
# hour, so each record says how fast it was then.
SPEED_PROBE = """
import os, socket, time
def timed(work, n):
    began = time.perf_counter(); work(n); return (time.perf_counter() - began) / n
def python(n):
    total = 0
    for i in range(n):
        total += i * 2
a, b = socket.socketpair()
message = b"x" * 200
def round_trip(n):
    for _ in range(n):
        a.send(message); b.recv(4096)
print(min(timed(python, 1_000_000) for _ in range(3)) * 1e9, min(timed(round_trip, 50_000) for _ in range(3)) * 1e6)
"""


def machine_speed(pin: str | None) -> str:
    """How fast this machine is now, on the app's core: a Python loop, and a small write and read over a
    socket pair (the best of three each)."""
    argv = [*(["taskset", "--cpu-list", str(pin)] if pin is not None else []), sys.executable, "-c", SPEED_PROBE]
    loop_ns, socket_us = map(float, subprocess.run(argv, capture_output=True, check=True, text=True).stdout.split())
    return (
        f"machine speed before the run: Python loop {loop_ns:.0f} ns/iteration, socket write + read {socket_us:.2f} µs"
    )


def machine() -> str:
    cpus = os.cpu_count() or 0  # (not this process's affinity: with --pin it runs off the app's cores)
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    system = f"{platform.system()} {platform.release()}"
    return f"{cpus} CPUs, {model}, Python {platform.python_version()}, {system}"


def revision(args: argparse.Namespace) -> str:
    if args.seed:
        return "n/a (bench/seed_relay.py)"
    if args.app_sha:
        return f"{args.app_sha} (exported by --app-rev)"
    return checkout_revision()


def checkout_revision() -> str:
    """This checkout's commit, and whether the app's code differs from it in the work tree."""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "app.py", "folyam", "templates")
    return f"{commit} + uncommitted changes in the work tree" if dirty else commit


RESULTS_HEADER = """\
# Benchmark results

The streaming entries (`## <date>: <target>, N streams`) are appended by `bench/streams.py --record`;
see its docstring for what it runs. Their columns:

- **app CPU s**: user + system CPU seconds of the server process (Folyam, or the seed relay) during
  the run, from /proc/<pid>/stat (10 ms resolution); the client and the fake upstream are other processes.
- **upstream tokens**: completion chunks of all answers (the "Chunks" of Folyam's timing fragment; for
  the seed relay, its content events).
- **CPU µs/token**, **CPU µs/event**: app CPU divided by upstream tokens, by delivered SSE data frames.
- **TTFE**: time to first event, from sending the question (the POST) to the first SSE data frame.
- **max gap p99**: the 99th percentile over streams of each stream's longest gap between two events.
- **stream p50**: the median time from sending the question to the stream's end.
- **peak RSS**: VmHWM of the server process (since its start, warm-up and earlier rounds included).

The client, the app and the upstream share this machine's cores, so the latency columns include
contention with the client; the CPU columns count the server process alone. Each entry also gives the
CPU that other processes used during the run (with `--max-other-cpu`, disturbed rounds are run again)
and the bytes of the event streams. CPU per token depends on concurrency and pace (a busier event loop
handles more chunks per wake-up, and a saturated app coalesces more per event): compare like with like.
"""


def record(
    args: argparse.Namespace, m: Measurement, rounds: Sequence[Measurement], cells: Sequence[str], speed: str
) -> None:
    facts = [f"app revision: {revision(args)}", speed, *details(m, rounds)]
    append_record(f"{target_name(args)}, {args.streams} streams", facts, table(cells))


def append_record(title: str, facts: Sequence[str], text: str) -> None:
    """A result at the end of bench/RESULTS.md: a dated heading, the command and the machine, `facts` (a
    bullet each), then `text`. Every bench script records this way."""
    date = datetime.now(UTC).strftime("%a %b %d %H:%M:%S UTC %Y")  # as `date -u` prints it
    entry = "" if RESULTS.exists() else RESULTS_HEADER
    entry += "\n".join(
        [
            "",
            f"## {date}: {title}",
            "",
            f"- command: `{shlex.join(sys.orig_argv)}`",
            f"- machine: {machine()}",
            *(f"- {fact}" for fact in facts),
            "",
            text,
            "",
        ]
    )
    with RESULTS.open("a") as out:
        out.write(entry)
    print(f"\nrecorded in {RESULTS.relative_to(ROOT)}")


# --- command line ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams (default 200)")
    parser.add_argument("--provider", choices=["demo", "openai"], help="Folyam's provider (default demo)")
    parser.add_argument("--seed", action="store_true", help="measure the seed relay (FastAPI) instead of Folyam")
    parser.add_argument("--pin", help="pin the app (or the seed) to these CPUs with taskset, e.g. 1 or 0-1")
    parser.add_argument(
        "--workers", type=int, default=1, help="app worker processes (more than 1: with a redis-server of its own)"
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="with one worker too: the scale-out machinery's own cost, apart from the processes' sharing a core",
    )
    parser.add_argument("--chunks", type=int, default=500, help="fake upstream's chunks per answer (default 500)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="tokens per second of the demo or the fake upstream (0: no delay)",
    )
    parser.add_argument(
        "--paragraph", type=int, default=0, help="fake upstream's chunks per paragraph (default 0: one paragraph)"
    )
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="demo's first-token delay, s")
    parser.add_argument(
        "--flush-interval", type=float, help="Folyam's flush interval, s (default: the app's, which grows with load)"
    )
    parser.add_argument("--ramp", type=float, default=0.0, help="spread the streams' starts over this many s")
    parser.add_argument(
        "--waves",
        type=int,
        default=1,
        help="answers each stream's visitor asks, one after another (a new visitor each time): a short load "
        "made long enough to measure, as CPU time is read in 10 ms ticks (default 1)",
    )
    parser.add_argument("--warmup", type=int, default=5, help="sequential streams before measuring (default 5)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measured rounds; the median by CPU per token is reported"
    )
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        help="run a round again when other processes used more than this %% of one core meanwhile",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="limit on the measured run, s")
    parser.add_argument("--app-rev", help="run the app as committed at this revision (e.g. HEAD), not the work tree")
    parser.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    parser.add_argument("--profile", type=Path, help="sample the app with py-spy into this file (raw format)")
    args = parser.parse_args(argv)
    if args.seed and args.provider == "demo":
        parser.error("--seed relays the fake OpenAI upstream; it has no demo provider")
    args.provider = "openai" if args.seed else (args.provider or "demo")
    if not 1 <= args.streams <= MAX_STREAMS:
        parser.error(f"--streams must be between 1 and {MAX_STREAMS}")
    if args.chunks < 1 or args.timeout <= 0 or not 1 <= args.repeat <= 20 or not 1 <= args.waves <= 100:
        parser.error("--chunks and --timeout must be positive, --repeat between 1 and 20, --waves between 1 and 100")
    if min(args.paragraph, args.rate, args.flush_interval or 0, args.first_token_delay, args.ramp) < 0:
        parser.error("--paragraph, --rate, --flush-interval, --first-token-delay and --ramp must not be negative")
    if args.record and args.profile:
        parser.error("a profiled run is slowed by the sampler and cannot be recorded")
    args.app_dir, args.app_sha = export_revision(args.app_rev) if args.app_rev else (ROOT, None)
    return args


def keep_off_the_app_cores(args: argparse.Namespace) -> None:
    """With --pin, this client and the fake upstream (started from here) run on the other cores: on
    the app's core they took turns with it, and its latency figures swung from run to run."""
    if args.pin is None:
        return
    app_cores = {int(cpu) for part in str(args.pin).split(",") for cpu in expand_range(part)}
    others = os.sched_getaffinity(0) - app_cores
    if others:
        os.sched_setaffinity(0, others)


def expand_range(part: str) -> range:
    first, _, last = part.partition("-")
    return range(int(first), int(last or first) + 1)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    speed = machine_speed(args.pin)
    keep_off_the_app_cores(args)
    rounds = run(args)
    measurement = median_round(rounds)
    cells = row(args, measurement)
    print(table(cells))
    print("\n".join([speed, *details(measurement, rounds)]))
    if args.record:
        record(args, measurement, rounds, cells, speed)
    if any(m.errors for m in rounds):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
