"""What every case study's command line shares (``cases/*.py`` stay thin).

Each case accepts ``--quick``, ``--out DIR`` (default ``results/NAME``),
``--device auto|cpu|cuda`` and ``--seed``.  :func:`case_main` refuses a bad
``--out`` before any work, writes the run's outputs into ``DIR`` as one set
(:class:`~physinv.casekit.outputs.RunFolder`), exits 2 with one line
``physinv: error: ...`` on a :class:`~physinv.core.errors.PhysinvError`, 130 on
Ctrl-C, and ends by printing where its outputs went and its headline metrics.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable

from physinv.casekit.outputs import RUN_RECORD, RunFolder
from physinv.casekit.report import command_line
from physinv.cli import seed_argument
from physinv.core.device import DEVICE_CHOICES
from physinv.core.errors import PhysinvError


def case_parser(name: str, doc: str, quick_help: str, device_help: str | None = None) -> argparse.ArgumentParser:
    """Parser with the common flags; the case adds its own."""
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", default=f"results/{name}",
                        help="output folder (default: %(default)s); a run replaces the outputs of the one before")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help=device_help)
    parser.add_argument("--seed", type=seed_argument, default=0, help="integer in [0, 2**64) (default: 0)")
    return parser


def add_training_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--resume``, ``--no-progress`` and the hidden ``--smoke`` (tiny setting for the tests) of the learning cases."""
    parser.add_argument("--resume", action="store_true", help="continue training from DIR/models/*_train.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    return parser


def case_main(name: str, run: Callable[[argparse.Namespace], dict], args: argparse.Namespace,
              outputs: Iterable[str], keys: Iterable[str]) -> int:
    """Check ``--out``, run the case into its :class:`RunFolder` (``args.run_folder``), commit its outputs.

    Returns the exit code: 0, 2 on a physinv error (one line on stderr), 130 on Ctrl-C; in both
    failures ``DIR`` keeps the outputs of the last complete run.
    """
    try:
        folder = args.run_folder = RunFolder(args.out, name, args.seed, command_line(name))
        try:
            metrics = run(args)
            folder.commit()
        finally:
            folder.discard()
    except PhysinvError as exc:
        print(f"physinv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nphysinv: interrupted; {args.out} holds the outputs of the last complete run", file=sys.stderr)
        return 130
    print(f"\nwrote {args.out}/ (run {folder.run_id}): {', '.join([*outputs, RUN_RECORD])}")
    for key in keys:
        value = metrics[key]
        print(f"  {key:34s} {'n/a' if value is None else format(value, '.4g')}")
    return 0
