"""An exclusive, process-wide lock on a path, held for the whole of a long write.

:class:`ExclusiveLock` takes an ``flock`` on ``PATH.lock`` (created beside the
target).  The kernel releases it when the holder exits, however it exits
(SIGKILL included), so a lock is never left stale; the file keeps the holder's
pid and start time so that a refused second writer can say who holds it.
The lock file is removed on release.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import time
from pathlib import Path

from physinv.core.errors import PhysinvError


class LockedError(PhysinvError, RuntimeError):
    """Another process holds the lock on a path that this process wants to write."""


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``TARGET.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


def holder(target: str | os.PathLike) -> str | None:
    """``"pid N (what it does) since T"`` of the process holding ``target``'s lock, or None when it is free."""
    path = lock_path(target)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class ExclusiveLock:
    """``with ExclusiveLock(target, wait=0): ...`` holds ``TARGET.lock`` exclusively.

    Parameters
    ----------
    target
        The file to be written under the lock.
    wait
        Seconds to wait for a lock another process holds (0: refuse at once).
    what
        What the holder does, for the messages of refused writers (``"generating into"``...).

    Notes
    -----
    Raises :class:`LockedError` naming the holder when the lock is not free
    within ``wait`` seconds.
    """

    def __init__(self, target: str | os.PathLike, wait: float = 0.0, what: str = "writing"):
        if not wait >= 0:
            raise ValueError(f"wait must be >= 0 seconds; got {wait}")
        self.target, self.path, self.wait, self.what = Path(target), lock_path(target), float(wait), what
        self._fd: int | None = None

    def __enter__(self) -> "ExclusiveLock":
        deadline = time.monotonic() + self.wait
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"{self.target} is locked: {who} (lock file {self.path}); wait for it to "
                        "finish, then rerun the same command (a finished file is reused, an interrupted one resumed)"
                    ) from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            # the holder before us may have removed the file between our open and our lock: lock the live file
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({self.what} it) since {stamp}\n".encode(), 0)
            self._fd = fd
            return self

    def __exit__(self, *exc) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
