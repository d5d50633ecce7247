"""What every case study's command line shares (``cases/*.py`` stay thin).

Each case accepts ``--quick``, ``--out DIR`` (default ``results/NAME``),
``--device auto|cpu|cuda`` and ``--seed``; it exits 2 with a one-line message
on a :class:`~physinv.core.errors.PhysinvError` and ends by printing where its
outputs went and its headline metrics.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable

from physinv.core.device import DEVICE_CHOICES
from physinv.core.errors import PhysinvError


def case_parser(name: str, doc: str, quick_help: str, device_help: str | None = None) -> argparse.ArgumentParser:
    """Parser with the common flags; the case adds its own."""
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", default=f"results/{name}", help="output folder (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help=device_help)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def add_training_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--resume``, ``--no-progress`` and the hidden ``--smoke`` (tiny setting for the tests) of the learning cases."""
    parser.add_argument("--resume", action="store_true", help="continue training from DIR/models/*_train.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    return parser


def case_main(name: str, run: Callable[[argparse.Namespace], dict], args: argparse.Namespace,
              outputs: Iterable[str], keys: Iterable[str]) -> int:
    """Run the case, turn physinv errors into exit code 2, print outputs and metrics."""
    try:
        metrics = run(args)
    except PhysinvError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"\nwrote {args.out}/: {', '.join(outputs)}")
    for key in keys:
        value = metrics[key]
        print(f"  {key:34s} {'n/a' if value is None else format(value, '.4g')}")
    return 0
