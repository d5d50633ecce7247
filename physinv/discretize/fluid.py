"""Pressure-projection Poisson matrices on flagged cell-centred grids (2D and 3D).

The pressure solve of an incompressible (smoke) simulation on a uniform
cell-centred grid with spacing ``h`` is ``-lap(p) = f`` on the fluid cells,
with zero flux ``dp/dn = 0`` across faces to solid cells (obstacles and the
walls of the box) and ``p = 0`` outside open sides / in empty (air) cells.
Every cell carries a flag:

* ``FLUID`` (1): an unknown;
* ``SOLID`` (0): an obstacle; faces between fluid and solid are Neumann;
* ``EMPTY`` (2): air at ``p = 0``; faces between fluid and empty are Dirichlet.

Outside the box, the sides listed in ``open_sides`` (default: the top side,
``z1`` in 3D, ``y1`` in 2D) are a layer of ``EMPTY`` ghost cells; the other
sides are ``SOLID`` walls.  Counting unit face weights gives the graph
Laplacian restricted to the fluid cells,

    (A p)_i = n_i p_i - sum_{j fluid, j ~ i} p_j,

with ``n_i`` the number of non-solid face neighbours of ``i`` (fluid ones plus
Dirichlet ones).  ``A = h^2 (-Delta_h)``: it is ``h^2`` times the 5-/7-point
negative Laplacian (dimensionless; divide by ``h^2`` in m^2 for SI units of
``1/m^2``), with the Dirichlet value ``p = 0`` placed at the *centre* of the
ghost/empty cell (the first-order "graph" treatment of Bridson's book and of
the DCDM paper, not the half-cell ghost-fluid weight 2).  For the projection
``-lap(p) = -(rho/dt) div(u*)`` the right-hand side is
``b_i = -(rho h^2 / dt) (div u*)_i`` on fluid cells.

Non-fluid cells get identity rows, so vectors have the shape of the whole
grid, ``(..., nx, ny[, nz])``, ``A`` is symmetric positive definite (when
every connected fluid region touches a Dirichlet face) and CG-ready;
right-hand sides must vanish on non-fluid cells (:meth:`FluidPoissonOperator.check_rhs`).
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import scipy.sparse as sp
import torch
from scipy import ndimage

from physinv.core.errors import InvalidParameterError, ShapeMismatchError
from physinv.core.operator import OperatorExample, register_operator

SOLID = 0
FLUID = 1
EMPTY = 2

_AXES = "xyz"


def _as_flags(flags) -> np.ndarray:
    """Flags as an int8 numpy array; bool arrays mean True = FLUID, False = SOLID."""
    if torch.is_tensor(flags):
        flags = flags.detach().cpu().numpy()
    arr = np.asarray(flags)
    if arr.dtype == bool:
        return np.where(arr, FLUID, SOLID).astype(np.int8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidParameterError(
            f"flags must be an integer or bool array, got dtype {arr.dtype}; "
            f"use SOLID={SOLID}, FLUID={FLUID}, EMPTY={EMPTY}"
        )
    bad = ~np.isin(arr, (SOLID, FLUID, EMPTY))
    if bad.any():
        raise InvalidParameterError(
            f"flags contain {int(bad.sum())} value(s) outside SOLID={SOLID}, FLUID={FLUID}, "
            f"EMPTY={EMPTY} (e.g. {arr[bad].ravel()[0]})"
        )
    return arr.astype(np.int8)


class FluidPoissonOperator:
    """``h^2 (-Delta_h)`` on the fluid cells of a flagged grid, identity elsewhere.

    Parameters
    ----------
    flags
        Integer array of cell flags, shape ``(nx, ny)`` or ``(nx, ny, nz)``
        (``SOLID``/``FLUID``/``EMPTY``), or a bool array (True = fluid).
    open_sides
        Box sides with ``p = 0`` just outside (``x0, x1, y0, y1[, z0, z1]``);
        default: the top side (last axis, ``y1`` in 2D, ``z1`` in 3D).  The
        other sides are solid walls.
    isolated
        What to do with a connected fluid region (face connectivity) that
        touches no Dirichlet face -- ``A`` would be singular there (constant
        null vector): ``"raise"`` (default) raises
        :class:`~physinv.core.errors.InvalidParameterError`; ``"solidify"``
        turns those cells solid and warns.
    dtype, device
        Of the weights of :meth:`bind` (a matvec on another dtype/device
        converts them once and caches).

    Notes
    -----
    The operator does not depend on a parameter ``theta``: ``apply``,
    ``apply_tangent`` (zero), ``bind``, ``assemble`` and ``diagonal`` accept one (so the solvers of
    :mod:`physinv.linalg.solvers` can call them) and ignore it; pass any
    tensor (e.g. ``torch.empty(0)``) to a solver that expects one.
    """

    symmetric = True

    def __init__(
        self,
        flags,
        open_sides: Iterable[str] | None = None,
        isolated: str = "raise",
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ):
        arr = _as_flags(flags)
        if arr.ndim not in (2, 3):
            raise ShapeMismatchError(
                f"flags must be 2D (nx, ny) or 3D (nx, ny, nz); got shape {arr.shape}"
            )
        if min(arr.shape) < 1:
            raise ShapeMismatchError(f"flags has an empty axis: shape {arr.shape}")
        d = arr.ndim
        sides = tuple(f"{_AXES[a]}{e}" for a in range(d) for e in (0, 1))
        if open_sides is None:
            open_sides = (f"{_AXES[d - 1]}1",)
        open_sides = tuple(open_sides)
        for side in open_sides:
            if side not in sides:
                raise InvalidParameterError(f"unknown open side {side!r}; allowed: {', '.join(sides)}")
        if isolated not in ("raise", "solidify"):
            raise InvalidParameterError(f"isolated must be 'raise' or 'solidify'; got {isolated!r}")
        self.open_sides = open_sides
        self.ndim = d

        if not (arr == FLUID).any():
            raise InvalidParameterError("flags contain no FLUID cell; there is nothing to solve for")
        fluid = arr == FLUID
        open_count = self._open_neighbours(arr)
        labels, count = ndimage.label(fluid, structure=ndimage.generate_binary_structure(d, 1))
        touching = np.unique(labels[(open_count > 0) & fluid])
        isolated_ids = np.setdiff1d(np.arange(1, count + 1), touching)
        if isolated_ids.size:
            cells = np.isin(labels, isolated_ids)
            msg = (
                f"{isolated_ids.size} connected fluid region(s) ({int(cells.sum())} cells) touch no "
                f"Dirichlet face (no EMPTY neighbour, no open side among {open_sides}); "
                "the pressure matrix would be singular there"
            )
            if isolated == "raise":
                raise InvalidParameterError(msg + "; open a side, add EMPTY cells, or pass isolated='solidify'")
            warnings.warn(msg + "; turning them SOLID", RuntimeWarning, stacklevel=2)
            arr = np.where(cells, SOLID, arr).astype(np.int8)
            fluid = arr == FLUID
            if not fluid.any():
                raise InvalidParameterError("no FLUID cell is left after removing isolated regions")
            open_count = self._open_neighbours(arr)
        self.flags = torch.from_numpy(arr)
        self._fluid_np = fluid
        self._fluid_t = torch.from_numpy(fluid)
        # diagonal: fluid neighbours + Dirichlet faces; 1 on non-fluid rows
        diag = open_count.astype(np.float64)
        offdiag = []
        for a in range(d):
            n = arr.shape[a]
            both = np.take(fluid, np.arange(n - 1), axis=a) & np.take(fluid, np.arange(1, n), axis=a)
            offdiag.append(both.astype(np.float64))
            lo = [slice(None)] * d
            hi = [slice(None)] * d
            lo[a], hi[a] = slice(0, n - 1), slice(1, n)
            diag[tuple(lo)] += both
            diag[tuple(hi)] += both
        diag = np.where(fluid, diag, 1.0)
        self._diag64 = torch.from_numpy(diag)
        self._offdiag64 = [torch.from_numpy(np.ascontiguousarray(w)) for w in offdiag]
        self._cache: dict = {}
        self.dtype, self.device = dtype, torch.device(device) if device is not None else torch.device("cpu")
        self._weights(self.dtype, self.device)

    def _open_neighbours(self, arr: np.ndarray) -> np.ndarray:
        """Per cell: number of face neighbours at ``p = 0`` (EMPTY cells, open ghost cells)."""
        d = arr.ndim
        padded = np.pad(arr, 1, constant_values=SOLID)
        for side in self.open_sides:
            a, end = _AXES.index(side[0]), int(side[1])
            index = [slice(1, -1)] * d
            index[a] = -1 if end else 0
            padded[tuple(index)] = EMPTY
        empty = padded == EMPTY
        count = np.zeros(arr.shape, dtype=np.int64)
        core = [slice(1, -1)] * d
        for a in range(d):
            for shift in (0, 2):
                index = list(core)
                index[a] = slice(shift, shift + arr.shape[a])
                count += empty[tuple(index)]
        return count

    # ------------------------------------------------------------------ interface
    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(self.flags.shape)

    def fluid_mask(self, dtype: torch.dtype = torch.bool, device=None) -> torch.Tensor:
        """Indicator of the fluid cells (the unknowns), shape ``state_shape``.

        ``dtype`` bool (default) or a float type (1 on fluid, 0 elsewhere);
        on ``device`` (default: the operator's).
        """
        mask = self._fluid_t.to(device=device if device is not None else self.device)
        return mask if dtype == torch.bool else mask.to(dtype)

    @property
    def num_fluid(self) -> int:
        return int(self._fluid_np.sum())

    def _weights(self, dtype, device):
        key = (dtype, torch.device(device))
        if key not in self._cache:
            self._cache[key] = (
                self._diag64.to(dtype=dtype, device=device),
                [w.to(dtype=dtype, device=device) for w in self._offdiag64],
            )
        return self._cache[key]

    def _check_u(self, u: torch.Tensor) -> None:
        d = self.ndim
        if u.ndim < d or tuple(u.shape[u.ndim - d:]) != self.state_shape:
            raise ShapeMismatchError(
                f"field has shape {tuple(u.shape)}; expected (..., {', '.join(map(str, self.state_shape))})"
            )

    def bind(self, theta=None, dtype: torch.dtype | None = None, device=None):
        """Fast ``u -> A u`` on ``(..., *state_shape)``: ``D u - sum_faces w_f (shifted u)``.

        The 0/1 face weights (1 between two fluid cells) and the diagonal are
        precomputed in ``dtype`` on ``device`` (default: the operator's); each
        face term is one fused in-place ``addcmul_``.  A ``u`` of another
        dtype/device gets weights converted once (cached).
        """
        d = self.ndim
        state = self.state_shape
        self._weights(dtype or self.dtype, device if device is not None else self.device)

        def matvec(u: torch.Tensor) -> torch.Tensor:
            if tuple(u.shape[u.ndim - d:]) != state:
                self._check_u(u)
            diag, offdiag = self._weights(u.dtype, u.device)
            out = diag * u
            for a, w in enumerate(offdiag):
                axis = u.ndim - d + a
                n = state[a] - 1
                out.narrow(axis, 0, n).addcmul_(w, u.narrow(axis, 1, n), value=-1.0)
                out.narrow(axis, 1, n).addcmul_(w, u.narrow(axis, 0, n), value=-1.0)
            return out

        return matvec

    def apply(self, theta, u: torch.Tensor) -> torch.Tensor:
        """``A u`` (``theta`` is ignored; differentiable in ``u``)."""
        self._check_u(u)
        d = self.ndim
        diag, offdiag = self._weights(u.dtype, u.device)
        out = diag * u
        for a, w in enumerate(offdiag):
            axis = u.ndim - d + a
            n = self.state_shape[a] - 1
            lo, hi = u.narrow(axis, 0, n), u.narrow(axis, 1, n)
            pad_lo = [0, 0] * (u.ndim - axis - 1) + [0, 1]
            pad_hi = [0, 0] * (u.ndim - axis - 1) + [1, 0]
            out = out - torch.nn.functional.pad(w * hi, pad_lo) - torch.nn.functional.pad(w * lo, pad_hi)
        return out

    def apply_tangent(self, theta, dtheta, u: torch.Tensor) -> torch.Tensor:
        """``(dA/dtheta)[dtheta] u = 0``: ``A`` does not depend on ``theta``."""
        self._check_u(u)
        return torch.zeros_like(u)

    def diagonal(self, theta=None, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        """Diagonal of ``A``: non-solid neighbour count on fluid cells, 1 elsewhere.

        In ``dtype`` on ``device`` (default: the operator's).
        """
        return self._weights(dtype or self.dtype, device if device is not None else self.device)[0].clone()

    def assemble(self, theta=None) -> sp.csr_matrix:
        """The matrix of :meth:`bind` as scipy CSR (float64), C-order cell numbering."""
        shape = self.state_shape
        index = np.arange(int(np.prod(shape))).reshape(shape)
        rows, cols, vals = [index.ravel()], [index.ravel()], [self._diag64.numpy().ravel()]
        for a, w in enumerate(self._offdiag64):
            n = shape[a] - 1
            on = w.numpy().ravel() > 0
            lo = np.take(index, np.arange(n), axis=a).ravel()[on]
            hi = np.take(index, np.arange(1, n + 1), axis=a).ravel()[on]
            rows += [lo, hi]
            cols += [hi, lo]
            vals += [-np.ones(lo.size), -np.ones(lo.size)]
        size = index.size
        return sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
        ).tocsr()

    def check_rhs(self, b: torch.Tensor) -> None:
        """Raise unless ``b`` has shape ``(..., *state_shape)``, is finite and vanishes off the fluid."""
        self._check_u(b)
        if not bool(torch.isfinite(b).all()):
            raise InvalidParameterError(
                f"right-hand side contains {int((~torch.isfinite(b)).sum())} NaN/Inf value(s); all must be finite"
            )
        off = b.detach()[..., ~self.fluid_mask(device=b.device)]
        if off.numel() and bool((off != 0).any()):
            raise InvalidParameterError(
                f"right-hand side is nonzero on {int((off != 0).sum())} non-fluid (SOLID/EMPTY) cell(s) "
                f"(max |b| there {float(off.abs().max()):.3g}); it must be 0 there (use restrict())"
            )

    def restrict(self, b: torch.Tensor) -> torch.Tensor:
        """``b`` with its non-fluid entries set to 0."""
        self._check_u(b)
        return torch.where(self.fluid_mask(device=b.device), b, torch.zeros((), dtype=b.dtype, device=b.device))

    def random_rhs(self, batch: int | None = None, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
        """Standard normal right-hand side(s) on the fluid cells, zero elsewhere."""
        shape = ((batch,) if batch is not None else ()) + self.state_shape
        b = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        return self.restrict(b.to(self.device))


def box_with_obstacles(
    n: int | tuple[int, ...],
    kind: str = "spheres",
    seed: int = 0,
    count: int = 4,
    ndim: int = 3,
) -> torch.Tensor:
    """Flags of a closed box with solid obstacles, meant with the top side open.

    Parameters
    ----------
    n
        Cells per axis (int: the same on each of ``ndim`` axes).
    kind
        ``"spheres"`` (balls/discs, the training geometry) or ``"boxes"``
        (axis-aligned boxes: the "new geometry" a trained model was not shown).
    seed
        Obstacle positions and sizes are drawn in unit coordinates from this
        seed, so one seed gives the same geometry at every resolution.
    count
        Number of obstacles.

    Returns
    -------
    torch.Tensor
        ``int8`` flags of shape ``n`` (``FLUID``/``SOLID``).  Fluid pockets
        that the obstacles cut off from the top are made solid, so the flags
        suit ``FluidPoissonOperator(flags)`` (top open) directly.
    """
    shape = (int(n),) * ndim if np.isscalar(n) else tuple(int(v) for v in n)
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise InvalidParameterError(f"box_with_obstacles needs 2 or 3 axes of >= 2 cells; got {shape}")
    if kind not in ("spheres", "boxes"):
        raise InvalidParameterError(f"unknown obstacle kind {kind!r}; allowed: spheres, boxes")
    d = len(shape)
    rng = np.random.default_rng(seed)
    centres = [(np.arange(m) + 0.5) / m for m in shape]
    coords = np.meshgrid(*centres, indexing="ij")
    solid = np.zeros(shape, dtype=bool)
    for _ in range(int(count)):
        c = rng.uniform(0.2, 0.8, size=d)
        c[-1] = rng.uniform(0.15, 0.6)  # keep the top free
        if kind == "spheres":
            radius = rng.uniform(0.1, 0.22)
            dist2 = sum((x - ci) ** 2 for x, ci in zip(coords, c))
            solid |= dist2 <= radius**2
        else:
            half = rng.uniform(0.06, 0.18, size=d)
            inside = np.ones(shape, dtype=bool)
            for x, ci, hi in zip(coords, c, half):
                inside &= np.abs(x - ci) <= hi
            solid |= inside
    flags = np.where(solid, SOLID, FLUID).astype(np.int8)
    labels, _ = ndimage.label(flags == FLUID, structure=ndimage.generate_binary_structure(d, 1))
    top = np.take(labels, [shape[-1] - 1], axis=d - 1)
    keep = np.unique(top[top > 0])
    flags[(labels > 0) & ~np.isin(labels, keep)] = SOLID
    return torch.from_numpy(flags)


# --------------------------------------------------------------------------
# registration: tiny examples for the operator contract test


def _example(flags, dtype, device) -> OperatorExample:
    return OperatorExample(FluidPoissonOperator(flags, dtype=dtype, device=device),
                           torch.empty(0, dtype=dtype, device=device))


@register_operator("fluid-pressure-2d", "pressure Poisson matrix on a 2D flagged grid: obstacles, air cells, open top")
def _example_2d(dtype, device) -> OperatorExample:
    flags = box_with_obstacles((7, 6), "spheres", seed=3, count=2, ndim=2).clone()
    flags[0, 0] = EMPTY
    return _example(flags, dtype, device)


@register_operator("fluid-pressure-3d", "pressure Poisson matrix on a 3D flagged grid with box obstacles")
def _example_3d(dtype, device) -> OperatorExample:
    return _example(box_with_obstacles((5, 4, 6), "boxes", seed=2, count=2), dtype, device)
