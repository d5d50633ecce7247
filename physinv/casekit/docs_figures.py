"""``physinv docs figures``: every figure of the documentation, drawn again by the code.

A figure in ``docs/figures`` comes from one of two kinds of producer:

* a problem package's function, registered with
  :func:`physinv.core.registry.register_docs_figures` (seconds to a minute: a validation study,
  a simulator's fields);
* a case study's ``--quick`` run (``physinv run NAME --quick --seed 0``), whose outputs the
  case's ``DOCS_FIGURES = {output: docs name}`` literal maps to documentation figures.

Each group's figures are drawn into a hidden staging folder and moved into ``docs/figures`` only
when the whole group succeeded, each by an atomic rename, so a failed or interrupted producer
leaves the earlier figures as they were (a staging folder left by a killed run is removed by the
next run). ``docs/figures/MANIFEST.json`` records for each group the command that draws it again, the
seed, the physinv commit and the case run's metrics, and for each figure its group and SHA-256;
the test suite checks that every figure the pages show is listed there with the same hash, so a
figure copied by hand (or edited afterwards) is caught. A second ``physinv docs figures`` on the
same folder is refused while the first runs. The case runs take minutes each (about an hour for
all ten on 2 CPU cores); ``--jobs N`` runs N of them at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from physinv.core.errors import InvalidParameterError, PhysinvError, UnknownNameError
from physinv.core.io import atomic_write_json
from physinv.core.locking import ExclusiveLock
from physinv.core.provenance import source_commit
from physinv.core.registry import CASES, DOCS_FIGURES

MANIFEST = "MANIFEST.json"
CASE_SEED = 0


@dataclass(frozen=True)
class FigureGroup:
    """Figures drawn by one producer: ``kind`` is ``"problem"`` or ``"case"``; ``figures`` maps the
    producer's file names to the names in ``docs/figures``."""

    name: str
    kind: str
    figures: tuple[tuple[str, str], ...]
    command: str
    description: str


def figure_groups() -> dict[str, FigureGroup]:
    """Every registered producer of documentation figures, by name (``case:NAME`` for case studies)."""
    groups = {}
    for name, spec in DOCS_FIGURES.items():
        groups[name] = FigureGroup(name, "problem", tuple((f, f) for f in spec.figures),
                                   f"physinv docs figures --only {name}", spec.description)
    for name, case in CASES.items():
        if case.figures:
            groups[f"case:{name}"] = FigureGroup(
                f"case:{name}", "case", case.figures,
                f"physinv run {name} --quick --seed {CASE_SEED} --out DIR", case.summary)
    owners: dict[str, str] = {}
    for group in groups.values():
        for _, target in group.figures:
            if target in owners:
                raise PhysinvError(f"docs figure {target!r} is drawn by both {owners[target]} and {group.name}")
            owners[target] = group.name
    return groups


def select_groups(groups: dict[str, FigureGroup], only: list[str], skip_cases: bool) -> list[FigureGroup]:
    """The groups named in ``only`` (all if empty), without the case runs if ``skip_cases``."""
    unknown = [name for name in only if name not in groups]
    if unknown:
        raise UnknownNameError(f"unknown docs figure group {', '.join(map(repr, unknown))}; "
                               f"known: {', '.join(groups)}")
    chosen = [groups[name] for name in (only or groups)]
    if skip_cases and only and any(g.kind == "case" for g in chosen):
        raise InvalidParameterError("--skip-cases excludes the case groups named with --only; drop one of them")
    return [g for g in chosen if not (skip_cases and g.kind == "case")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path) -> dict:
    """``folder/MANIFEST.json`` (empty if absent); a damaged manifest is an error, never overwritten blindly."""
    path = folder / MANIFEST
    if not path.exists():
        return {"groups": {}, "figures": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(manifest, dict) and isinstance(manifest.get("figures"), dict)
                and isinstance(manifest.get("groups"), dict)):
            raise ValueError("no 'groups' and 'figures' tables")
        bad = [name for name, entry in manifest["figures"].items()
               if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                       and entry.get("group") in manifest["groups"])]
        if bad:
            raise ValueError(f"figures without a sha256 or a recorded group: {', '.join(bad)}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise PhysinvError(f"{path} is damaged ({exc}); delete it and run physinv docs figures for every "
                           "group to draw all figures again") from None
    return manifest


