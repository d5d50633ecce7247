"""The Calderón problem: conductivity ``a`` -> Dirichlet-to-Neumann data.

The forward problem, for ``l = 1..L`` Dirichlet inputs ``g_l`` on the boundary
of the unit square ``D = (0, 1)^2``,

    -div(a grad u_l) = 0  in D,      u_l = g_l  on dD,

and the measurement is the Neumann data ``a du_l/dn`` (outward normal) at the
boundary nodes: the Dirichlet-to-Neumann map ``Lambda_a`` applied to the
``g_l``.  The inverse problem recovers ``a`` from ``(g_l, Lambda_a g_l)``.

Discretization: the foundation's vertex-centred finite differences
(:class:`~physinv.discretize.fd.FDPoissonOperator` on a
:class:`~physinv.discretize.grid.UniformGrid` with ``n x n`` nodes, all sides
Dirichlet), all ``L`` right-hand sides solved with one factorization
(:class:`~physinv.linalg.linear_pde.LinearPDESimulator`, implicitly differentiated).
The flux is the *discrete* Dirichlet-to-Neumann map: the residual of the
un-eliminated operator at a boundary node ``i`` is the flux through the
boundary part of its dual cell,

    (A_raw u)_i = sum_j w_ij (u_i - u_j) = int_{S_i} a du/dn ds + O(h^3),

so ``a du/dn (x_i) ~ (A_raw u)_i / |S_i|`` with ``|S_i| = h`` (half an edge
on each side; a corner owns half an edge on each of its two sides and gets
the mean of the two one-sided fluxes).  This is second order away from the
corners (``tests/problems/calderon/test_calderon_simulator.py`` fits the rate), exactly
conservative (the fluxes of any ``g`` sum to 0) and symmetric (the residual
map ``g -> (A_raw u)|_dD`` is the Schur complement of the stiffness matrix).

Boundary nodes are numbered counter-clockwise from the corner (0, 0): the side
``y = 0`` left to right, ``x = 1`` bottom to top, ``y = 1`` right to left,
``x = 0`` top to bottom; ``4 (n - 1)`` nodes with arclength ``s in [0, 4)``
(:func:`boundary_nodes`).  The default inputs are trigonometric patterns in
``s`` (:func:`trig_patterns`).

The module registers the simulator ``calderon-fd`` (tiny example) with
:func:`physinv.core.simulator.register_simulator`, so ``physinv verify`` runs
the Taylor, dot-product and gradcheck tests on it.  The prior of the
conductivity is :func:`draw_conductivity`; the data set ``calderon`` and the
networks' input format live in :mod:`physinv.problems.calderon.data`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physinv.core.checks import check_finite, check_shape
from physinv.core.errors import InvalidParameterError
from physinv.core.simulator import LinearOperatorPair, SimulatorExample, register_simulator
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.linalg.linear_pde import LinearPDESimulator

__all__ = [
    "CalderonSimulator",
    "boundary_nodes",
    "trig_patterns",
    "draw_conductivity",
]


def _check_n(n: int) -> int:
    n = int(n)
    if n < 3:
        raise InvalidParameterError(f"the grid needs at least 3 nodes per side; got n={n}")
    return n


def boundary_nodes(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` and arclength ``s`` of the ``4 (n - 1)`` boundary nodes of an ``n x n`` grid.

    Counter-clockwise from (0, 0); node ``(i, j)`` sits at ``(x, y) = (i, j) / (n - 1)``;
    ``s`` runs over ``[0, 4)`` (one unit per side).
    """
    n = _check_n(n)
    k = np.arange(n - 1)
    top = n - 1
    i = np.concatenate([k, np.full(n - 1, top), top - k, np.zeros(n - 1, dtype=int)])
    j = np.concatenate([np.zeros(n - 1, dtype=int), k, np.full(n - 1, top), top - k])
    s = np.arange(4 * (n - 1)) / (n - 1)
    return i, j, s


