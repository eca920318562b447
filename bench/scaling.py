"""Scale-out on a small machine: does an answer cost the same when several worker processes share the
site through Redis? Issue 11 asks for N workers to serve ≈ N times the answers of one; on a machine with few
cores the benchmark's client and fake upstream need cores too, so this measures the costs that decide it
instead, on the same core(s), three setups taking turns round by round:

- one worker with L answers at once (the embedded event log, no Redis);
- one worker with L answers, sharing everything through a redis-server of its own (event log, stops,
  leases, running counts, rate limits), as each of N workers would: the scale-out machinery's own cost;
- N workers sharing Redis with N·L answers at once, so each process runs about L, as it would with a
  core of its own (the flush interval follows a process's own answers), here all on the same core(s).

"÷ one worker" is the median of the rounds' ratios of CPU per token (all the workers' CPU). N workers on N
cores serve about N ÷ the second setup's ratio times the answers of one. The third also pays for N
processes taking turns on one core (their caches, the switches), which workers on cores of their own
would not. The machine's speed drifts from one round to the next: take several runs' rounds together.
The redis-server's own CPU is not in these: it is among the machine's other processes, shown apart (with
one worker and no Redis, that column is whatever else ran).

    .venv/bin/python bench/scaling.py                 # L = 100, N = 2, on CPU 1
    .venv/bin/python bench/scaling.py --repeat 5 --record
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import compare, streams  # noqa: E402

COLUMNS = (
    "setup",
    "answers",
    "errors",
    "CPU µs/token",
    "÷ one worker",
    "other processes µs/token",
    "events/answer",
    "first event p50 / p99 ms",
    "max gap p99 ms",
    "stream p50 / p99 s",
)


@dataclass(frozen=True)
class Setup:
    name: str
    workers: int
    redis: bool


def measure(args: argparse.Namespace, setup: Setup) -> streams.Measurement:
    argv = [
        "--provider", "openai", "--streams", str(args.streams * setup.workers), "--chunks", str(args.chunks),
        "--rate", str(args.rate), "--ramp", str(args.ramp), "--waves", str(args.waves), "--warmup", "5",
        "--pin", args.pin, "--workers", str(setup.workers),
    ]  # fmt: skip
    [measurement] = streams.run(streams.parse_args(argv + (["--redis"] if setup.redis else [])))
    return measurement


def cells(setup: str, answers: int, m: streams.Measurement, ratio: float | None) -> list[str]:
    row = {
        "setup": setup,
        "answers": str(answers),
        "÷ one worker": f"{ratio:.2f}" if ratio is not None else "",
        "other processes µs/token": f"{m.other_cpu * 1e6 / m.tokens:.1f}" if m.tokens else "n/a",
        **compare.figures(m),
    }
    return [row[column] for column in COLUMNS]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the shared setup (default 2)")
    parser.add_argument("--streams", type=int, default=100, help="answers at once per process (default 100)")
    parser.add_argument("--chunks", type=int, default=200, help="tokens per answer (default 200)")
    parser.add_argument("--rate", type=float, default=50, help="tokens per second (default 50)")
    parser.add_argument("--ramp", type=float, default=2, help="the answers start over this many s (default 2)")
    parser.add_argument("--waves", type=int, default=2, help="answers each visitor asks in turn (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each setup, taking turns (default 3)")
    parser.add_argument("--pin", default="1", help="CPU list for every worker, in every setup (default 1)")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers: at least 2")
    speed = streams.machine_speed(args.pin)
    print(speed)
    streams.keep_off_the_app_cores(args)
    setups = (
        Setup("1 worker", 1, redis=False),
        Setup("1 worker + Redis", 1, redis=True),
        Setup(f"{args.workers} workers + Redis", args.workers, redis=True),
    )
    rounds: dict[Setup, list[streams.Measurement]] = {setup: [] for setup in setups}
    for _ in range(args.repeat):
        for setup in setups:
            rounds[setup].append(measure(args, setup))
    alone = rounds[setups[0]]
    ratios: dict[Setup, list[float]] = {
        setup: sorted(m.cpu_per_token / a.cpu_per_token for a, m in zip(alone, rounds[setup], strict=True))
        for setup in setups[1:]
    }
    rows = [cells(setups[0].name, args.streams, streams.median_round(alone), None)]
    for setup, setup_ratios in ratios.items():
        print(f"{setup.name} ÷ 1 worker, per round: {', '.join(f'{r:.2f}' for r in setup_ratios)}")
        ratio = statistics.median_low(setup_ratios)
        rows.append(cells(setup.name, args.streams * setup.workers, streams.median_round(rounds[setup]), ratio))
    machinery, shared = (statistics.median_low(r) for r in ratios.values())
    verdict = (
        f"{args.workers} workers on {args.workers} cores: ≈ {args.workers / machinery:.1f}× the answers of one"
        f" (from the rounds of {args.workers} workers sharing a core: {args.workers / shared:.1f}×)"
    )
    text = compare.table(rows, COLUMNS)
    print(f"\n{text}\n\n{verdict}")
    if args.record:
        facts = [
            f"app revision: {streams.git('rev-parse', '--short', 'HEAD')}",
            f"every worker pinned to CPU {args.pin} (taskset); the client, the fake upstream and redis-server on"
            " the other cores",
            speed,
            *(
                f"per round, {setup.name} ÷ 1 worker: {', '.join(f'{r:.2f}' for r in setup_ratios)}"
                for setup, setup_ratios in ratios.items()
            ),
            verdict,
        ]
        streams.append_record(f"one worker against {args.workers} sharing Redis (bench/scaling.py)", facts, text)


if __name__ == "__main__":
    main()
