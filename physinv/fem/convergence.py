"""Convergence studies: fit the observed order of accuracy on a log-log scale.

For mesh widths ``h_k`` and errors ``e_k`` the model ``e = C h^p`` is fitted by
least squares on

.. math::

    \\log e_k = \\log C + p \\log h_k ,

and the observed orders between successive levels,

.. math::

    p_{k} = \\frac{\\log(e_{k} / e_{k-1})}{\\log(h_{k} / h_{k-1})},

are kept in the table.  Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physinv.core.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["ConvergenceStudy", "fit_rate"]


@dataclass(frozen=True)
class ConvergenceStudy:
    """Result of :func:`fit_rate`.

    Attributes
    ----------
    h
        Mesh widths, in the order given.
    errors
        Errors at those widths.
    rate
        Least-squares slope ``p`` of ``log e`` against ``log h``.
    constant
        ``C`` of the fit ``e = C h^p``.
    pairwise_rates
        Observed order between each level and the previous one
        (``len(h) - 1`` values).
    """

    h: tuple[float, ...]
    errors: tuple[float, ...]
    rate: float
    constant: float
    pairwise_rates: tuple[float, ...]

    def predicted(self, h) -> np.ndarray:
        """Error the fit predicts at widths ``h``: ``C h^p``."""
        return self.constant * np.asarray(h, dtype=np.float64) ** self.rate

    def as_dict(self) -> dict:
        """JSON-friendly dict (lists of floats)."""
        return {
            "h": list(self.h),
            "error": list(self.errors),
            "rate": self.rate,
            "constant": self.constant,
            "pairwise_rates": list(self.pairwise_rates),
        }

    def table(self, error_name: str = "error") -> str:
        """Plain-text table: ``h``, error, observed order per level, fitted rate."""
        width = max(12, len(error_name))
        lines = [f"{'h':>12}  {error_name:>{width}}  {'order':>6}"]
        for k, (h, e) in enumerate(zip(self.h, self.errors)):
            order = f"{self.pairwise_rates[k - 1]:6.3f}" if k else f"{'-':>6}"
            lines.append(f"{h:12.4e}  {e:{width}.4e}  {order}")
        lines.append(f"least-squares rate: {self.rate:.4f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def fit_rate(h, errors) -> ConvergenceStudy:
    """Fit ``errors ~ C h^p`` by least squares in log-log coordinates.

    Parameters
    ----------
    h
        Mesh widths (> 0), at least two distinct values.
    errors
        Errors (> 0, finite), one per width.

    Returns
    -------
    ConvergenceStudy
        The table, the fitted rate ``p`` and constant ``C``.

    Examples
    --------
    >>> fit_rate([0.1, 0.05, 0.025], [3e-2, 7.5e-3, 1.875e-3]).rate  # doctest: +ELLIPSIS
    2.0...
    """
    h_arr = np.asarray(h, dtype=np.float64).ravel()
    e_arr = np.asarray(errors, dtype=np.float64).ravel()
    if h_arr.shape != e_arr.shape:
        raise ShapeMismatchError(f"h and errors need the same length; got {h_arr.size} and {e_arr.size}")
    if h_arr.size < 2:
        raise InvalidParameterError(f"a rate needs at least 2 levels; got {h_arr.size}")
    for name, arr in (("h", h_arr), ("errors", e_arr)):
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise InvalidParameterError(
                f"{name} must be finite and > 0 for a log-log fit; got {arr.tolist()}"
            )
    if np.unique(h_arr).size < 2:
        raise InvalidParameterError(f"h needs at least 2 distinct values; got {h_arr.tolist()}")
    log_h, log_e = np.log(h_arr), np.log(e_arr)
    design = np.column_stack([np.ones_like(log_h), log_h])
    (log_c, rate), *_ = np.linalg.lstsq(design, log_e, rcond=None)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairwise = np.diff(log_e) / np.diff(log_h)
    return ConvergenceStudy(
        h=tuple(float(v) for v in h_arr),
        errors=tuple(float(v) for v in e_arr),
        rate=float(rate),
        constant=float(np.exp(log_c)),
        pairwise_rates=tuple(float(v) for v in pairwise),
    )