def trig_patterns(n: int, L: int) -> np.ndarray:
    """Default Dirichlet inputs ``g_l(s)``, shape ``(L, 4 (n - 1))``.

    ``g_l(s) = cos(2 pi k s / 4)`` for odd ``l`` and ``sin(2 pi k s / 4)`` for
    even ``l``, ``k = ceil(l / 2)``, ``l = 1..L``: the first ``L`` Fourier modes
    of the perimeter (continuous around it, zero mean, unit amplitude).
    """
    L = int(L)
    if L < 1:
        raise InvalidParameterError(f"L (number of boundary inputs) must be >= 1; got {L}")
    _, _, s = boundary_nodes(n)
    rows = []
    for l in range(1, L + 1):
        k = (l + 1) // 2
        phase = 2 * np.pi * k * s / 4.0
        rows.append(np.cos(phase) if l % 2 else np.sin(phase))
    return np.stack(rows)


class CalderonSimulator(LinearPDESimulator):
    """``a -> Lambda_a g_l``: Neumann data ``a du_l/dn`` at the boundary nodes, shape ``(L, 4 (n - 1))``.

    Parameters
    ----------
    n
        Nodes per side of the grid on the unit square (``h = 1 / (n - 1)`` m).
    patterns
        Dirichlet inputs at the boundary nodes, ``(L, 4 (n - 1))`` (units of u);
        default :func:`trig_patterns` with ``L`` inputs.
    L
        Number of default patterns (ignored when ``patterns`` is given).
    solver
        Linear solver (default sparse direct: one LU for all ``L`` solves and
        the adjoint solves).

    Notes
    -----
    The conductivity ``a`` (S/m) is given at the ``n x n`` nodes and must be
    finite and positive.  The output is differentiable in ``a`` (reverse and
    forward mode, implicit adjoint).
    """

    def __init__(self, n: int = 32, patterns: torch.Tensor | np.ndarray | None = None, L: int = 20,
                 solver=None, dtype: torch.dtype = torch.float64):
        n = _check_n(n)
        grid = UniformGrid((n - 1, n - 1))
        super().__init__(FDPoissonOperator(grid), solver)
        self.n, self.grid = n, grid
        bi, bj, _ = boundary_nodes(self.n)
        self.register_buffer("bi", torch.from_numpy(bi), persistent=False)
        self.register_buffer("bj", torch.from_numpy(bj), persistent=False)
        if patterns is None:
            patterns = trig_patterns(self.n, L)
        patterns = torch.as_tensor(patterns, dtype=dtype)
        if patterns.ndim != 2 or patterns.shape[1] != self.n_boundary:
            raise InvalidParameterError(
                f"patterns must have shape (L, {self.n_boundary}) (one value per boundary node of the "
                f"{self.n}x{self.n} grid); got {tuple(patterns.shape)}"
            )
        check_finite("patterns", patterns)
        self.register_buffer("patterns", patterns)
        self.parameter_shape = self.grid.node_shape

    @property
    def n_boundary(self) -> int:
        return 4 * (self.n - 1)

    @property
    def L(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def h(self) -> float:
        return 1.0 / (self.n - 1)

    def extend(self, g: torch.Tensor) -> torch.Tensor:
        """Boundary values ``(..., n_boundary)`` -> grid field ``(..., n, n)``, zero inside."""
        check_shape("boundary data", g, (self.n_boundary,), "one value per boundary node")
        out = g.new_zeros(*g.shape[:-1], self.n, self.n)
        out[..., self.bi, self.bj] = g
        return out

    def restrict(self, field: torch.Tensor) -> torch.Tensor:
        """Grid field ``(..., n, n)`` -> its values at the boundary nodes ``(..., n_boundary)``."""
        return field[..., self.bi, self.bj]

    def check_parameters(self, a: torch.Tensor) -> None:
        check_shape("a", a, self.grid.node_shape, f"the conductivity at the {self.n}x{self.n} nodes")
        if a.ndim != 2:
            raise InvalidParameterError(f"a must have shape ({self.n}, {self.n}); got {tuple(a.shape)} "
                                        "(simulate a batch by looping: each a needs its own factorization)")
        self.operator.check_kappa(a)

    def right_hand_side(self, a: torch.Tensor) -> torch.Tensor:
        """The Dirichlet liftings of the stored patterns, ``(L, n, n)``: their solves are the potentials ``u_l``."""
        return self.operator.rhs(a, dirichlet=self.extend(self.patterns.to(a.dtype)))

    def observation(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The Neumann data :meth:`flux` of the potentials, ``(L, n_boundary)`` (A/m^2 for ``a`` in S/m)."""
        return self.flux(a, u)

    def flux(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Discrete outward flux ``a du/dn`` at the boundary nodes: ``(A_raw(a) u)|_dD / h``."""
        return self.restrict(self.operator.apply_raw(a, u)) / self.h

    def neumann(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``Lambda_a g`` for any Dirichlet data ``g`` of shape ``(..., n_boundary)``."""
        self.check_parameters(a)
        check_finite("g", g)
        b = self.operator.rhs(a, dirichlet=self.extend(g.to(a.dtype)))
        return self.flux(a, self.solve(a, b))


# --------------------------------------------------------------------------
# the prior of the conductivity

def draw_conductivity(rng: np.random.Generator, n: int, a_min: float, a_max: float, modes: int,
                      amplitude: float, decay: float = 2.0) -> np.ndarray:
    """One conductivity from the prior, on the ``n x n`` nodes of the unit square.

    ``a = a_min + (a_max - a_min) sigmoid(s)`` with the truncated sine series

        s(x, y) = amplitude / Z sum_{j,k=1..modes} xi_jk (j^2 + k^2)^(-decay/2) sin(pi j x) sin(pi k y),

    ``xi_jk ~ N(0, 1)`` i.i.d. and ``Z^2 = sum_jk (j^2 + k^2)^(-decay)`` (so
    the mean-square of ``s`` over the square is ``amplitude^2 / 4``).  ``a`` is
    smooth, lies in ``(a_min, a_max)`` and equals ``(a_min + a_max) / 2`` on
    the boundary (the NIO paper's "sine" set is a sine series too).
    """
    if not (0 < a_min < a_max) or not math.isfinite(a_max):
        raise InvalidParameterError(f"need 0 < a_min < a_max < inf; got a_min={a_min}, a_max={a_max}")
    if modes < 1 or amplitude < 0:
        raise InvalidParameterError(f"need modes >= 1 and amplitude >= 0; got modes={modes}, amplitude={amplitude}")
    j = np.arange(1, modes + 1)
    weight = (j[:, None] ** 2 + j[None, :] ** 2) ** (-decay / 2)
    xi = rng.standard_normal((modes, modes)) * weight / np.sqrt((weight**2).sum())
    x = np.linspace(0.0, 1.0, n)
    basis = np.sin(np.pi * j[:, None] * x[None, :])  # (modes, n)
    s = amplitude * basis.T @ xi @ basis
    return a_min + (a_max - a_min) / (1.0 + np.exp(-s))


# --------------------------------------------------------------------------
# registration: tiny example for the generic checks


def _example_a(n: int, dtype, device) -> torch.Tensor:
    x = torch.linspace(0, 1, n, dtype=dtype, device=device)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    return 1.5 + 0.5 * torch.sin(2 * math.pi * X) * torch.cos(math.pi * Y) + 0.3 * X * Y


@register_simulator("calderon-fd", "Calderon problem: conductivity -> Dirichlet-to-Neumann data (FD, unit square)")
def _example(dtype, device) -> SimulatorExample:
    sim = CalderonSimulator(n=5, L=3, dtype=dtype).to(device)
    a = _example_a(5, dtype, device)
    op = sim.operator

    def schur(g: torch.Tensor) -> torch.Tensor:
        """Symmetric residual map g -> (A_raw u)|_dD (the discrete DtN map times h)."""
        b = op.rhs(a, dirichlet=sim.extend(g))
        u = sim.prepared_solve(a)(b)
        return sim.restrict(op.apply_raw(a, u))

    nb = (sim.n_boundary,)
    return SimulatorExample(sim, a, [LinearOperatorPair("dtn-schur", schur, schur, nb, nb)])



