"""The on-disk format of physinv data sets: the states a file can be in, and their checks.

A data set ``OUT`` (HDF5) goes through three explicit states:

``OUT.partial``
    a generation in progress or interrupted: every attribute, every field
    (full size) and the chunk record ``_chunk_sha256`` are written before the file
    gets this name (atomically), so a partial file always says which chunks
    are complete; a rerun of the same command resumes it.
``OUT``
    complete: the partial file, sealed (``complete = True``) and renamed onto
    ``OUT`` in one step.  An earlier ``OUT`` stays intact until then.
``OUT.lock``
    present while a process generates; :class:`~physinv.core.locking.ExclusiveLock`.

Checks, from the outside in:

- a complete file starts with a 512-byte HDF5 user block holding its *seal*,
  ``physinv-dataset-2 sha256=HEX bytes=N`` and zero padding: the sha256 of
  the N bytes of HDF5 after the block, written when the file is sealed; it is
  verified before HDF5 parses a byte of the file, so any damage to a complete
  file (a flipped bit anywhere, truncation) is one :class:`DataFileError`,
  never a wrong value and never a hang inside the HDF5 library;
- a partial file's user block is zeros (it changes while chunks are written);
  its HDF5 structure carries HDF5's own checksums (the 1.8 file format:
  superblock version 2 and object headers version 2, without the write flag
  of later formats, which a killed writer would leave set); every data set
  is stored with the fletcher32 checksum, and the attributes are fixed-length
  (in the checksummed object header, never in the unchecksummed global heap
  of variable-length strings) with a sha256 ``digest`` over all of them; and
  each chunk, once written, is recorded with the sha256 of its samples, so
  damage that HDF5 misses (its 1.8-format chunk index has no checksum) makes
  a recorded chunk fail its digest, or look unwritten and be computed again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
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
DONE = "_chunk_sha256"  # (n_chunks, 32) uint8: sha256 of each complete chunk's fields, zeros until it is written
ATTRS = ("format", "generator", "params", "seed", "n", "chunk", "physinv_version", "created", "description",
         "fields", "inputs", "targets", "complete")
_H5 = {"libver": ("v108", "v108"), "locking": False}  # checksummed metadata; our lock file serializes writers
USERBLOCK = 512  # bytes before the HDF5 superblock, HDF5's user block: the seal of a complete file
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SEAL = re.compile(rb"physinv-dataset-2 sha256=([0-9a-f]{64}) bytes=([0-9]{1,15})\n")


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
    """An attribute as a Python scalar; fixed-length strings (stored as UTF-8 bytes) decoded."""
    value = value.item() if hasattr(value, "item") else value
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _stored(value: Any) -> Any:
    """An attribute value as written: strings as fixed-length UTF-8 bytes (no variable-length global heap)."""
    return np.bytes_(value.encode("utf-8")) if isinstance(value, str) else value


def _set_attrs(h5, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        h5.attrs[key] = _stored(value)
    h5.attrs["digest"] = _stored(attrs_digest({k: _plain(v) for k, v in h5.attrs.items()}))


def attrs_digest(attrs: Mapping[str, Any]) -> str:
    """sha256 of the attributes :data:`ATTRS` (as JSON with sorted keys)."""
    text = json.dumps({k: _plain(attrs[k]) for k in ATTRS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def create_partial(out: Path, identity: Mapping[str, Any], description: str, inputs, targets,
                   first: Mapping[str, np.ndarray]) -> Path:
    """Write the empty partial file of ``out`` (all fields, no chunk recorded) and give it its name atomically."""
    import h5py

    n, chunk = int(identity["n"]), int(identity["chunk"])
    attrs = {"format": FORMAT, **identity, "physinv_version": physinv.__version__,
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
             "description": description, "fields": json.dumps(list(first)), "inputs": json.dumps(list(inputs)),
             "targets": json.dumps(list(targets)), "complete": False}

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", userblock_size=USERBLOCK, **_H5) as h5:
            for k, v in first.items():
                h5.create_dataset(k, shape=(n, *v.shape[1:]), dtype=v.dtype, chunks=(min(chunk, n), *v.shape[1:]),
                                  fletcher32=True)
            n_chunks = -(-n // chunk)
            h5.create_dataset(DONE, data=np.zeros((n_chunks, 32), dtype=np.uint8), chunks=(n_chunks, 32),
                              fletcher32=True)
            _set_attrs(h5, attrs)

    return atomic_write(partial_path(out), write)


def open_partial(out: Path):
    """The partial file of ``out`` opened for writing, its attributes checked (:class:`DataFileError` if damaged)."""
    import h5py

    path = partial_path(out)
    meta = read_metadata(path, sealed=False)
    try:
        h5 = h5py.File(path, "r+", **_H5)
    except Exception as exc:
        raise DataFileError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None
    try:
        check_chunks(h5, path)
    except DataFileError:
        h5.close()
        raise
    except Exception as exc:
        h5.close()
        raise DataFileError(f"{path} is damaged: reading its fields failed the checksum or the file structure "
                            f"({type(exc).__name__}: {exc})") from None
    return h5, meta


def chunk_digest(h5, start: int, stop: int, arrays: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """sha256 (32 uint8) of samples ``start:stop`` of every field, from ``arrays`` or read from ``h5``."""
    digest = hashlib.sha256()
    for key in sorted(k for k in h5 if k != DONE):
        values = h5[key][start:stop] if arrays is None else arrays[key]
        digest.update(np.ascontiguousarray(values, dtype=h5[key].dtype).tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def mark_done(h5, index: int, start: int, stop: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Record chunk ``index`` (samples ``start:stop``, already written and flushed) as complete with its digest."""
    h5[DONE][index] = chunk_digest(h5, start, stop, arrays)
    h5.flush()


