"""Progress bars for long optimizations (tqdm on stderr)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm.auto import tqdm


@contextmanager
def iteration_progress(desc: str, total: int | None = None) -> Iterator[Callable[[int, float, float], None]]:
    """Yield an optimizer callback ``(iteration, objective, misfit_ratio)`` that advances a bar."""
    with tqdm(desc=desc, total=total, unit="it", leave=False, mininterval=1.0, dynamic_ncols=True) as bar:

        def callback(iteration: int, objective: float, ratio: float) -> None:
            bar.update(1)
            bar.set_postfix(J=f"{objective:.4e}", misfit_noise=f"{ratio:.3f}", refresh=False)

        yield callback
