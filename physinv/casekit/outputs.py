"""The output folder of a case run: checked before any work, filled with one run's outputs as a set.

A run writes its outputs into the staging folder ``DIR/.run-ID.partial/``; only once
it succeeded does :meth:`RunFolder.commit` stamp them with the run id, write
``run.json`` and move them into ``DIR``, removing the earlier run's outputs that
this run did not write again.  An interrupted or failed run removes its staging
folder and leaves ``DIR`` as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import uuid
import zlib
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import physinv
from physinv.core.errors import InvalidParameterError
from physinv.core.locking import ExclusiveLock

#: The record of the run whose outputs ``DIR`` holds.
RUN_RECORD = "run.json"
#: Seconds a run waits for another run's commit into the same folder before it gives up.
COMMIT_WAIT = 60.0
#: The PNG ``tEXt`` keyword under which every figure carries its run id.
PNG_KEYWORD = "physinv-run"


class RunFolder:
    """One run's outputs into ``DIR``: its id, staging folder and commit.

    Creating it checks ``DIR`` (a folder, or creatable, and writable) and
    creates the staging folder, so a bad ``--out`` is refused before any work.
    """

    def __init__(self, out: str | os.PathLike, case: str, seed: int, command: str):
        self.dir = Path(out)
        self.case, self.seed, self.command = case, seed, command
        self.started = datetime.now().astimezone()
        self.run_id = f"{self.started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.stage = self.dir / f".run-{self.run_id}.partial"
        if self.dir.exists() and not self.dir.is_dir():
            raise InvalidParameterError(f"--out {self.dir} is a file, not a folder; give a folder for the outputs")
        try:
            self.stage.mkdir(parents=True)
        except OSError as exc:
            raise InvalidParameterError(f"--out {self.dir}: cannot create or write this folder ({exc.strerror}); "
                                        "give a writable folder") from None

    def commit(self) -> list[str]:
        """Stamp the run id on ``report.md`` and the figures, write ``run.json``, move the set into ``DIR``.

        Returns the outputs (paths relative to ``DIR``).  The earlier run's
        outputs (those its ``run.json`` lists) that this run did not write
        are removed; nothing else in ``DIR`` is touched.  SIGINT and SIGTERM
        wait until the moves are done.
        """
        outputs = sorted(p.relative_to(self.stage).as_posix() for p in self.stage.rglob("*") if p.is_file())
        for name in outputs:
            if name.endswith(".png"):
                _stamp_png(self.stage / name, self.run_id)
        if "report.md" in outputs:
            title, _, body = (self.stage / "report.md").read_text(encoding="utf-8").partition("\n")
            (self.stage / "report.md").write_text(
                f"{title}\n\nRun `{self.run_id}`, seed {self.seed} ({RUN_RECORD} lists its command and outputs).\n"
                f"{body}", encoding="utf-8")
        outputs.append(RUN_RECORD)
        record = {"case": self.case, "run_id": self.run_id, "seed": self.seed, "command": self.command,
                  "physinv_version": physinv.__version__, "started": self.started.isoformat(timespec="seconds"),
                  "finished": datetime.now().astimezone().isoformat(timespec="seconds"), "outputs": outputs}
        (self.stage / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        # one commit into DIR at a time: a second run finishing together waits, and never mixes sets
        with ExclusiveLock(self.dir / RUN_RECORD, wait=COMMIT_WAIT, what=f"committing run {self.run_id} into"):
            stale = self._earlier_outputs() - set(outputs)
            with _signals_held():
                for name in outputs:  # run.json last
                    (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(self.stage / name, self.dir / name)
                for name in stale:
                    (self.dir / name).unlink(missing_ok=True)
                self.discard()
        return outputs

    def discard(self) -> None:
        """Remove the staging folder (what is left of it)."""
        shutil.rmtree(self.stage, ignore_errors=True)

    def _earlier_outputs(self) -> set[str]:
        """The outputs ``DIR/run.json`` lists (inside ``DIR`` only); none without a readable record."""
        try:
            names = json.loads((self.dir / RUN_RECORD).read_text(encoding="utf-8"))["outputs"]
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        root = self.dir.resolve()
        return {n for n in names if isinstance(n, str) and (root / n).resolve().is_relative_to(root)
                and (root / n).resolve() != root and not (root / n).is_dir()}


def _stamp_png(path: Path, run_id: str) -> None:
    """Add the ``tEXt`` chunk ``physinv-run: run_id`` before the PNG's closing ``IEND`` chunk."""
    data = path.read_bytes()
    payload = PNG_KEYWORD.encode("latin-1") + b"\0" + run_id.encode("latin-1")
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload + struct.pack(">I", zlib.crc32(b"tEXt" + payload))
    end = data.rindex(b"IEND") - 4  # the IEND chunk starts with its 4-byte length
    path.write_bytes(data[:end] + chunk + data[end:])


@contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM until the block is done, then deliver them (main thread only)."""
    caught: list[int] = []
    previous = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, lambda signum, _frame: caught.append(signum))
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)
