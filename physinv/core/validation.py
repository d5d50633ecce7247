"""What every ``physinv validate NAME`` command line shares: the ``--json`` flag and the verdict as exit code."""

from __future__ import annotations

import argparse
import json
from typing import Callable


def verdict(ok: bool) -> str:
    """``ok`` or ``FAIL``, the word a report prints beside each checked number."""
    return "ok" if ok else "FAIL"


def validation_parser(name: str, description: str) -> argparse.ArgumentParser:
    """Parser for ``physinv validate NAME`` with ``--json``; the study adds its own flags."""
    parser = argparse.ArgumentParser(prog=f"physinv validate {name}", description=description)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def report_result(result: dict, as_json: bool, format_report: Callable[[dict], str], show: bool = True) -> int:
    """Print the result (JSON or the study's table) where ``show``; exit code 0 if it passed, else 1."""
    if show:
        print(json.dumps(result, indent=2) if as_json else format_report(result), flush=True)
    return 0 if result["passed"] else 1