def check_chunks(h5, path: Path) -> None:
    """Every chunk marked complete must match its recorded sha256 (:class:`DataFileError` naming the first that does not).

    Guards a partial file, which has no seal yet, against damage that HDF5's
    checksums miss (its 1.8-format chunk index is not checksummed).
    """
    n, chunk = int(_plain(h5.attrs["n"])), int(_plain(h5.attrs["chunk"]))
    for index, recorded in enumerate(h5[DONE][()]):
        if recorded.any():
            start, stop = index * chunk, min(n, (index + 1) * chunk)
            if not np.array_equal(chunk_digest(h5, start, stop), recorded):
                raise DataFileError(f"{path} is damaged: samples {start}..{stop - 1} do not match the sha256 "
                                    "recorded when they were written")


def seal(h5) -> None:
    """Mark an open partial file complete, close it, and write its seal; the caller renames it onto the target."""
    _set_attrs(h5, {"complete": True})
    path = Path(h5.filename)
    h5.close()
    size = path.stat().st_size - USERBLOCK
    with open(path, "r+b") as fh:
        if fh.read(USERBLOCK) != bytes(USERBLOCK):
            raise DataFileError(f"{path} has no empty user block to seal; it was not created by physinv")
        header = f"{FORMAT} sha256={_sha256(fh, size)} bytes={size}\n".encode()
        fh.seek(0)
        fh.write(header)
        fh.flush()
        os.fsync(fh.fileno())


def _sha256(fh, size: int) -> str:
    """sha256 of the ``size`` bytes that follow the user block of the open file ``fh``."""
    fh.seek(USERBLOCK)
    digest, left = hashlib.sha256(), size
    while left > 0:
        block = fh.read(min(left, 1 << 22))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    return digest.hexdigest()


def check_seal(path: Path) -> bool:
    """True when ``path`` carries a seal that its bytes match, False when it has none (a partial file, or one
    without a user block); :class:`DataFileError` when a seal is damaged or does not match."""
    with open(path, "rb") as fh:
        block = fh.read(USERBLOCK)
        if block.startswith(_HDF5_SIGNATURE) or block == bytes(USERBLOCK):
            return False
        found = _SEAL.match(block)
        if not found or block[found.end():] != bytes(USERBLOCK - found.end()):
            raise DataFileError(f"{path} is damaged: its seal (the first {USERBLOCK} bytes) is not one physinv "
                                "writes; regenerate it (the same command with --overwrite)")
        size = path.stat().st_size - USERBLOCK
        if size != int(found.group(2)):
            raise DataFileError(f"{path} is damaged: it holds {size} bytes of HDF5, its seal says "
                                f"{int(found.group(2))} (truncated or appended to); regenerate it")
        if _sha256(fh, size) != found.group(1).decode():
            raise DataFileError(f"{path} is damaged: its bytes do not match the sha256 of its seal; "
                                "regenerate it (the same command with --overwrite)")
    return True


def format_of(path: Path) -> str | None:
    """The format of a physinv data file (from its seal, or its ``format`` attribute), or None for other files."""
    import h5py

    try:
        with open(path, "rb") as fh:
            if _SEAL.match(fh.read(USERBLOCK)):
                return FORMAT
    except OSError:
        return None
    try:
        with h5py.File(path, "r", **_H5) as h5:
            value = _plain(h5.attrs.get("format"))
    except Exception:
        return None
    return value if isinstance(value, str) else None


def read_metadata(path: str | os.PathLike, sealed: bool = True) -> dict[str, Any]:
    """Metadata of a data file, checked against its seal and digest, with ``chunks_done`` / ``chunks_total``.

    A seal, where there is one, is verified before HDF5 reads the file;
    ``sealed=True`` (a complete file) requires one, ``sealed=False`` (a
    partial file) does not: it has none until it is complete.  Raises
    :class:`DataFileError` for a missing, foreign, older-format or damaged file.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataFileError(f"no data file at {path}; create it with `physinv data generate NAME --out {path}`")
    has_seal = check_seal(path)
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
                raise DataFileError(f"{path} is damaged: the chunk record {DONE!r} is missing")
            done = h5[DONE][()].any(axis=1)
            if sealed and not has_seal:
                raise DataFileError(f"{path} is damaged: a physinv data file without its seal (the sha256 "
                                    f"header of a complete file); regenerate it (the same command with --overwrite)")
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
    if bool(meta["complete"]) != has_seal or (has_seal and not done.all()):
        raise DataFileError(f"{path} is damaged: its seal, its complete flag and its chunk record disagree")
    meta["complete"] = has_seal
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


def verify(path: str | os.PathLike, sealed: bool = True) -> dict[str, Any]:
    """Check every attribute and every chunk of a data file; its metadata, or :class:`DataFileError`."""
    import h5py

    meta = read_metadata(path, sealed=sealed)
    read_fields(Path(path), meta["fields"])
    if not sealed:
        try:
            with h5py.File(path, "r", **_H5) as h5:
                check_chunks(h5, Path(path))
        except DataFileError:
            raise
        except Exception as exc:
            raise DataFileError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None
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
        meta = verify(partial, sealed=False)
        state = (f"incomplete: {meta['chunks_done']} of {meta['chunks_total']} chunks in {partial}"
                 + (busy or "; interrupted: rerun the same command to resume"))
        return state, meta
    if who:
        return f"being created{busy}", None
    raise DataFileError(f"no data file at {out}; create it with `physinv data generate NAME --out {out}`")
