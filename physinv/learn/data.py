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
import datetime as _dt
import json
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

import physinv
from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError, UnknownNameError
from physinv.core.registry import DATASETS

FORMAT = "physinv-dataset-1"
_DONE = "_chunks_done"


class DataFileError(PhysinvError, ValueError):
    """A data file that is incomplete, unreadable, or was written for other generation parameters."""


class IncompleteDataError(DataFileError):
    """A data file whose generation has not finished (some chunks are missing)."""


class DataMismatchError(DataFileError):
    """An existing (partial) data file was written by another generator, parameters, seed, n or chunk."""


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

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``; unknown keys are refused."""
        params = dict(self.params)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise InvalidParameterError(
                    f"data set {self.name!r} has no parameter {key!r}; "
                    f"allowed: {', '.join(sorted(params)) or '(none)'}"
                )
            default = params[key]
            if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, (int, float, str)):
                try:
                    value = type(default)(value)
                except ValueError:
                    raise InvalidParameterError(
                        f"data set {self.name!r}: parameter {key!r} must be a {type(default).__name__}; got {value!r}"
                    ) from None
            params[key] = value
        return params

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

    ``draw`` and ``simulate`` must be module-level functions of an importable
    module, since worker processes receive them by reference.
    """
    params = dict(params or {})
    json.dumps(params)  # metadata must be JSON-serializable
    gen = DatasetGenerator(name, draw, simulate, params, tuple(inputs), tuple(targets), description)
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


def _worker_init() -> None:
    torch.set_num_threads(1)


def _chunk_job(gen: DatasetGenerator, params: dict, seed: int, start: int, stop: int):
    return start, _simulate_range(gen, params, seed, start, stop)


def _identity(gen: DatasetGenerator, params: dict, seed: int, n: int, chunk: int) -> dict[str, Any]:
    return {"generator": gen.name, "params": json.dumps(params, sort_keys=True), "seed": int(seed),
            "n": int(n), "chunk": int(chunk)}


