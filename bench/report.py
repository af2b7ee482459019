"""The report's rendering: ``docs/benchmarks/README.md`` from the templates in ``bench/templates/``, and the charts.

The sections (:mod:`bench.report_sections`) compute the numbers and verdicts and hand them to their
template, one per section; the templates hold the prose. A template wraps its paragraphs over
several lines for reading; :func:`markdown` joins each paragraph, list item and table row back into
one line, as README.md has always had them, so a diff of the report shows what changed, not where a
line broke. Writing a template: a block tag on a line of its own leaves nothing (``trim_blocks``,
``lstrip_blocks``), a line break in a paragraph becomes a space, ``{%-``/``{{-`` glue what follows
to the text before (a clause that starts with ``,`` or ``;``), and ``+%}`` keeps the line break
after a tag that ends a line. Numbers are written with the filters below: ``f`` (a format spec:
``x|f(".2f")``), ``num``, ``mb``, ``ratio``, ``verdict``, and ``cell`` for free text in a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


def num(value: float | None, digits: int = 0) -> str:
    """``1,477``; ``n/a`` for a number that was not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _cell(text: object) -> str:
    """Free text (an error message) made safe for a table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_ENV.filters.update(
    f=format,
    num=num,
    mb=lambda value: f"{value / 1e6:,.1f} MB",
    ratio=lambda value: f"{value:.2f}x",
    verdict=lambda ok: "**yes**" if ok else "**no**",
    cell=_cell,
)


def render(section: str, **context: Any) -> str:
    """One section's Markdown: ``templates/<section>.md.j2`` with the numbers the section computed."""
    return _ENV.get_template(f"{section}.md.j2").render(**context)


_BLOCKS = ("|", "#", "![", "```", "- ")
"""How a line that starts a block of its own begins (a table row, a heading, an image, a fence, a list item);
any other line continues the paragraph or list item before it."""


def _starts(previous: str) -> str | tuple[str, ...]:
    """What starts a new block after ``previous``: after a table row, only the next row (a cell of ``-``
    continues the row)."""
    return "|" if previous.startswith("|") else _BLOCKS


def markdown(text: str) -> str:
    """Rendered templates as README.md writes them: a paragraph, list item or table row on one line,
    one blank line between blocks, fenced code as it is."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            pass
        elif not line:
            if out and not out[-1]:
                continue
        elif out and out[-1] and not out[-1].startswith(("#", "![", "```")) and not line.startswith(_starts(out[-1])):
            out[-1] += " " + line
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"


# -- charts -------------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(
    path: Path,
    panels: Sequence[tuple[str, list[str], list[float], list[tuple[float, float]] | None]],
    ylabel: str,
    title: str,
) -> None:
    """One panel per (title, labels, values, (low, high) ranges or None)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    colours = ["#2b6cb0", "#63b3ed", "#dd6b20", "#718096", "#38a169"]
    for ax, (name, labels, values, ranges) in zip(axes[0], panels, strict=True):
        xs = list(range(len(labels)))
        bars = ax.bar(xs, values, color=[colours[i % len(colours)] for i in xs])
        if ranges:
            low = [v - lo for v, (lo, _) in zip(values, ranges, strict=True)]
            high = [hi - v for v, (_, hi) in zip(values, ranges, strict=True)]
            ax.errorbar(xs, values, yerr=[low, high], fmt="none", ecolor="black", capsize=4, linewidth=1)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                f"{value:,.3g}" if value < 10 else f"{value:,.0f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def line_chart(
    path: Path, series: dict[str, tuple[list[float], list[float]]], xlabel: str, ylabel: str, title: str
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=".", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cdf_chart(path: Path, series: dict[str, list[float]], xlabel: str, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, values in series.items():
        ordered = sorted(values)
        if not ordered:
            continue
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(ordered, ys, where="post", label=name)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of messages")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
