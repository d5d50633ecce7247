"""Data sets for learned components, generated from registered simulators.

A *data-set generator* knows two things:

``draw(rng, params) -> {field: array}``
    the parameters of **one** sample (e.g. a random log-conductivity), drawn
    from ``rng = numpy.random.default_rng([seed, i])`` for sample ``i``;
``simulate(batch, params) -> {field: array}``
    the simulated fields for a batch of drawn parameters (arrays with a
    leading batch axis ``(b, ...)``).  Each row must depend on its own
    parameters only, so a sample does not depend on which chunk it falls in.

:func:`generate` writes ``n`` samples to a chunked HDF5 file, chunk by chunk,
in parallel over CPU cores, and records which chunks are complete: a killed
generation resumes where it stopped when the same command is run again, and
the arrays are bitwise identical whether the file was written in one go,
resumed after a kill, or with another number of workers.  :func:`load` reads
a complete file back as torch tensors plus its metadata.

Register a generator with :func:`register_dataset`; see ``docs/learning.md``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError, UnknownNameError
from physinv.core.locking import ExclusiveLock, holder
from physinv.core.registry import DATASETS
from physinv.learn import datafile
from physinv.learn.datafile import (DONE, FORMAT, DataFileError, DataMismatchError, IncompleteDataError,
                                    partial_path)

@dataclass(frozen=True)
class DatasetGenerator:
    """A registered data-set generator (see :func:`register_dataset`)."""

    name: str
    draw: Callable[[np.random.Generator, dict[str, Any]], Mapping[str, np.ndarray]]
    simulate: Callable[[dict[str, np.ndarray], dict[str, Any]], Mapping[str, np.ndarray]]
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    description: str = ""
    choices: dict[str, tuple] = field(default_factory=dict)
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``, each parsed to its default's type and checked.

        Unknown keys, values that do not fit the declared type (``cells=2.7``
        for an integer), values outside :attr:`choices` or :attr:`limits`
        are refused with :class:`InvalidParameterError`.
        """
        params = dict(self.params)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise InvalidParameterError(
                    f"data set {self.name!r} has no parameter {key!r}; "
                    f"allowed: {', '.join(sorted(params)) or '(none)'}"
                )
            params[key] = self._fit(key, value)
        return params

    def _fit(self, key: str, value: Any) -> Any:
        default = self.params[key]
        kind = type(default)

        def refuse(why: str) -> InvalidParameterError:
            return InvalidParameterError(f"data set {self.name!r}: parameter {key!r} {why}; got {value!r}")

        if kind is bool:
            if not isinstance(value, bool):
                raise refuse("must be true or false")
        elif kind is int:
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise refuse("must be an integer") from None
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise refuse("must be an integer")
            value = int(value)
        elif kind is float:
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise refuse("must be a number") from None
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
                raise refuse("must be a finite number")
            value = float(value)
        elif not isinstance(value, kind):
            raise refuse(f"must be a {kind.__name__} like its default {default!r}")
        if key in self.choices and value not in self.choices[key]:
            raise refuse(f"must be one of {', '.join(map(repr, self.choices[key]))}")
        low, high = self.limits.get(key, (None, None))
        if (low is not None and value < low) or (high is not None and value > high):
            raise refuse(f"must lie in [{'-inf' if low is None else low}, {'inf' if high is None else high}]")
        return value

    def sample(self, seed: int, index: int, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Draw sample ``index`` alone (parameters and simulated fields)."""
        return {k: v[0] for k, v in _simulate_range(self, dict(params), seed, index, index + 1).items()}


def register_dataset(
    name: str,
    draw: Callable,
    simulate: Callable,
    params: Mapping[str, Any] | None = None,
    inputs: Iterable[str] = (),
    targets: Iterable[str] = (),
    description: str = "",
    choices: Mapping[str, Iterable] | None = None,
    limits: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> DatasetGenerator:
    """Register a data-set generator under ``name``.

    Parameters
    ----------
    draw
        ``draw(rng, params) -> {field: array}``: the parameters of one sample
        from its own generator ``numpy.random.default_rng([seed, i])``.
    simulate
        ``simulate(batch, params) -> {field: array}``: simulated fields for the
        stacked parameters ``batch[field]`` of shape ``(b, ...)``; each output
        has the same leading ``b``.  Must be deterministic and row-independent.
    params
        Generator parameters with their defaults (grid size, number of
        boundary inputs...); JSON-serializable scalars, strings or lists.
        They are stored in the file and may be overridden in :func:`generate`.
    inputs, targets
        Names of the fields a network reads and predicts (metadata for users).
    choices
        Allowed values of parameters that take one of a few (``{"dtype": ("float32", "float64")}``).
    limits
        Inclusive ``(low, high)`` bounds of numeric parameters (None: unbounded).

    Notes
    -----
    ``draw`` and ``simulate`` must be module-level functions of an importable
    module, since worker processes receive them by reference.
    """
    params = dict(params or {})
    json.dumps(params)  # metadata must be JSON-serializable
    choices = {k: tuple(v) for k, v in (choices or {}).items()}
    limits = dict(limits or {})
    unknown = sorted((set(choices) | set(limits)) - set(params))
    if unknown:
        raise InvalidParameterError(f"data set {name!r}: choices/limits for {unknown}, which are not parameters")
    gen = DatasetGenerator(name, draw, simulate, params, tuple(inputs), tuple(targets), description, choices, limits)
    return DATASETS.add(name, gen, same=lambda a, b: (a.draw, a.simulate) == (b.draw, b.simulate))


def dataset_names() -> list[str]:
    return DATASETS.names()


def list_datasets() -> dict[str, str]:
    """Registered name -> description."""
    return {name: gen.description for name, gen in DATASETS.items()}


def get_dataset(name: str) -> DatasetGenerator:
    """The generator registered as ``name`` (:class:`UnknownNameError` lists the registered ones)."""
    return DATASETS.get(name)


# --------------------------------------------------------------------------
# generation


def _simulate_range(gen: DatasetGenerator, params: dict, seed: int, start: int, stop: int) -> dict[str, np.ndarray]:
    drawn = [dict(gen.draw(np.random.default_rng([seed, i]), params)) for i in range(start, stop)]
    keys = list(drawn[0])
    for i, d in zip(range(start, stop), drawn):
        if list(d) != keys:
            raise ShapeMismatchError(f"data set {gen.name!r}: sample {i} drew fields {list(d)}, sample {start} drew {keys}")
    batch = {k: np.stack([np.asarray(d[k]) for d in drawn]) for k in keys}
    out = dict(batch)
    for k, v in dict(gen.simulate({k: v.copy() for k, v in batch.items()}, params)).items():
        if k in out:
            raise PhysinvError(f"data set {gen.name!r}: simulate returned {k!r}, a field draw already gives")
        v = np.asarray(v)
        if v.ndim == 0 or v.shape[0] != stop - start:
            raise ShapeMismatchError(
                f"data set {gen.name!r}: simulate returned {k!r} with shape {v.shape}; "
                f"expected a leading batch axis of {stop - start}"
            )
        out[k] = v
    for k, v in out.items():
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            raise InvalidParameterError(
                f"data set {gen.name!r}: field {k!r} has NaN/Inf in samples {start}..{stop - 1}; "
                "every generated value must be finite"
            )
    return out


def _worker_init(parent: int) -> None:
    """One torch thread; exit as soon as the parent process ``parent`` is gone (killed or not)."""
    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="physinv-parent-watch").start()


def _chunk_job(gen: DatasetGenerator, params: dict, seed: int, start: int, stop: int):
    return start, _simulate_range(gen, params, seed, start, stop)


def _identity(gen: DatasetGenerator, params: dict, seed: int, n: int, chunk: int) -> dict[str, Any]:
    return {"generator": gen.name, "params": json.dumps(params, sort_keys=True), "seed": int(seed),
            "n": int(n), "chunk": int(chunk)}


def _check_identity(meta: Mapping[str, Any], expected: dict[str, Any], path: Path) -> None:
    found = dict(meta, params=json.dumps(meta["params"], sort_keys=True))
    diff = {k: (found[k], expected[k]) for k in expected if found[k] != expected[k]}
    if diff:
        lines = "; ".join(f"{k}: file has {a!r}, this run asks {b!r}" for k, (a, b) in diff.items())
        raise DataMismatchError(
            f"{path} was generated with other settings ({lines}); rerun with the file's settings to "
            "resume or reuse it, or pass overwrite=True (--overwrite) to start over"
        )


def _count(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise InvalidParameterError(f"{name} must be an integer >= {least}; got {value!r}")
    return int(value)


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, a target that is a folder, unwritable, or a file that is not a physinv data set."""
    if out.is_dir():
        raise DataFileError(f"--out {out} is a folder; give the path of an HDF5 file, e.g. {out / 'data.h5'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFileError(f"cannot create the folder of --out {out} ({exc})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise DataFileError(f"cannot write into {out.parent} (permission denied); choose another --out")
    if out.exists() and datafile.format_of(out) not in (FORMAT, *datafile.OLD_FORMATS):
        raise DataFileError(
            f"{out} exists and is not a physinv data set (or is damaged beyond recognition); physinv never "
            "replaces such a file, with or without --overwrite: choose another --out, or remove it yourself"
        )


def _open_partial_for(gen: DatasetGenerator, params: dict, identity: dict, out: Path, overwrite: bool):
    """The partial file of ``out`` to continue, open for writing: resumed when it matches, else (re)created.

    None when the partial file is already sealed (a run stopped between sealing and renaming it).
    """
    partial = partial_path(out)
    if partial.exists():
        h5 = None
        try:
            if datafile.check_seal(partial):  # complete and sealed: only the rename is missing; never reopened "r+"
                _check_identity(datafile.read_metadata(partial, sealed=False), identity, partial)
                return None
            h5, meta = datafile.open_partial(out)  # the recorded chunks checked against their digests
            _check_identity(meta, identity, partial)
            return h5
        except DataMismatchError:
            if h5 is not None:
                h5.close()
            if not overwrite:
                raise
            partial.unlink()
        except DataFileError as exc:
            if h5 is not None:
                h5.close()
            warnings.warn(f"{exc}; it is an unfinished generation, starting it over", stacklevel=3)
            partial.unlink()
    first = _simulate_range(gen, params, identity["seed"], 0, 1)  # field shapes and dtypes
    datafile.create_partial(out, identity, gen.description, gen.inputs, gen.targets, first)
    return datafile.open_partial(out)[0]


def _fill(h5, gen: DatasetGenerator, params: dict, seed: int, chunk: int, workers: int, progress: bool) -> None:
    """Compute and write every chunk the file does not record as done (in ``workers`` processes)."""
    n = h5.attrs["n"].item()
    done = h5[DONE][()].any(axis=1)
    ranges = [(c * chunk, min(n, (c + 1) * chunk)) for c in range(done.size) if not done[c]]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=n - sum(b - a for a, b in ranges), unit="sample", desc=f"generate {gen.name}")

    def write(start: int, arrays: dict[str, np.ndarray]) -> None:
        stop = start + len(next(iter(arrays.values())))
        for k, v in arrays.items():
            if k not in h5 or h5[k].shape[1:] != v.shape[1:]:
                raise ShapeMismatchError(
                    f"data set {gen.name!r}: field {k!r} of samples {start}..{stop - 1} has shape {v.shape[1:]}, "
                    f"the file expects {h5[k].shape[1:] if k in h5 else 'no such field'}"
                )
            h5[k][start:stop] = v
        h5.flush()  # data first, then the completion mark
        datafile.mark_done(h5, start // chunk, start, stop, arrays)
        if bar is not None:
            bar.update(stop - start)

    try:
        if workers == 1 or len(ranges) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # same arithmetic as in the workers
            try:
                for start, stop in ranges:
                    write(start, _simulate_range(gen, params, seed, start, stop))
            finally:
                torch.set_num_threads(threads)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(os.getpid(),)) as pool:
                pending: set[cf.Future] = set()
                queue = list(ranges)
                try:
                    while queue or pending:
                        while queue and len(pending) < 2 * workers:
                            start, stop = queue.pop(0)
                            pending.add(pool.submit(_chunk_job, gen, params, seed, start, stop))
                        finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                        for fut in finished:
                            write(*fut.result())
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    raise
    finally:
        if bar is not None:
            bar.close()


def generate(
    name: str,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    workers: int = 1,
    chunk: int = 64,
    params: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    wait: float = 0.0,
) -> Path:
    """Generate ``n`` samples of data set ``name`` into the HDF5 file ``out``.

    Sample ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` and
    simulated; chunks of ``chunk`` samples are computed by ``workers``
    processes (``spawn``, one torch thread each, which exit when this process
    dies) and written as they finish into ``OUT.partial``
    (:mod:`physinv.learn.datafile`).  A chunk is marked complete only after
    its data are flushed, so rerunning the same call after a kill computes
    only the missing chunks.  The finished file is renamed onto ``out`` in one
    step; ``OUT.lock`` is held for the whole run, so a second run into the
    same path waits up to ``wait`` seconds and then refuses
    (:class:`~physinv.core.locking.LockedError`).

    A complete ``out`` with the same settings is reused as it is.  With
    ``overwrite`` an ``out`` written with other settings is replaced, once
    the new file is complete; a file that is not a physinv data set is never
    replaced.  Returns the path.  Raises :class:`DataMismatchError` if ``out``
    exists with other settings (unless ``overwrite``), :class:`DataFileError`
    for a target that cannot be written, :class:`UnknownNameError` for an
    unregistered ``name``.
    """
    gen = get_dataset(name)
    params = gen.resolve_params(params)
    n, chunk, workers = _count("n", n, 1), _count("chunk", chunk, 1), _count("workers", workers, 1)
    seed = _count("seed", seed, 0)
    out = Path(out)
    _check_target(out, overwrite)
    identity = _identity(gen, params, seed, n, chunk)
    with ExclusiveLock(out, wait=wait, what=f"generating {name!r} into"):
        if out.exists() and not overwrite:
            _check_identity(read_metadata(out), identity, out)
            return out  # complete with these settings: nothing to do
        h5 = _open_partial_for(gen, params, identity, out, overwrite)
        if h5 is not None:
            try:
                _fill(h5, gen, params, seed, chunk, workers, progress)
                datafile.seal(h5)
            finally:
                h5.close()
        os.replace(partial_path(out), out)
    return out

# --------------------------------------------------------------------------
# loading


@dataclass
class GeneratedData:
    """Fields of a data file as tensors, plus its metadata.

    ``data["u"]`` is the field ``u`` with shape ``(n, ...)``; ``data.meta``
    holds the generator name, its parameters, seed, n, chunk, physinv version
    and creation time; ``data.inputs`` / ``data.targets`` the field names the
    generator declares as network inputs and targets.
    """

    fields: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def __getitem__(self, key: str) -> torch.Tensor:
        try:
            return self.fields[key]
        except KeyError:
            raise UnknownNameError(f"no field {key!r} in the data file; fields: {', '.join(self.fields)}") from None

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def inputs(self) -> list[str]:
        return list(self.meta.get("inputs", []))

    @property
    def targets(self) -> list[str]:
        return list(self.meta.get("targets", []))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata of the data set ``path``, with ``chunks_done`` / ``chunks_total`` and ``complete``.

    When only the unfinished ``PATH.partial`` exists, its metadata (``complete`` False).
    Raises :class:`DataFileError` for a missing, foreign or damaged file.
    """
    path = Path(path)
    partial = partial_path(path)
    if not path.exists() and partial.exists():
        return dict(datafile.read_metadata(partial, sealed=False), complete=False)  # complete once renamed
    return datafile.read_metadata(path)


def load(path: str | os.PathLike, fields: Iterable[str] | None = None) -> GeneratedData:
    """Read a complete data file as tensors, every chunk checked against its checksum.

    Refuses (:class:`IncompleteDataError`) a data set whose generation did not
    finish, and (:class:`DataFileError`) a damaged file.
    """
    path = Path(path)
    meta = read_metadata(path)
    if not meta["complete"]:
        who = holder(path)
        state = f"{who} is generating it" if who else "its generation was interrupted"
        raise IncompleteDataError(
            f"{path} is incomplete ({meta['chunks_done']} of {meta['chunks_total']} chunks; {state}); finish it "
            f"by rerunning the same command: physinv data generate {meta['generator']} --n {meta['n']} "
            f"--seed {meta['seed']} --chunk {meta['chunk']} --out {path}"
            + "".join(f" --param {k}={json.dumps(v)}" for k, v in meta["params"].items())
        )
    names = list(meta["fields"]) if fields is None else list(fields)
    unknown = [k for k in names if k not in meta["fields"]]
    if unknown:
        raise UnknownNameError(f"no field(s) {unknown} in {path}; fields: {', '.join(meta['fields'])}")
    arrays = datafile.read_fields(path, names)
    return GeneratedData({k: torch.from_numpy(v) for k, v in arrays.items()}, meta)
