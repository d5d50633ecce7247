"""The one registry: how a problem joins the package.

A problem package (one of the package's own under ``problems/``, or a
third-party package) registers what it offers when it is imported: simulators
(the verification ladder runs on each), discretized operators (the operator
contract test runs on each), data-set generators (``physinv data``),
validation studies (``physinv validate``) and case studies (``physinv run``;
the command registers the scripts of the source tree's ``cases/``).  The
horizontal layers and the ``physinv`` command never import a problem; they
look it up here, and the first look-up imports every package declared under
the entry-point group :data:`ENTRY_POINT_GROUP` (its table in
``pyproject.toml``; a string, never an import).  A user's own package joins
the same way, or by calling the ``register_*`` functions before the look-up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, Iterator, TypeVar

from physinv.core.errors import DuplicateNameError, UnknownNameError

ENTRY_POINT_GROUP = "physinv.problems"

T = TypeVar("T")

_loaded = False


def load_problems() -> list[str]:
    """Import every problem package declared under :data:`ENTRY_POINT_GROUP` (once); returns their modules."""
    global _loaded
    modules = [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    if _loaded:
        return modules
    _loaded = True
    for module in modules:
        importlib.import_module(module)
    return modules


class Registry(Generic[T]):
    """Named entries of one kind (``"simulator"``, ``"data set"``, ``"validation"``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, same=None) -> T:
        """Register ``entry`` under ``name``; a second, different entry under the same name is refused.

        ``same(old, new)`` tells whether a repeated registration is the same
        entry (a module imported twice); by default only the identical object is.
        """
        if name in self._entries:
            old = self._entries[name]
            if not (old is entry or (same is not None and same(old, entry))):
                raise DuplicateNameError(f"{self.kind} {name!r} registered twice (another entry already has this name)")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry ``name``; :class:`UnknownNameError` lists the registered ones."""
        if name not in self._entries:
            load_problems()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or '(none registered)'}"
            ) from None

    def names(self) -> list[str]:
        load_problems()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: str) -> bool:
        load_problems()
        return name in self._entries


def same_example_registration(a, b) -> bool:
    """Whether two ``(name, description, make_example)`` specs are one registration made twice (a module
    imported twice), not another entry under the same name."""
    key = lambda s: (s.description, s.make_example.__module__, s.make_example.__qualname__)  # noqa: E731
    return key(a) == key(b)


@dataclass(frozen=True)
class ValidationSpec:
    """A validation study: ``module.main(argv) -> exit code`` runs it (imported on use)."""

    name: str
    module: str
    description: str

    def main(self, argv: list[str]) -> int:
        return importlib.import_module(self.module).main(argv)


@dataclass(frozen=True)
class CaseSpec:
    """A case study: the script at ``path``, run as ``__main__`` with the case flags, and its one-line summary.

    ``figures`` maps figures of its ``--quick`` run to the documentation's figures: pairs
    ``(output file of the run, file name in docs/figures)`` (``physinv docs figures``).
    """

    name: str
    path: str
    summary: str
    figures: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DocsFigureSpec:
    """Documentation figures drawn by one function: ``module:function`` called as ``function(out_dir)``
    (imported on use) writes each of ``figures`` (file names) into ``out_dir``."""

    name: str
    producer: str
    figures: tuple[str, ...]
    description: str

    def make(self, out_dir) -> None:
        module, _, function = self.producer.partition(":")
        getattr(importlib.import_module(module), function)(out_dir)


SIMULATORS: Registry = Registry("simulator")
OPERATORS: Registry = Registry("operator")
DATASETS: Registry = Registry("data set")
VALIDATIONS: Registry[ValidationSpec] = Registry("validation")
CASES: Registry[CaseSpec] = Registry("case")
DOCS_FIGURES: Registry[DocsFigureSpec] = Registry("docs figure group")


def register_validation(name: str, module: str, description: str) -> ValidationSpec:
    """Register ``physinv validate NAME``: ``module`` (imported only when run) defines ``main(argv)``."""
    return VALIDATIONS.add(name, ValidationSpec(name, module, description), same=lambda a, b: a == b)


def register_case(name: str, path: str, summary: str = "",
                  figures: tuple[tuple[str, str], ...] = ()) -> CaseSpec:
    """Register ``physinv run NAME``: the script ``path`` (its flags are the case's own); ``figures``
    as in :class:`CaseSpec`."""
    figures = tuple((str(a), str(b)) for a, b in figures)
    return CASES.add(name, CaseSpec(name, str(path), summary, figures), same=lambda a, b: a == b)


def register_docs_figures(name: str, producer: str, figures: tuple[str, ...] | list[str],
                          description: str) -> DocsFigureSpec:
    """Register figures of the documentation drawn by ``producer`` (``"module:function"``, imported only
    when ``physinv docs figures`` runs it); see :class:`DocsFigureSpec`."""
    if ":" not in producer:
        raise ValueError(f"producer must be 'module:function'; got {producer!r}")
    spec = DocsFigureSpec(name, producer, tuple(figures), description)
    return DOCS_FIGURES.add(name, spec, same=lambda a, b: a == b)
