"""The start of every case: its setting, seeds, device, data sets and noise seeds."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np
import torch

from physinv.core.device import resolve_device
from physinv.core.errors import UnknownNameError
from physinv.core.noise import noise_seed
from physinv.core.seeding import seed_everything
from physinv.learn.data import generate, load

#: Noise stream of each use of the data (:func:`physinv.core.noise.noise_seed`).
NOISE_STREAMS = {"test": 0, "single": 7, "train": 13, "val": 17}


@dataclass
class CaseRun:
    """What a case knows once started: its setting's name and table, folders, device, progress, clock.

    ``out`` is where the run writes its outputs (metrics.json, report.md, figures): the staging
    folder of its :class:`~physinv.casekit.outputs.RunFolder`, moved into ``DIR`` as one set when
    the run succeeds.  ``work`` is ``DIR`` itself, for what later runs reuse: data sets in
    ``data/``, trained models and their checkpoints in ``models/``.
    """

    args: argparse.Namespace
    setting: str
    cfg: Mapping
    out: Path
    work: Path
    device: torch.device
    progress: bool
    rng: np.random.Generator
    t_start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.t_start


def start_case(args: argparse.Namespace, settings: Mapping[str, Mapping]) -> CaseRun:
    """Pick the settings table (``--smoke``, ``--quick`` or full), seed everything, resolve the device.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed command line of :func:`~physinv.casekit.command.case_parser`, with the
        ``run_folder`` that :func:`~physinv.casekit.command.case_main` gives it.
    settings : Mapping
        ``{"quick": ..., "full": ...}`` and, for the cases with ``--smoke``, ``"smoke"``.
    """
    setting = "smoke" if getattr(args, "smoke", False) else ("quick" if args.quick else "full")
    if setting not in settings:
        raise UnknownNameError(f"the case has no {setting!r} setting; it has {', '.join(settings)}")
    rng = seed_everything(args.seed)
    folder = args.run_folder
    return CaseRun(args, setting, settings[setting], folder.stage, folder.dir, resolve_device(args.device),
                   not getattr(args, "no_progress", False), rng)


class DataSet(NamedTuple):
    """A data set of the registry as generated for a case, and the command that makes it."""

    data: dict
    path: Path
    command: str
    seconds: float


def make_dataset(out: Path, name: str, stem: str, count: int, seed: int, params: Mapping, workers: int,
                 progress: bool = True) -> DataSet:
    """Generate (or reuse, when seed and parameters match) ``DIR/data/STEM.h5`` from the data set ``name``."""
    path = out / "data" / f"{stem}.h5"
    t0 = time.perf_counter()
    generate(name, count, path, seed=seed, workers=workers, chunk=64, params=dict(params), progress=progress)
    seconds = time.perf_counter() - t0
    command = (f"physinv data generate {name} --n {count} --out {path} --seed {seed} --workers {workers} --chunk 64 "
               + " ".join(f"--param {k}={v}" for k, v in params.items()))
    return DataSet(load(path), path, command, seconds)


def stream_seed(seed: int, level: float, stream: str) -> int:
    """The noise seed of ``level`` for one use of the data (a key of :data:`NOISE_STREAMS`)."""
    if stream not in NOISE_STREAMS:
        raise UnknownNameError(f"unknown noise stream {stream!r}; allowed: {', '.join(NOISE_STREAMS)}")
    return noise_seed(seed, level, NOISE_STREAMS[stream])


def noise_tag(level: float) -> str:
    """``noiseK`` for a level of K per cent, as in the metric names."""
    return f"noise{int(round(100 * level))}"
