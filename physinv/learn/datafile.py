"""The on-disk format of physinv data sets: the states a file can be in, and their checks.

A data set ``OUT`` (HDF5) goes through three explicit states:

``OUT.partial``
    a generation in progress or interrupted: every attribute, every field
    (full size) and the counter ``_chunks_done`` are written before the file
    gets this name (atomically), so a partial file always says which chunks
    are complete; a rerun of the same command resumes it.
``OUT``
    complete: the partial file, sealed (``complete = True``) and renamed onto
    ``OUT`` in one step.  An earlier ``OUT`` stays intact until then.
``OUT.lock``
    present while a process generates; :class:`~physinv.core.locking.ExclusiveLock`.

Every data set in the file is stored with HDF5's fletcher32 checksum, the
HDF5 metadata with its own checksums (the 1.8 file format: superblock
version 2 and object headers version 2; without the write flag of later
formats, which a killed writer would leave set), and the
attributes with a sha256 ``digest`` over all of them; a damaged file gives
one :class:`DataFileError` naming the file, never other values.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import physinv
from physinv.core.errors import PhysinvError
from physinv.core.io import atomic_write
from physinv.core.locking import holder

FORMAT = "physinv-dataset-2"
#: Formats of earlier physinv versions: recognised as data sets (so --overwrite may replace them), not read.
OLD_FORMATS = ("physinv-dataset-1",)
DONE = "_chunks_done"
ATTRS = ("format", "generator", "params", "seed", "n", "chunk", "physinv_version", "created", "description",
         "fields", "inputs", "targets", "complete")
_H5 = {"libver": ("v108", "v108"), "locking": False}  # checksummed metadata; our lock file serializes writers


class DataFileError(PhysinvError, ValueError):
    """A data file that is incomplete, unreadable, damaged, or was written for other generation parameters."""


class IncompleteDataError(DataFileError):
    """A data set whose generation has not finished (only ``OUT.partial`` exists)."""


class DataMismatchError(DataFileError):
    """An existing (partial) data file was written by another generator, parameters, seed, n or chunk."""


def partial_path(out: str | os.PathLike) -> Path:
    """Where the generation of ``out`` keeps its unfinished file."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def attrs_digest(attrs: Mapping[str, Any]) -> str:
    """sha256 of the attributes :data:`ATTRS` (as JSON with sorted keys)."""
    text = json.dumps({k: _plain(attrs[k]) for k in ATTRS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def create_partial(out: Path, identity: Mapping[str, Any], description: str, inputs, targets,
                   first: Mapping[str, np.ndarray]) -> Path:
    """Write the empty partial file of ``out`` (all fields, counter at zero) and give it its name atomically."""
    import h5py

    n, chunk = int(identity["n"]), int(identity["chunk"])
    attrs = {"format": FORMAT, **identity, "physinv_version": physinv.__version__,
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "description": description, "fields": json.dumps(list(first)), "inputs": json.dumps(list(inputs)),
             "targets": json.dumps(list(targets)), "complete": False}

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", **_H5) as h5:
            for k, v in first.items():
                h5.create_dataset(k, shape=(n, *v.shape[1:]), dtype=v.dtype, chunks=(min(chunk, n), *v.shape[1:]),
                                  fletcher32=True)
            n_chunks = -(-n // chunk)
            h5.create_dataset(DONE, data=np.zeros(n_chunks, dtype=np.uint8), chunks=(n_chunks,), fletcher32=True)
            h5.attrs.update(attrs)
            h5.attrs["digest"] = attrs_digest(attrs)

    return atomic_write(partial_path(out), write)


def open_partial(out: Path):
    """The partial file of ``out`` opened for writing, its attributes checked (:class:`DataFileError` if damaged)."""
    import h5py

    path = partial_path(out)
    meta = read_metadata(path)
    try:
        h5 = h5py.File(path, "r+", **_H5)
        h5[DONE][()]
    except Exception as exc:
        raise DataFileError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None
    return h5, meta


def seal(h5) -> None:
    """Mark an open partial file complete (its digest updated); the caller renames it onto the target."""
    h5.attrs["complete"] = True
    h5.attrs["digest"] = attrs_digest(h5.attrs)
    h5.flush()


def format_of(path: Path) -> str | None:
    """The ``format`` attribute of an HDF5 file, or None when it is not one that h5py can open."""
    import h5py

    try:
        with h5py.File(path, "r", **_H5) as h5:
            value = _plain(h5.attrs.get("format"))
    except Exception:
        return None
    return value if isinstance(value, str) else None


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata of a data file, checked against its digest, with ``chunks_done`` / ``chunks_total``.

    Works on complete and on partial files.  Raises :class:`DataFileError`
    for a missing, foreign, older-format or damaged file.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataFileError(f"no data file at {path}; create it with `physinv data generate NAME --out {path}`")
    try:
        with h5py.File(path, "r", **_H5) as h5:
            attrs = {k: _plain(v) for k, v in h5.attrs.items()}
            if attrs.get("format") != FORMAT:
                found = attrs.get("format")
                if found in OLD_FORMATS:
                    raise DataFileError(f"{path} was written in the older format {found!r}; this physinv reads "
                                        f"{FORMAT!r}: regenerate it (the same command with --overwrite)")
                raise DataFileError(f"{path} is not a physinv data file (no format attribute {FORMAT!r})")
            missing = [k for k in (*ATTRS, "digest") if k not in attrs]
            if missing:
                raise DataFileError(f"{path} is damaged: attributes {missing} are missing")
            if attrs["digest"] != attrs_digest(attrs):
                raise DataFileError(f"{path} is damaged: its attributes do not match their sha256 digest")
            if DONE not in h5:
                raise DataFileError(f"{path} is damaged: the chunk counter {DONE!r} is missing")
            done = h5[DONE][()]
    except DataFileError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on damaged files
        raise DataFileError(f"cannot read {path}: it is damaged or not an HDF5 file "
                            f"({type(exc).__name__}: {exc})") from None
    meta = dict(attrs)
    del meta["digest"]
    try:
        for key in ("params", "fields", "inputs", "targets"):
            meta[key] = json.loads(meta[key])
    except (TypeError, json.JSONDecodeError) as exc:
        raise DataFileError(f"{path} is damaged: attribute {key!r} is not JSON ({exc})") from None
    meta["complete"] = bool(meta["complete"]) and bool(done.all())
    meta["chunks_done"], meta["chunks_total"] = int(done.sum()), int(done.size)
    return meta


def read_fields(path: Path, names) -> dict[str, np.ndarray]:
    """The arrays ``names`` of a data file, every chunk checked against its checksum."""
    import h5py

    try:
        with h5py.File(path, "r", **_H5) as h5:
            return {k: h5[k][()] for k in names}
    except Exception as exc:
        raise DataFileError(f"{path} is damaged: reading its fields failed the checksum or the file structure "
                            f"({type(exc).__name__}: {exc}); regenerate it (the same command with --overwrite)") from None


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Check every attribute and every chunk of a data file; its metadata, or :class:`DataFileError`."""
    meta = read_metadata(path)
    read_fields(Path(path), meta["fields"])
    return meta


def describe(out: str | os.PathLike) -> tuple[str, dict[str, Any] | None]:
    """The state of the data set ``out`` in words, and its metadata when there is a readable file.

    Checks the checksums of what it describes (:class:`DataFileError` on damage).
    """
    out = Path(out)
    partial, who = partial_path(out), holder(out)
    busy = f"; {who} is generating it" if who else ""
    if out.exists():
        meta = verify(out)
        return f"complete{busy}", meta
    if partial.exists():
        meta = verify(partial)
        state = (f"incomplete: {meta['chunks_done']} of {meta['chunks_total']} chunks in {partial}"
                 + (busy or "; interrupted: rerun the same command to resume"))
        return state, meta
    if who:
        return f"being created{busy}", None
    raise DataFileError(f"no data file at {out}; create it with `physinv data generate NAME --out {out}`")
