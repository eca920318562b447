"""Renderer benchmark: CPU per token to stream answers of each block shape (prose, long lists, ordered
lists, tables, fences, blockquotes, …) token by token through the incremental renderer, at ~800 and
~8,000 tokens, with every delta rendered (as at a slow model's pace, or FOLYAM_FLUSH_INTERVAL=0) and
with a few tokens coalesced per delta. The per-token cost must stay flat as an answer grows: at 8,000
tokens at most 1.5 times the figure at 800, for every shape.

    .venv/bin/python bench/render.py                      # prints a markdown table
    .venv/bin/python bench/render.py --record             # and appends it to bench/RESULTS.md
    .venv/bin/python bench/render.py --root /tmp/old      # another checkout's renderer (before/after)
    .venv/bin/python bench/render.py --shapes table,list --sizes 800,4000

It also reports what a finished answer's event log keeps (frames after compaction) against the
answer's text, from a run through the real generation runner and in-memory event log.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.shapes import shapes, tokens  # noqa: E402


def load(root: Path) -> tuple[Any, Any]:
    """The markdown module and the components package of a checkout (this one, or an older one to compare,
    whose components were still a top-level `components` package)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("folyam", "components")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        import folyam.markdown

        package = "folyam.components" if (root / "folyam" / "components").is_dir() else "components"
        components = importlib.import_module(package)
    finally:
        sys.path.remove(str(root))
    return folyam.markdown, components


def answer(shape: str, target_tokens: int) -> list[str]:
    """About `target_tokens` tokens of the shape (the block is as long as it takes)."""
    per_child = max(1, len(tokens(shapes(20)[shape])) // 20)
    return tokens(shapes(max(1, target_tokens // per_child))[shape])


def cpu_per_token(pipeline: Any, pieces: list[str], per_delta: int, budget: float) -> float | None:
    """µs of CPU per token, feeding `per_delta` tokens at a time; None when it ran past `budget` s."""
    renderer = pipeline.renderer()
    start = time.process_time()
    for i in range(0, len(pieces), per_delta):
        renderer.feed("".join(pieces[i : i + per_delta]))
        if time.process_time() - start > budget:
            return None
    renderer.finish()
    return (time.process_time() - start) / len(pieces) * 1e6


def retained(root: Path, text_pieces: list[str]) -> tuple[int, int]:
    """(bytes of text, bytes the event log keeps once the answer is finished), every token its own event."""
    from folyam.components import make_environment
    from folyam.event_log import MemoryEventLog
    from folyam.markdown import MarkdownPipeline
    from folyam.providers import TextDelta
    from folyam.settings import Settings

    class Scripted:
        model, is_demo = "bench", False

        async def stream(
            self, messages: Sequence[Any], *, max_tokens: int, model: str | None = None
        ) -> AsyncGenerator[TextDelta]:
            for piece in text_pieces:
                yield TextDelta(piece)

        async def aclose(self) -> None:
            return None

    async def run() -> int:
        from folyam.fragments import AnswerFragments, Endings
        from folyam.generations import Generation
        from folyam.runner import GenerationRun
        from folyam.store import ExchangeRecord

        env = make_environment()
        log = MemoryEventLog()
        settings = Settings(flush_interval=0.0, max_output_tokens=1_000_000)
        pipeline = MarkdownPipeline(env)
        generation = Generation(
            id="bench-generation",
            session_id="s",
            conversation_id="c",
            query="q",
            record=ExchangeRecord(
                "bench-generation", "c", "s", "r", "q", "", "running", "bench", datetime.datetime.now(datetime.UTC)
            ),
            slots={},
            renderer=pipeline.renderer(),
            reasoning_renderer=pipeline.renderer(),
        )
        log.open(generation.id)
        fragments = AnswerFragments(Endings(env, lambda session_id: "token"), generation.id)
        run = GenerationRun(generation, log, fragments, settings, generation.renderer)
        await run.execute(Scripted().stream([], max_tokens=0), model="bench")
        return int((await log.retained(generation.id)).bytes)

    return len("".join(text_pieces).encode()), asyncio.run(run())


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )  # fmt: skip
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="800,8000", help="answer lengths in tokens (default 800,8000)")
    parser.add_argument("--shapes", default=",".join(shapes(1)), help="which shapes (default all)")
    parser.add_argument("--coalesce", type=int, default=4, help="tokens per delta when coalesced (default 4)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose renderer to measure")
    parser.add_argument("--budget", type=float, default=120.0, help="give up on a run after this many CPU s")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    markdown, components = load(args.root)
    pipeline = markdown.MarkdownPipeline(components.make_environment())
    sizes = [int(s) for s in args.sizes.split(",")]
    small, large = min(sizes), max(sizes)
    cpu_per_token(pipeline, answer("prose", 2000), 1, args.budget)  # warm up lexers and caches

    each = " | ".join(f"{size:,} tok" for size in sizes)
    header = (
        f"| Shape | every delta: µs/token at {each} | ratio | {args.coalesce} tokens per delta: {each} | ratio "
        f"| log kept / text at {large:,} |"
    )
    rule = "|---" + "|---:" * (2 * len(sizes) + 3) + "|"
    print(header, rule, sep="\n", flush=True)
    rows = []
    for shape in args.shapes.split(","):
        cells = []
        for per_delta in (1, args.coalesce):
            figures = {size: cpu_per_token(pipeline, answer(shape, size), per_delta, args.budget) for size in sizes}
            cells += [f"{figures[size]:.0f}" if figures[size] is not None else "> budget" for size in sizes]
            low, high = figures[small], figures[large]
            cells.append(f"{high / low:.2f}×" if low and high else "–")
        text, kept = retained(args.root, answer(shape, large))
        cells.append(f"{kept / text:.1f}×")
        rows.append(f"| {shape} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    table = "\n".join([header, rule, *rows])
    if args.record:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=args.root)
        with (ROOT / "bench" / "RESULTS.md").open("a") as results:
            results.write(
                f"\n## Renderer by block shape ({datetime.date.today()}, {args.root.name} at commit "
                f"{commit.stdout.strip()})\n\n"
                f"Machine: {machine()}. Command: `.venv/bin/python bench/render.py "
                f"{' '.join(sys.argv[1:]).replace('--record', '').strip()}`. Token by token (a word and its "
                f"leading space), every delta rendered, then {args.coalesce} tokens per delta; the ratio is "
                f"the per-token cost at {large:,} tokens over that at {small:,} (target ≤ 1.5×). The last "
                "column: bytes the event log keeps for the finished answer, over the bytes of its text.\n\n"
                f"{table}\n"
            )


if __name__ == "__main__":
    main()