STAGING_PREFIX = ".staging-"


class CaseRuns:
    """The case processes running now, so that an interruption (Ctrl-C) stops them all."""

    def __init__(self):
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopped = False

    def run(self, cmd: list[str], env: dict, log_path: Path) -> int:
        with open(log_path, "w", encoding="utf-8") as sink, self._lock:
            if self.stopped:
                raise PhysinvError("interrupted before the run started")
            proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
            self._procs.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    def stop(self) -> None:
        """SIGTERM to every running case's process group; no new run starts."""
        with self._lock:
            self.stopped = True
            procs = list(self._procs)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _draw_case(group: FigureGroup, staging: Path, log, threads: int | None, runs: CaseRuns) -> Path:
    """Run the case's quick path into ``staging/run`` in a fresh process (output in ``staging/run.log``);
    its outputs folder."""
    out, log_path = staging / "run", staging / "run.log"
    name = group.name.split(":", 1)[1]
    cmd = [sys.executable, "-m", "physinv.cli", "run", name, "--quick", "--seed", str(CASE_SEED),
           "--out", str(out)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    log(f"   $ {' '.join(cmd[1:])}")
    code = runs.run(cmd, env, log_path)
    if code != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = "\n".join(line.rsplit("\r", 1)[-1] for line in lines[-15:])
        raise PhysinvError(f"the quick run of case {name!r} failed (exit {code}):\n{tail}")
    return out


def _run_metrics(run: Path) -> dict:
    """The case run's ``metrics.json`` (the numbers its figures show), or ``{}`` if it wrote none."""
    path = run / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def draw_group(group: FigureGroup, folder: Path, commit: str | None, log=print,
               threads: int | None = None, runs: CaseRuns | None = None) -> tuple[dict, dict[str, dict]]:
    """Draw one group's figures in a staging folder and move them into ``folder`` (each an atomic
    rename, only once every figure of the group exists); returns the group's manifest record
    (command, seed, commit, time, the case run's metrics) and the figures' entries (group, source, hash)."""
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{group.name.replace(':', '-')}-", dir=folder) as tmp:
        staging = Path(tmp)
        started = time.perf_counter()
        if group.kind == "case":
            source = _draw_case(group, staging, log, threads, runs or CaseRuns())
        else:
            source = staging
            DOCS_FIGURES.get(group.name).make(staging)
        missing = [f for f, _ in group.figures if not (source / f).is_file()]
        if missing:
            raise PhysinvError(f"{group.name} did not write {', '.join(missing)} (it wrote: "
                               f"{', '.join(sorted(p.name for p in source.iterdir())) or 'nothing'})")
        record = {"command": group.command, "seed": CASE_SEED if group.kind == "case" else None, "commit": commit,
                  "drawn": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "seconds": round(time.perf_counter() - started, 1)}
        if group.kind == "case":
            record["run_metrics"] = _run_metrics(source)
        figures = {}
        for produced, target in group.figures:
            os.replace(source / produced, folder / target)
            figures[target] = {"group": group.name, "source": produced, "sha256": sha256(folder / target)}
    return record, figures


def remove_stale_staging(folder: Path) -> list[str]:
    """Delete staging folders a killed run left behind (called with the folder's lock held, so no
    running ``physinv docs figures`` owns them)."""
    stale = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(STAGING_PREFIX)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in stale]


