"""The outputs every case writes: report.md with a side-by-side methods table and checked claims, metrics.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence

from physinv.core.io import atomic_write_json, atomic_write_text


def methods_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A markdown table, one row per method (cells already formatted, or anything ``str`` can write)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def checks_table(checks: Iterable[tuple[str, bool]], title: str = "claim checked") -> str:
    """Claims and whether they hold in this run."""
    return methods_table([title, ""], [(text, "holds" if ok else "does NOT hold") for text, ok in checks])


def command_line(name: str) -> str:
    """The command that ran this case, as a user would type it."""
    return f"python cases/{name}.py {' '.join(sys.argv[1:])}".rstrip()


def write_results(out: Path, metrics: dict, report: str) -> None:
    """``DIR/report.md`` and ``DIR/metrics.json`` (flat: metric name -> number), written atomically."""
    atomic_write_text(out / "report.md", report)
    atomic_write_json(out / "metrics.json", metrics)
