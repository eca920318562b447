"""Renderer benchmark: CPU to stream markdown answers of ~1k, 10k and 50k tokens, token by token,
through the incremental renderer, against re-rendering the whole text on every delta.

    .venv/bin/python bench/render.py            # prints a markdown table
    .venv/bin/python bench/render.py --record   # and appends it to bench/RESULTS.md

The full re-render baseline is too slow to run to the end at 50k tokens (it is quadratic), so it is
measured on evenly spaced prefixes and integrated over the answer (the trapezoid rule).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components import make_environment  # noqa: E402
from folyam.markdown import MarkdownPipeline  # noqa: E402

TOKEN = re.compile(r"\s*\S+|\s+")

SECTION = """\
## Section {n}: how rivers carry sediment

Rivers move sediment in three ways: *dissolved load*, **suspended load** and bed load. The balance \
depends on the `discharge`, the slope and the grain size; see [the survey](https://example.org/{n}) \
for measurements taken over {n} seasons.

- Dissolved ions travel with the water itself.
- Fine silt stays suspended while the flow is turbulent.
  - Clay flocculates where fresh water meets the sea.
- Sand and gravel roll or hop along the bed.

| Load | Typical share | Speed |
| --- | ---: | :---: |
| dissolved | 10–40 % | water speed |
| suspended | 60–90 % | slightly slower |
| bed | 1–10 % | much slower |

```python
def transport_capacity(discharge: float, slope: float, k: float = {n}.0) -> float:
    \"\"\"A toy sediment rating curve.\"\"\"
    return k * discharge ** 1.5 * slope
```

> Deltas form where a river loses the energy to keep its load moving.

"""


def answer(tokens: int) -> list[str]:
    pieces: list[str] = []
    n = 0
    while len(pieces) < tokens:
        n += 1
        pieces.extend(TOKEN.findall(SECTION.format(n=n)))
    return pieces[:tokens]


def incremental_cpu(pipeline: MarkdownPipeline, pieces: list[str]) -> float:
    renderer = pipeline.renderer()
    start = time.process_time()
    for piece in pieces:
        renderer.feed(piece)
    renderer.finish()
    return time.process_time() - start


def full_rerender_cpu(pipeline: MarkdownPipeline, pieces: list[str], samples: int = 40) -> float:
    """Estimated CPU of rendering the whole text so far after every delta."""
    lengths = sorted({max(1, round(len(pieces) * i / samples)) for i in range(samples + 1)})
    costs: dict[int, float] = {}
    for length in lengths:
        text = "".join(pieces[:length])
        start = time.process_time()
        pipeline.render(text)
        costs[length] = time.process_time() - start
    total = 0.0
    for a, b in itertools.pairwise(lengths):
        total += (costs[a] + costs[b]) / 2 * (b - a)
    return total


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )  # fmt: skip
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    pipeline = MarkdownPipeline(make_environment())
    incremental_cpu(pipeline, answer(2000))  # warm up lexers and caches

    rows = []
    per_token: dict[int, float] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        pieces = answer(size)
        cpu = incremental_cpu(pipeline, pieces)
        baseline = full_rerender_cpu(pipeline, pieces)
        per_token[size] = cpu / size
        rows.append(
            f"| {size:,} | {cpu:.2f} s | {cpu / size * 1e6:.0f} µs | {baseline:,.1f} s (est.) | {cpu / baseline:.2%} |"
        )
    smallest, largest = min(per_token), max(per_token)
    table = "\n".join(
        [
            "| Tokens | Incremental CPU | per token | Full re-render per delta | Incremental / full |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    verdict = (
        f"CPU per token at {largest:,} tokens is {per_token[largest] / per_token[smallest]:.2f}× "
        f"the figure at {smallest:,} (target ≤ 1.5×)."
    )
    print(table)
    print(verdict)
    if args.record:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        with (ROOT / "bench" / "RESULTS.md").open("a") as results:
            results.write(
                f"\n## Renderer: incremental markdown vs full re-render ({datetime.date.today()}, "
                f"commit {commit.stdout.strip()})\n\n"
                f"Machine: {machine()}. Command: `.venv/bin/python bench/render.py`. One delta per token "
                "(the worst case: no coalescing).\n\n"
                f"{table}\n\n{verdict}\n"
            )


if __name__ == "__main__":
    main()
