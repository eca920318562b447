"""Answers made of one long block of each kind (beside prose), for the renderer's tests and benchmark:
`shapes(n)` has each block `n` children (items, rows, lines, paragraphs) long."""

from __future__ import annotations

import re

TOKEN = re.compile(r"\s*\S+|\s+")


def _repeat(line: str, n: int) -> str:
    return "".join(line.format(i=i, n=i + 1) for i in range(n))


def shapes(n: int) -> dict[str, str]:
    return {
        "prose": _repeat("Paragraph {i} says a *little* about `rivers` and [deltas](https://x.org/{i}).\n\n", n),
        "list": "Intro\n\n" + _repeat("- item number {i} with *some* words\n", n) + "\nafter\n",
        "ordered list": _repeat("{n}. step {i}: run `cmd {i}` now\n", n) + "\nafter\n",
        "table": "| a | b | c |\n|---|:-:|--:|\n" + _repeat("| r{i} | **{i}** | x{i} |\n", n) + "\nafter\n",
        "fence": "```python\n" + _repeat("def f{i}(x):  # <{i}>\n    return x * {i}\n", n) + "```\n",
        "blockquote": _repeat("> paragraph {i} is *quoted* here\n>\n", n) + "\nafter\n",
        "fence in a list item": "1. Create it:\n   ```sh\n" + _repeat("   echo {i} > f{i}\n", n) + "   ```\n",
        "nested list": "- top\n" + _repeat("  - sub {i} *item*\n", n) + "\nafter\n",
        "soft-wrapped paragraph": _repeat("line {i} of one *long* paragraph\n", n) + "\nafter\n",
        "one long line": _repeat("word {i} *em* and `c{i}`; ", n) + "\n\nafter\n",
        "task list": _repeat("- [ ] task {i} with *some* words\n- [x] done {i}\n", (n + 1) // 2) + "\nafter\n",
        "math": _repeat("Step {i}: $x_{i}^2 + y$ and \\(a_{n}\\).\n\n$$\n\\frac{{{i}}}{{{n}}}\n$$\n\n", n),
        "lines with pipes": _repeat("cell {i} | more {i} | x\n", n) + "\nafter\n",
    }


def tokens(text: str) -> list[str]:
    """The text as a model sends it: a word with its leading space at a time."""
    return TOKEN.findall(text)
