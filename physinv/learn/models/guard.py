"""A trained model refuses input in another format than it was trained on.

:class:`InputGuard` wraps a model with the :class:`InputSpec` of its training
data (``L`` boundary inputs, ``n_boundary`` points, ``channels``, output grid
``n x n``, dtype).  Every call checks the input before the model sees it and
the output after, and raises a clear error -- which size differs, what the
model was trained on, what would fit -- instead of a cryptic matmul error or,
worse, a silent answer (a NIO pools over ``L`` and runs with any ``L``; an
FNO resamples any grid).

The spec travels with the weights: it is a buffer (``input_spec``) of the
state dict, so a checkpoint carries it, and loading a state dict written for
another spec raises :class:`InputSpecMismatchError`.  :meth:`InputGuard.signature`
gives the spec as a dict for the trainer's checkpoint signature
(``Trainer(..., signature=guard.signature())``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.learn.checkpoint import CheckpointMismatchError

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class InputSpecMismatchError(CheckpointMismatchError):
    """A state dict written for a model trained on another input format."""


@dataclass(frozen=True)
class InputSpec:
    """The input format of a Calderón network: ``(batch, L, n_boundary, channels)`` -> ``(batch, n, n)``."""

    L: int
    n_boundary: int
    channels: int
    n: int
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for key in ("L", "n_boundary", "channels", "n"):
            if int(getattr(self, key)) < 1:
                raise InvalidParameterError(f"InputSpec.{key} must be >= 1; got {getattr(self, key)}")
        if self.dtype not in {str(d).removeprefix("torch.") for d in _DTYPES}:
            raise InvalidParameterError(f"InputSpec.dtype must be a floating dtype name; got {self.dtype!r}")

    @classmethod
    def from_data(cls, x: torch.Tensor, y: torch.Tensor) -> "InputSpec":
        """The spec of training inputs ``x`` ``(B, L, n_boundary, C)`` and targets ``y`` ``(B, n, n)``."""
        if x.ndim != 4 or y.ndim != 3 or y.shape[1] != y.shape[2]:
            raise ShapeMismatchError(f"expected inputs (B, L, n_boundary, channels) and targets (B, n, n); "
                                     f"got {tuple(x.shape)} and {tuple(y.shape)}")
        return cls(int(x.shape[1]), int(x.shape[2]), int(x.shape[3]), int(y.shape[1]),
                   str(x.dtype).removeprefix("torch."))

    def as_tensor(self) -> torch.Tensor:
        code = [str(d).removeprefix("torch.") for d in _DTYPES].index(self.dtype)
        return torch.tensor([self.L, self.n_boundary, self.channels, self.n, code], dtype=torch.int64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> "InputSpec":
        L, nb, c, n, code = (int(v) for v in t.tolist())
        return cls(L, nb, c, n, str(_DTYPES[code]).removeprefix("torch."))

    @classmethod
    def from_state_dict(cls, state_dict: dict, prefix: str = "") -> "InputSpec":
        """The spec stored in a guard's state dict (e.g. a checkpoint's ``"model"`` entry)."""
        key = prefix + "input_spec"
        if key not in state_dict:
            raise InvalidParameterError(f"the state dict has no {key!r}: it was not written by an InputGuard")
        return cls.from_tensor(state_dict[key])

    def describe(self) -> str:
        grid = f"{self.n}x{self.n} grid"
        return (f"(batch, L={self.L}, n_boundary={self.n_boundary}, channels={self.channels}) {self.dtype} "
                f"-> (batch, {self.n}, {self.n}) on the {grid}")


def _grid_hint(n_boundary: int) -> str:
    """The square grid a number of boundary nodes belongs to (4 (n - 1) nodes on an n x n grid)."""
    if n_boundary % 4 == 0 and n_boundary >= 8:
        n = n_boundary // 4 + 1
        return f" (the boundary of a {n}x{n} grid)"
    return ""


class InputGuard(torch.nn.Module):
    """``model`` with its training input format checked on every call.

    Parameters
    ----------
    model
        Maps ``(B, L, n_boundary, channels)`` to ``(B, n, n)``.
    spec
        The training input format (e.g. ``InputSpec.from_data(x_train, y_train)``).

    Notes
    -----
    Raises, on a call: :class:`~physinv.core.errors.ShapeMismatchError` for
    another number of axes, ``L``, ``n_boundary`` (another grid), ``channels``
    or output grid; :class:`~physinv.core.errors.InvalidParameterError` for a
    non-tensor, another dtype, or NaN/Inf entries (naming the samples).
    """

    def __init__(self, model: torch.nn.Module, spec: InputSpec):
        super().__init__()
        self.model = model
        self.register_buffer("input_spec", spec.as_tensor())

    @property
    def spec(self) -> InputSpec:
        return InputSpec.from_tensor(self.input_spec)

    def signature(self) -> dict:
        """The spec as a dict, for ``Trainer(signature=...)``."""
        return {"input_spec": asdict(self.spec)}

    def check_input(self, x: torch.Tensor) -> None:
        spec = self.spec
        trained = f"the model was trained on {spec.describe()}"
        if not torch.is_tensor(x):
            raise InvalidParameterError(f"input must be a torch.Tensor; got {type(x).__name__}; {trained}")
        if x.ndim != 4:
            raise ShapeMismatchError(
                f"input has shape {tuple(x.shape)} ({x.ndim} axes); expected 4 axes "
                f"(batch, L={spec.L}, n_boundary={spec.n_boundary}, channels={spec.channels}); {trained}"
                + ("; add a batch axis with x[None]" if x.ndim == 3 else "")
            )
        _, L, nb, c = x.shape
        if L != spec.L:
            raise ShapeMismatchError(
                f"input has L={L} boundary inputs (axis 1); the model was trained on L={spec.L}: use the same "
                f"{spec.L} boundary inputs (or retrain for L={L}); {trained}"
            )
        if nb != spec.n_boundary:
            raise ShapeMismatchError(
                f"input has n_boundary={nb} points (axis 2){_grid_hint(nb)}; the model was trained on "
                f"n_boundary={spec.n_boundary}{_grid_hint(spec.n_boundary)}: measure on the training grid; {trained}"
            )
        if c != spec.channels:
            raise ShapeMismatchError(
                f"input has {c} channels (axis 3); the model was trained on {spec.channels} "
                f"(e.g. Dirichlet input, Neumann output); {trained}"
            )
        if str(x.dtype).removeprefix("torch.") != spec.dtype:
            raise InvalidParameterError(f"input has dtype {x.dtype}; {trained} (convert with x.to(torch.{spec.dtype}))")
        bad = ~torch.isfinite(x.detach())
        if bool(bad.any()):
            rows = torch.nonzero(bad.flatten(1).any(1)).flatten()[:5].tolist()
            raise InvalidParameterError(
                f"input contains {int(bad.sum())} NaN/Inf value(s) (samples {rows}); all entries must be finite"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = self.model(x)
        n = self.spec.n
        if tuple(out.shape) != (x.shape[0], n, n):
            raise ShapeMismatchError(
                f"the wrapped model returned shape {tuple(out.shape)}; the spec expects ({x.shape[0]}, {n}, {n}): "
                "the model was built for another grid than its training data"
            )
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "input_spec"
        if key in state_dict:
            found = state_dict[key]
            if tuple(found.shape) != tuple(self.input_spec.shape) or not torch.equal(found.cpu(), self.input_spec.cpu()):
                try:
                    other = InputSpec.from_tensor(found).describe()
                except Exception:  # a malformed spec
                    other = repr(found.tolist())
                raise InputSpecMismatchError(
                    f"the state dict was trained on {other}; this model is set up for {self.spec.describe()}: "
                    "build the guard with the checkpoint's InputSpec, or retrain"
                )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
