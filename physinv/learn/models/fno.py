"""Fourier neural operators from ``neuraloperator`` (the ``learn`` extra), imported lazily.

:func:`neuralop_fno` builds ``neuralop.models.FNO`` with two fixes that make it
a well-behaved submodule of physinv models:

* ``neuralop`` is imported on first use through
  :func:`physinv.core.extras.require` (a missing package names the ``learn``
  extra); ``neuraloperator`` 2.0 imports ``wandb`` when it is imported -- if
  that import is broken (not merely absent, which neuralop tolerates), it is
  blocked and neuralop is imported without it;
* neuralop's ``BaseModel.state_dict`` adds an un-prefixed ``_metadata`` dict
  entry, which breaks ``load_state_dict`` of any module that contains the FNO
  ("Unexpected key(s): _metadata") and trainer signatures that expect tensors;
  the returned module uses the plain :class:`torch.nn.Module` state dict
  (tensors only; the version check is the physinv checkpoint's job);
* the spectral contraction ``(b, i, k...) x (i, o, k...) -> (b, o, k...)``
  of each Fourier layer is done as one batched matrix product over the kept
  modes (:func:`_contract_modes_first`) instead of neuralop's ``tl.einsum``,
  which on CPU lands in a slow complex ``bmm`` layout (measured 530 ms for
  one contraction of a batch of 64 at width 32, 12x12 modes, against about
  5 ms this way; same result to float32 rounding).

:class:`BoundaryFNO` is the FNO baseline of the Calderón problem: the
measurement matrix is resampled onto the output grid and an FNO maps it to the
coefficient.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import torch
import torch.nn.functional as F

from physinv.core.errors import InvalidParameterError
from physinv.core.extras import require

_NEURALOP_MODELS = None


def _involves_wandb(exc: BaseException) -> bool:
    """Whether an import error was raised by (or while importing) ``wandb``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if "wandb" in str(exc) or "wandb" in str(getattr(exc, "name", "")):
            return True
        tb = exc.__traceback__
        while tb is not None:
            if "wandb" in tb.tb_frame.f_code.co_filename:
                return True
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return False


def _neuralop_models():
    """``neuralop.models``, imported once (with a broken ``wandb`` blocked, see the module doc)."""
    global _NEURALOP_MODELS
    if _NEURALOP_MODELS is not None:
        return _NEURALOP_MODELS
    if importlib.util.find_spec("neuralop") is None:
        require("neuralop.models", "learn", "the FNO and NIO models")  # raises MissingExtraError
    try:
        _NEURALOP_MODELS = importlib.import_module("neuralop.models")
    except Exception as exc:  # e.g. a wandb/protobuf version clash raised at import time
        if not _involves_wandb(exc):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] in ("neuralop", "wandb")]:
            del sys.modules[name]
        sys.modules["wandb"] = None  # `import wandb` now raises ModuleNotFoundError, which neuralop tolerates
        _NEURALOP_MODELS = importlib.import_module("neuralop.models")
    return _NEURALOP_MODELS


def _contract_modes_first(x: torch.Tensor, weight, separable: bool = False) -> torch.Tensor:
    """``einsum("bi...,io...->bo...")`` as a ``bmm`` batched over the Fourier modes (dense weights)."""
    if not torch.is_tensor(weight):
        weight = weight.to_tensor()
    if separable:  # one channel axis: elementwise product
        return x * weight
    b, i = x.shape[:2]
    modes = tuple(x.shape[2:])
    d = len(modes)
    lead = tuple(range(2, 2 + d))
    xp = x.permute(*lead, 0, 1).reshape(-1, b, i)
    wp = weight.permute(*lead, 0, 1).reshape(-1, i, weight.shape[1])
    out = torch.bmm(xp, wp).reshape(*modes, b, weight.shape[1])
    return out.permute(d, d + 1, *range(d))


def neuralop_fno(n_modes: tuple[int, int], in_channels: int, out_channels: int, hidden_channels: int,
                 n_layers: int = 4, **kwargs) -> torch.nn.Module:
    """``neuralop.models.FNO`` with a plain (tensor-only) state dict; arguments as neuralop's."""
    fno = _neuralop_models().FNO(n_modes=tuple(int(m) for m in n_modes), in_channels=in_channels,
                                 out_channels=out_channels, hidden_channels=hidden_channels,
                                 n_layers=n_layers, **kwargs)
    for conv in getattr(getattr(fno, "fno_blocks", None), "convs", []):
        if getattr(conv, "implementation", "reconstructed") == "reconstructed" and hasattr(conv, "_contract"):
            conv._contract = _contract_modes_first
    fno.state_dict = types.MethodType(torch.nn.Module.state_dict, fno)
    fno.load_state_dict = types.MethodType(torch.nn.Module.load_state_dict, fno)
    return fno


class BoundaryFNO(torch.nn.Module):
    """FNO baseline: measurement matrix -> coefficient on the grid.

    The input ``(B, L, n_boundary, C)`` is read as a ``C``-channel image on
    an ``L x n_boundary`` grid (inputs x boundary points), resampled bilinearly
    to the ``n x n`` output grid, and mapped by an FNO (grid coordinates
    appended as two extra channels) to ``(B, n, n)``.  Not invariant to the
    order of the ``L`` inputs (the ablation the NIO paper makes).

    Parameters
    ----------
    n
        Output grid (``n x n`` nodes).
    channels
        ``C``, e.g. 2 for (Dirichlet input, Neumann output).
    width, modes, layers
        FNO hidden channels, Fourier modes per axis, Fourier layers.
    """

    def __init__(self, n: int, channels: int = 2, width: int = 32, modes: int = 12, layers: int = 4):
        super().__init__()
        if n < 2 or channels < 1 or modes < 1:
            raise InvalidParameterError(f"need n >= 2, channels >= 1, modes >= 1; got {n}, {channels}, {modes}")
        self.n = int(n)
        self.fno = neuralop_fno((modes, modes), in_channels=channels, out_channels=1,
                                hidden_channels=width, n_layers=layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = x.permute(0, 3, 1, 2)  # (B, C, L, n_boundary)
        img = F.interpolate(img, size=(self.n, self.n), mode="bilinear", align_corners=True)
        return self.fno(img)[:, 0]
