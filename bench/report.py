"""The report: ``docs/benchmarks/README.md`` (which the docs include through myst-parser) and PNG charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    file: str
    alt: str


@dataclass
class Code:
    text: str


Block = Heading | Para | Bullets | Table | Image | Code


@dataclass
class Report:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# -- rendering --------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    out = [f"# {report.title}", ""]
    for block in report.blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.caption:
                out += [f"*{block.caption}*", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            out.append("|" + "|".join(" --- " for _ in block.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Image):
            out += [f"![{block.alt}]({block.file})", ""]
        elif isinstance(block, Code):
            out += ["```", block.text, "```", ""]
    return "\n".join(out).rstrip() + "\n"


# -- number formatting ---------------------------------------------------------------------------------
def mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def num(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def verdict(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


NOT_MEASURED = "**not measured**"
"""A target's verdict when the results hold nothing to judge it by."""


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
