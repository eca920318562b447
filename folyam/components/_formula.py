"""A formula: MathML made on the server from the model's LaTeX, or its source when it could not be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from markupsafe import Markup


@dataclass(frozen=True)
class Formula:
    """A formula: MathML, or its LaTeX source when it could not be converted."""

    template: ClassVar[str] = "folyam/formula.html"
    # The formula as the model wrote it, delimiters included: shown as code when `mathml` is None.
    source: str
    # A <math> element; None when the formula could not be converted, was too long, or is not closed yet.
    mathml: Markup | None
    # A block of its own (display math on its lines), which scrolls sideways when it is too wide.
    block: bool = False