def _check_identity(h5, expected: dict[str, Any], path: Path) -> None:
    if h5.attrs.get("format") != FORMAT:
        raise DataMismatchError(f"{path} is not a physinv data file; pass overwrite=True (--overwrite) to replace it")
    found = {k: h5.attrs.get(k) for k in expected}
    found = {k: (v.item() if hasattr(v, "item") else v) for k, v in found.items()}
    diff = {k: (found[k], expected[k]) for k in expected if found[k] != expected[k]}
    if diff:
        lines = "; ".join(f"{k}: file has {a!r}, this run asks {b!r}" for k, (a, b) in diff.items())
        raise DataMismatchError(
            f"{path} was generated with other settings ({lines}); rerun with the file's settings to "
            "resume, or pass overwrite=True (--overwrite) to start over"
        )


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
) -> Path:
    """Generate ``n`` samples of data set ``name`` into the HDF5 file ``out``.

    Sample ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` and
    simulated; chunks of ``chunk`` samples are computed by ``workers``
    processes (``spawn``, one torch thread each) and written as they finish.
    A chunk is marked complete only after its data are flushed, so rerunning
    the same call after a kill computes only the missing chunks.

    Returns the path.  Raises :class:`DataMismatchError` if ``out`` exists
    with other settings (unless ``overwrite``), :class:`UnknownNameError` for
    an unregistered ``name``.
    """
    import h5py

    gen = get_dataset(name)
    params = gen.resolve_params(params)
    n, chunk, workers = int(n), int(chunk), int(workers)
    if n < 1 or chunk < 1 or workers < 1:
        raise InvalidParameterError(f"n, chunk and workers must be >= 1; got n={n}, chunk={chunk}, workers={workers}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    identity = _identity(gen, params, seed, n, chunk)
    n_chunks = -(-n // chunk)

    if out.exists() and overwrite:
        out.unlink()
    if out.exists():
        try:
            h5 = h5py.File(out, "r+")
        except OSError as exc:
            raise DataFileError(
                f"cannot open {out} to resume ({exc}); another process may be writing it, or the file is "
                "damaged (e.g. killed in the middle of a write): pass overwrite=True (--overwrite) to start over"
            ) from None
        try:
            _check_identity(h5, identity, out)
        except BaseException:
            h5.close()
            raise
    else:
        first = _simulate_range(gen, params, seed, 0, 1)  # field shapes and dtypes
        h5 = h5py.File(out, "w")
        h5.attrs["format"] = FORMAT
        for k, v in identity.items():
            h5.attrs[k] = v
        h5.attrs["physinv_version"] = physinv.__version__
        h5.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        h5.attrs["description"] = gen.description
        h5.attrs["fields"] = json.dumps(list(first))
        h5.attrs["inputs"] = json.dumps(list(gen.inputs))
        h5.attrs["targets"] = json.dumps(list(gen.targets))
        h5.attrs["complete"] = False
        for k, v in first.items():
            h5.create_dataset(k, shape=(n, *v.shape[1:]), dtype=v.dtype,
                              chunks=(min(chunk, n), *v.shape[1:]))
        h5.create_dataset(_DONE, data=np.zeros(n_chunks, dtype=np.uint8))
        h5.flush()

    try:
        done = h5[_DONE][()]
        todo = [c for c in range(n_chunks) if not done[c]]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, initial=n - sum(min(chunk, n - c * chunk) for c in todo), unit="sample",
                       desc=f"generate {name}")

        def write(start: int, arrays: dict[str, np.ndarray]) -> None:
            stop = start + len(next(iter(arrays.values())))
            for k, v in arrays.items():
                if k not in h5 or h5[k].shape[1:] != v.shape[1:]:
                    raise ShapeMismatchError(
                        f"data set {name!r}: field {k!r} of samples {start}..{stop - 1} has shape {v.shape[1:]}, "
                        f"the file expects {h5[k].shape[1:] if k in h5 else 'no such field'}"
                    )
                h5[k][start:stop] = v
            h5.flush()  # data first, then the completion mark
            h5[_DONE][start // chunk] = 1
            h5.flush()
            if bar is not None:
                bar.update(stop - start)

        ranges = [(c * chunk, min(n, (c + 1) * chunk)) for c in todo]
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
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
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
        if bar is not None:
            bar.close()
        if bool(h5[_DONE][()].all()):
            h5.attrs["complete"] = True
            h5.flush()
    finally:
        h5.close()
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
    """Metadata of a data file, with ``chunks_done`` / ``chunks_total`` (works on partial files)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DataFileError(f"no data file at {path}; create it with `physinv data generate NAME --out {path}`")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != FORMAT:
                raise DataFileError(f"{path} is not a physinv data file (no format attribute {FORMAT!r})")
            meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
            done = h5[_DONE][()]
    except OSError as exc:
        raise DataFileError(f"cannot read {path} ({exc}); regenerate it with --overwrite") from None
    for key in ("params", "fields", "inputs", "targets"):
        meta[key] = json.loads(meta[key])
    meta["complete"] = bool(meta["complete"]) and bool(done.all())
    meta["chunks_done"], meta["chunks_total"] = int(done.sum()), int(done.size)
    return meta


def load(path: str | os.PathLike, fields: Iterable[str] | None = None) -> GeneratedData:
    """Read a complete data file as tensors; refuses files whose generation did not finish."""
    import h5py

    meta = read_metadata(path)
    if not meta["complete"]:
        raise IncompleteDataError(
            f"{path} is incomplete ({meta['chunks_done']} of {meta['chunks_total']} chunks); finish it by "
            f"rerunning the same command: physinv data generate {meta['generator']} --n {meta['n']} "
            f"--seed {meta['seed']} --chunk {meta['chunk']} --out {path}"
        )
    names = list(meta["fields"]) if fields is None else list(fields)
    unknown = [k for k in names if k not in meta["fields"]]
    if unknown:
        raise UnknownNameError(f"no field(s) {unknown} in {path}; fields: {', '.join(meta['fields'])}")
    with h5py.File(path, "r") as h5:
        tensors = {k: torch.from_numpy(h5[k][()]) for k in names}
    return GeneratedData(tensors, meta)
