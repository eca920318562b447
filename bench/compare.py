"""Folyam against the seed relay it replaced, in one run: the three loads of issue 11, and the capacity
check at 80 % of the goal, each server pinned to one core, both through the fake OpenAI upstream. With
`--repeat N` the two servers take turns, round by round, and "÷ seed" is the median of the rounds' ratios.

    .venv/bin/python bench/compare.py            # prints the table
    .venv/bin/python bench/compare.py --record   # and appends it to bench/RESULTS.md
    .venv/bin/python bench/compare.py --quick    # smaller loads, for a look while changing code

Loads (200-token answers; every visitor loads the page, asks, and reads its stream to the end, all of it
measured, see bench/streams.py):

- full speed: the upstream sends as fast as it can, 20 answers at once, 10 times over (200 answers:
  20 answers alone cost ~0.1 s of CPU, which the kernel counts in 10 ms ticks);
- real pace: a token every 20 ms (50 tokens/s), 60 answers at once;
- 500 at 50/s: 500 answers at 50 tokens/s started over 2 s (the goal: one core keeps up);
- 400 at 50/s: the same with 400 answers (80 % of the goal), Folyam's row only: first event p99 ≤ 1 s,
  the longest gap between two events of an answer p99 ≤ 250 ms, stream p50 ≤ 4.5 s (ideal 4 s).

With `--workers 2` Folyam runs two worker processes with Redis, pinned to two cores (the client and the
upstream then share those cores too).

This machine's speed swings two- or threefold from hour to hour, and the issue set its ≤ 40 µs per token
on the day it measured the seed ("i.e." at most 0.2 times the seed's CPU per token at a real pace and 0.15
times at full speed). So every Folyam round follows a round of the seed (at 400 answers, the seed's
500-answer load, which the issue measured), and the last column is Folyam's CPU per token at that day's
speed: the median of the rounds' Folyam ÷ seed times the issue's figure for the seed (left blank unless
the run is like the issue's: 200-token answers, one worker). That figure is only as steady as the ratio:
the seed's cost does not follow the machine's phase exactly as Folyam's does.
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

from bench import streams  # noqa: E402


@dataclass(frozen=True)
class Load:
    name: str
    streams: int
    rate: float
    ramp: float
    waves: int = 1  # each visitor asks this many questions, one after another
    issue_seed: float | None = None  # the seed's CPU µs per token at this load, as issue 11 measured it
    # The load the seed's rounds run at, when not this one (and then the seed's row is not shown: the
    # rounds only measure the machine's speed meanwhile).
    seed_at: Load | None = None

    @property
    def seed_load(self) -> Load:
        return self.seed_at or self


CAPACITY = Load("50 tokens/s, 500 started over 2 s", 500, 50, 2, issue_seed=43_500 / 200)  # 43.5 ms per answer
LOADS = (
    Load("full speed, 20 at once", 20, 0, 0, waves=10, issue_seed=210.0),
    Load("50 tokens/s, 60 at once", 60, 50, 0, issue_seed=270.0),
    CAPACITY,
    Load("50 tokens/s, 400 started over 2 s", 400, 50, 2, seed_at=CAPACITY),
)
QUICK = LOADS[:2]
COLUMNS = (
    "load",
    "server",
    "errors",
    "CPU µs/token",
    "÷ seed",
    "events/answer",
    "first event p50 / p99 ms",
    "max gap p99 ms",
    "stream p50 / p99 s",
    "wall s",
    "µs/token at the issue's speed",
)


def measure(load: Load, *, seed: bool, args: argparse.Namespace, repeat: int) -> list[streams.Measurement]:
    argv = [
        "--streams", str(load.streams), "--chunks", str(args.chunks), "--rate", str(load.rate),
        "--ramp", str(load.ramp), "--repeat", str(repeat), "--warmup", "5", "--waves", str(load.waves),
        "--pin", args.pin,
    ]  # fmt: skip
    argv += ["--seed"] if seed else ["--provider", "openai", "--workers", str(args.workers)]
    if args.app_rev and not seed:
        argv += ["--app-rev", args.app_rev]
    options = streams.parse_args(argv)
    return streams.run(options)


@dataclass(frozen=True)
class Compared:
    folyam: streams.Measurement
    seed: streams.Measurement  # at the load's seed_load
    ratios: list[float]  # each round's Folyam ÷ the seed's round just before it, in order

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def at_issue_speed(self, load: Load) -> float | None:
        """Folyam's CPU µs per token on the day of issue 11: as much as the seed's then, times the ratio."""
        then = load.seed_load.issue_seed
        return self.ratio * then if then is not None else None

    def facts(self, load: Load, *, issue_like: bool) -> str:
        """For the record: the rounds' ratios, and the seed's cost (against the issue's figure for it, when
        the run is like the issue's)."""
        seed = load.seed_load
        text = f"{load.name}: Folyam ÷ seed{f' at {seed.streams} answers' if load.seed_at else ''} per round "
        text += ", ".join(f"{r:.3f}" for r in self.ratios)
        text += f"; the seed {self.seed.cpu_per_token:.1f} µs per token"
        if issue_like and seed.issue_seed is not None:
            text += f", {self.seed.cpu_per_token / seed.issue_seed:.2f}× the issue's {seed.issue_seed:g}"
        return text


def compare(load: Load, args: argparse.Namespace, *, issue_like: bool) -> Compared:
    """The load's rounds, the seed's and Folyam's taking turns (seed, Folyam, seed, …): this machine's
    speed drifts by half from one minute to the next, and a ratio of two runs minutes apart carried the
    drift. Each round is compared with the seed's just before it; the median ratio is shown (of every
    round: the table's rows are the median rounds of each server, which may be different rounds)."""
    seeds: list[streams.Measurement] = []
    folyams: list[streams.Measurement] = []
    for _ in range(args.repeat):
        seeds += measure(load.seed_load, seed=True, args=args, repeat=1)
        folyams += measure(load, seed=False, args=args, repeat=1)
    compared = Compared(
        streams.median_round(folyams),
        streams.median_round(seeds),
        [f.cpu_per_token / s.cpu_per_token for s, f in zip(seeds, folyams, strict=True)],
    )
    print(compared.facts(load, issue_like=issue_like), flush=True)
    return compared


def figures(m: streams.Measurement) -> dict[str, str]:
    """A measurement's figures, by column name (bench/scaling.py shows them too)."""
    ok = [r for r in m.results if r.error is None]
    first = [r.first_event for r in ok if r.first_event is not None]
    durations = [r.duration for r in ok]
    return {
        "errors": str(len(m.results) - len(ok)),
        "CPU µs/token": f"{m.cpu_per_token:.1f}",
        "events/answer": f"{sum(r.events for r in ok) / max(1, len(ok)):.0f}",
        "first event p50 / p99 ms": (
            f"{streams.percentile(first, 50) * 1000:.0f} / {streams.percentile(first, 99) * 1000:.0f}"
        ),
        "max gap p99 ms": f"{streams.percentile([r.max_gap for r in ok], 99) * 1000:.0f}",
        "stream p50 / p99 s": f"{streams.percentile(durations, 50):.1f} / {streams.percentile(durations, 99):.1f}",
        "wall s": f"{m.wall:.1f}",
    }


def cells(load: Load, server: str, m: streams.Measurement, compared: Compared | None, *, issue_like: bool) -> list[str]:
    """A row; `compared` for Folyam's (its ratio, and its figure at the issue's speed when the run is like
    the issue's: 200-token answers, one worker)."""
    at_issue_speed = compared.at_issue_speed(load) if compared is not None and issue_like else None
    row = {
        "load": load.name,
        "server": server,
        "÷ seed": f"{compared.ratio:.2f}" if compared is not None and load.seed_at is None else "",
        "µs/token at the issue's speed": f"{at_issue_speed:.1f}" if at_issue_speed is not None else "",
        **figures(m),
    }
    return [row[column] for column in COLUMNS]


def table(rows: Sequence[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=200, help="tokens per answer (default 200)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds per load (the two servers take turns); the medians are shown"
    )
    parser.add_argument("--workers", type=int, default=1, help="Folyam's worker processes (2: with Redis)")
    parser.add_argument("--pin", help="CPU list the servers are pinned to (default: 1, or 0-1 for 2 workers)")
    parser.add_argument("--app-rev", help="measure Folyam as committed at this revision")
    parser.add_argument("--quick", action="store_true", help="only the two small loads")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    args.pin = args.pin or ("1" if args.workers == 1 else "0-1")
    speed = streams.machine_speed(args.pin)
    print(speed)
    streams.keep_off_the_app_cores(args)
    # The issue's figures for the seed are for 200-token answers, each server on one core.
    issue_like = args.chunks == 200 and args.workers == 1
    rows = []
    rounds: list[str] = []  # each load's rounds, for the record
    for load in QUICK if args.quick else LOADS:
        compared = compare(load, args, issue_like=issue_like)
        rounds.append(compared.facts(load, issue_like=issue_like))
        if load.seed_at is None:
            rows.append(cells(load, "seed (FastAPI + openai SDK)", compared.seed, None, issue_like=issue_like))
        workers = f", {args.workers} workers + Redis" if args.workers > 1 else ""
        rows.append(cells(load, f"Folyam{workers}", compared.folyam, compared, issue_like=issue_like))
        print(table(rows[-2 if load.seed_at is None else -1 :]), flush=True)
    text = table(rows)
    print("\n" + text)
    if args.record:
        facts = [
            f"app revision: {args.app_rev or streams.git('rev-parse', '--short', 'HEAD')}",
            f"servers pinned to CPU {args.pin} (taskset); the client and the fake upstream on the other cores",
            speed,
            *rounds,
        ]
        streams.append_record("Folyam against the seed relay (bench/compare.py)", facts, text)


if __name__ == "__main__":
    main()