def make_figures(folder: Path, only: list[str] | None = None, skip_cases: bool = False, jobs: int = 1,
                 log=print) -> list[str]:
    """Draw the selected groups' figures into ``folder`` (default: every group); returns the files written.

    The problem groups run first, in this process, one after another; then the case runs, ``jobs``
    at a time (each its own process, the CPU cores shared among them). A failing group does not
    stop the others: the manifest records every group that succeeded, and the call then raises
    :class:`~physinv.core.errors.PhysinvError` naming the groups that failed, whose earlier
    figures are left as they were.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidParameterError(f"jobs must be an integer >= 1; got {jobs!r}")
    folder = Path(folder)
    groups = select_groups(figure_groups(), list(only or []), skip_cases)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    failures: dict[str, str] = {}
    with ExclusiveLock(folder / MANIFEST, what="drawing the docs figures into"):
        manifest = read_manifest(folder)
        for name in remove_stale_staging(folder):
            log(f"removed {name}, left by an interrupted run")
        commit = source_commit(Path(__file__).resolve().parent, exclude=("docs/figures",))
        update, printing, runs = threading.Lock(), threading.Lock(), CaseRuns()
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None

        def say(message: str) -> None:
            with printing:
                log(message)

        def draw(i: int, group: FigureGroup) -> None:
            say(f"[{i}/{len(groups)}] {group.name}: {', '.join(t for _, t in group.figures)}")
            started = time.perf_counter()
            try:
                record, entries = draw_group(group, folder, commit, say, threads, runs)
            except Exception as exc:  # noqa: BLE001 - reported with the others at the end
                failures[group.name] = f"{type(exc).__name__}: {exc}"
                say(f"   {group.name} FAILED: {exc}")
                return
            with update:
                manifest["groups"][group.name] = record
                manifest["figures"].update(entries)
                atomic_write_json(folder / MANIFEST, manifest)
                written.extend(entries)
            say(f"   {group.name} done in {time.perf_counter() - started:.0f} s")

        numbered = list(enumerate(groups, 1))
        for i, group in numbered:
            if group.kind != "case":
                draw(i, group)
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            for future in [pool.submit(draw, i, g) for i, g in numbered if g.kind == "case"]:
                future.result()
        except BaseException:  # Ctrl-C: no new case starts, the running ones are stopped
            runs.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    if failures:
        raise PhysinvError("docs figures failed for " + "; ".join(f"{k} ({v})" for k, v in failures.items())
                           + f"; the other {len(written)} figures were written")
    return written


def list_groups() -> str:
    """The table of ``physinv docs figures --list``."""
    lines = []
    for group in figure_groups().values():
        lines.append(f"{group.name:28s} {group.kind:8s} {', '.join(t for _, t in group.figures)}")
        lines.append(f"{'':37s} {group.description}")
    return "\n".join(lines)


def stale_figures(folder: Path, referenced: list[str]) -> list[str]:
    """Problems with the figures ``referenced`` by the pages: not drawn by a registered producer,
    missing, absent from the manifest, or changed since drawn (hash)."""
    owners = {t: g.name for g in figure_groups().values() for _, t in g.figures}
    manifest = read_manifest(Path(folder))["figures"]
    problems = []
    for name in referenced:
        path = Path(folder) / name
        if name not in owners:
            problems.append(f"{name}: no producer draws it (register one; see physinv.casekit.docs_figures)")
        elif not path.is_file():
            problems.append(f"{name}: missing; run physinv docs figures --only {owners[name]}")
        elif name not in manifest:
            problems.append(f"{name}: not in {MANIFEST}; run physinv docs figures --only {owners[name]}")
        elif manifest[name]["sha256"] != sha256(path):
            problems.append(f"{name}: changed since drawn; run physinv docs figures --only {owners[name]}")
    return problems


def default_folder() -> Path:
    """``docs/figures`` of the source tree the package is installed from."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "mkdocs.yml").is_file():
        raise PhysinvError(f"no mkdocs.yml in {root}: physinv is not installed from its source tree; "
                           "pass --out DIR")
    return root / "docs" / "figures"
