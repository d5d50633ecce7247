"""Where a result came from: the git commit of the source tree that produced it."""

from __future__ import annotations

import os
import subprocess


def source_commit(folder: str | os.PathLike, exclude: tuple[str, ...] = ()) -> str | None:
    """The commit checked out at ``folder``, with ``+dirty`` when tracked files differ from it (paths
    in ``exclude``, relative to the repository root, do not count); None outside a git checkout."""
    pathspec = ["--", ".", *(f":(exclude,top){path}" for path in exclude)]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                             check=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *pathspec], cwd=folder,
                               capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
