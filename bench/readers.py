"""Readers in another process: what following answers through the Redis event log costs the process
whose browsers read them (behind a load balancer, most event streams reach another process than the
question did). A writer process appends events to S streams at a busy process's pace (one every 150 ms
per stream, each a rendered tail's size); a reader process, pinned to one core, follows every stream
with R readers each, through the same `RedisEventLog` the app uses. Reported: the reader process's CPU
per event it delivers once every reader has joined, the Redis connections it holds while following, how
late events reach it, and the writer's CPU per event it appends (its batches to Redis, as the process
running the answers pays; with the bench's own pacing and framing, and the streams' closing at the end).

    .venv/bin/python bench/readers.py                         # 200 streams, 1 reader each
    .venv/bin/python bench/readers.py --root /tmp/old --record  # another checkout's event log
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import streams  # noqa: E402

_FLUSH_TICK = 0.025  # the app's flush clock (folyam/runner.py)


async def write(url: str, count: int, interval: float, events: int, frame_bytes: int) -> None:
    from folyam.event_log import Event
    from folyam.redis_coordination import redis_client
    from folyam.redis_event_log import RedisEventLog

    client = redis_client(url)
    log = RedisEventLog(client, retention=600, open_for=600)
    ids = [f"s{n}" for n in range(count)]
    for stream_id in ids:
        log.open(stream_id)
    await log.flush()
    print("ready", flush=True)
    sys.stdin.readline()  # the readers follow: go
    started = time.process_time()
    loop = asyncio.get_running_loop()
    start = loop.time()
    ticks = max(1, round(interval / _FLUSH_TICK))
    for seq in range(1, events + 1):
        # The streams' events spread over the interval on the app's flush clock, as answers started
        # apart flush: a share of the streams on each tick.
        for tick in range(ticks):
            at = start + (seq - 1 + tick / ticks) * interval
            await asyncio.sleep(max(0.0, at - loop.time()))
            stamp = f"{time.time():.6f}".encode()
            for stream_id in ids[tick::ticks]:
                log.append(stream_id, Event(seq, stamp + b" " + b"x" * frame_bytes))
    for stream_id in ids:
        log.close(stream_id)
    await log.aclose()
    print(time.process_time() - started, flush=True)
    await client.aclose()


async def read(url: str, count: int, readers: int) -> tuple[float, int, list[float], int]:
    from folyam.redis_coordination import redis_client
    from folyam.redis_event_log import RedisEventLog

    client = redis_client(url)
    log = RedisEventLog(client, retention=600, open_for=600)
    delays: list[float] = []

    async def follow(stream_id: str) -> int:
        seen = 0
        async for batch in log.follow(stream_id, 0, idle_timeout=15):
            now = time.time()
            for event in batch:
                delays.append(now - float(event.frame.split(b" ", 1)[0]))
            seen += len(batch)
        return seen

    tasks = [asyncio.create_task(follow(f"s{n}")) for n in range(count) for _ in range(readers)]
    await asyncio.sleep(1.0)
    connections = sum(1 for c in await client.client_list() if "b" in c["flags"])
    # From here: following, not joining (each reader's first XRANGE, many at once, opens the pool's
    # connections: a cost of the start, not of each event).
    started = time.process_time()
    print("following", flush=True)
    seen = sum(await asyncio.gather(*tasks))
    cpu = time.process_time() - started
    await log.aclose()
    await client.aclose()
    return cpu, seen, delays, connections


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=200, help="streams followed (default 200)")
    parser.add_argument("--readers", type=int, default=1, help="readers of each stream (default 1)")
    parser.add_argument("--events", type=int, default=40, help="events per stream (default 40: 6 s)")
    parser.add_argument("--interval", type=float, default=0.15, help="s between a stream's events (default 0.15)")
    parser.add_argument("--frame-bytes", type=int, default=300, help="bytes per event (default 300)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose event log is measured")
    parser.add_argument("--pin", default="1", help="the reader process's CPU (default 1)")
    parser.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    parser.add_argument("--role", choices=["writer", "reader"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role is not None:
        sys.path.insert(0, str(args.root))
        if args.role == "writer":
            asyncio.run(write(args.url, args.streams, args.interval, args.events, args.frame_bytes))
        else:
            cpu, seen, delays, connections = asyncio.run(read(args.url, args.streams, args.readers))
            print(f"{cpu} {seen} {statistics.median(delays)} {streams.percentile(delays, 99)} {connections}")
        return
    os.sched_setaffinity(0, os.sched_getaffinity(0) - {int(args.pin)} or os.sched_getaffinity(0))
    own = [sys.executable, __file__, "--streams", str(args.streams), "--root", str(args.root), "--url"]
    with tempfile.TemporaryDirectory() as directory, streams.redis_for_bench(Path(directory)) as url:
        shape = ["--events", str(args.events), "--interval", str(args.interval), "--frame-bytes", str(args.frame_bytes)]
        writer = subprocess.Popen(
            [*own, url, "--role", "writer", *shape], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdin is not None
        writer.stdout.readline()  # ready
        reader = subprocess.Popen(
            ["taskset", "-c", args.pin, *own, url, "--role", "reader", "--readers", str(args.readers)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        reader.stdout.readline()  # following
        writer.stdin.write("go\n")
        writer.stdin.flush()
        result = reader.stdout.readline().split()
        writer_cpu = float(writer.stdout.readline())
        reader.wait(timeout=60)
        writer.wait(timeout=60)
    cpu, seen, p50, p99, connections = float(result[0]), int(result[1]), *map(float, result[2:4]), int(result[4])
    expected = args.streams * args.readers * args.events
    line = (
        f"| {args.streams} × {args.readers} | {seen} of {expected} | {cpu * 1e6 / max(1, seen):.1f} | {connections} |"
        f" {p50 * 1000:.0f} / {p99 * 1000:.0f} | {writer_cpu * 1e6 / (args.streams * args.events):.1f} |"
    )
    header = (
        "| streams × readers | events read | reader CPU µs/event | blocked Redis connections | delay p50 / p99 ms |"
        " writer CPU µs/event |"
    )
    text = "\n".join([header, "|---|---|---|---|---|---|", line])
    revision = streams.git("-C", str(args.root), "rev-parse", "--short", "HEAD")
    print(f"{args.root} at {revision}\n{text}")
    if args.record:
        facts = [f"event log of {args.root} at {revision}; the reader pinned to CPU {args.pin}"]
        streams.append_record("readers in another process (bench/readers.py)", facts, text)


if __name__ == "__main__":
    main()
