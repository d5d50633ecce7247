"""``physinv validate poisson``: convergence rates and the DOLFINx cross-check.

The study solves the variable-coefficient Poisson problem

.. math::

    -\\nabla\\cdot(\\kappa \\nabla u) = f \\ \\text{in } (0, 1)^2, \\qquad
    u = u_{ex} \\ \\text{on } \\partial\\Omega,

with the manufactured solution and coefficient

.. math::

    u_{ex}(x, y) = \\sin(\\pi x)\\sin(\\pi y) + x y, \\qquad
    \\kappa(x, y) = 1 + x^2 + y,

and ``f = -div(kappa grad u_ex)`` written out analytically (:func:`source`):

.. math::

    f = 2\\pi^2 \\kappa \\sin(\\pi x)\\sin(\\pi y)
        - 2x\\,(\\pi\\cos(\\pi x)\\sin(\\pi y) + y)
        - (\\pi\\sin(\\pi x)\\cos(\\pi y) + x).

It reports

* ``rate_l2_fd``: the least-squares log-log slope of the discrete L2 error
  ``sqrt(sum_i h^2 (u_i - u_ex(x_i))^2)`` of
  :class:`~physinv.discretize.fd.FDPoissonOperator` on ``UniformGrid((n, n))``,
  ``n = 8, 16, 32, 64, ...`` (``levels`` values), ``kappa`` and ``f`` sampled at
  the nodes; expected 2.
* ``rate_l2_p1``: the same for :class:`~physinv.discretize.p1.P1PoissonOperator`
  on ``TriMesh.unit_square(n)`` with nodal ``kappa`` and ``f``; the error is the
  true L2 norm ``||u_h - u_ex||_{L2}`` of the P1 function ``u_h``, integrated per
  triangle with a 7-point degree-5 rule (:func:`p1_l2_error`); expected 2.
* ``max_rel_diff_p1_vs_dolfinx``: ``max|u_torch - u_dolfinx| / max|u_dolfinx|``,
  the larger over two meshes: the finest structured mesh with nodal (P1)
  ``kappa`` and an unstructured gmsh mesh of the unit square with per-cell (DG0)
  ``kappa``.  Both codes solve the same discrete system, so this is at the
  level of round-off (must be <= 1e-8), not of discretization error.

Run it as ``physinv validate poisson [--json]`` or
``python -m physinv.problems.poisson.validate [--json]``; under
``mpiexec -n K python -m physinv.problems.poisson.validate --json`` the DOLFINx solves run
distributed over K ranks (the torch part is repeated on every rank), and rank 0
prints.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError, MissingExtraError
from physinv.core.validation import report_result, validation_parser, verdict
from physinv.discretize.fd import FDPoissonOperator
from physinv.discretize.grid import UniformGrid
from physinv.discretize.mesh import TriMesh
from physinv.discretize.p1 import P1PoissonOperator
from physinv.fem.convergence import fit_rate
from physinv.linalg.solvers import DirectSolver

__all__ = [
    "AGREEMENT_TOL",
    "RATE_BOUNDS",
    "exact_solution",
    "conductivity",
    "source",
    "p1_l2_error",
    "validate_poisson",
    "format_report",
    "main",
]

#: Accepted interval for the fitted L2 rates of second-order schemes.
RATE_BOUNDS = (1.9, 2.1)
#: Largest accepted max relative difference between torch P1 and DOLFINx.
AGREEMENT_TOL = 1e-8
#: Coarsest level: n = 8 cells per side, doubled per level.
COARSEST_N = 8
#: Characteristic length of the gmsh mesh in the DOLFINx cross-check.
GMSH_H = 0.05

PROBLEM = {
    "pde": "-div(kappa grad u) = f on (0,1)^2, u = u_ex on the boundary",
    "u_ex": "sin(pi x) sin(pi y) + x y",
    "kappa": "1 + x^2 + y",
    "f": "-div(kappa grad u_ex), analytic",
}


def exact_solution(x, y):
    """Manufactured solution ``u_ex = sin(pi x) sin(pi y) + x y`` (numpy or torch)."""
    lib = torch if torch.is_tensor(x) else np
    return lib.sin(np.pi * x) * lib.sin(np.pi * y) + x * y


def conductivity(x, y):
    """Smooth positive coefficient ``kappa = 1 + x^2 + y`` (between 1 and 3 on the square)."""
    return 1.0 + x**2 + y


def source(x, y):
    """``f = -div(kappa grad u_ex)`` for :func:`exact_solution` and :func:`conductivity`."""
    lib = torch if torch.is_tensor(x) else np
    sx, cx = lib.sin(np.pi * x), lib.cos(np.pi * x)
    sy, cy = lib.sin(np.pi * y), lib.cos(np.pi * y)
    ux = np.pi * cx * sy + y
    uy = np.pi * sx * cy + x
    laplacian = -2.0 * np.pi**2 * sx * sy
    return -(2.0 * x * ux + 1.0 * uy) - conductivity(x, y) * laplacian


# 7-point degree-5 rule on the reference triangle (Radon): barycentric points, weights sum to 1
_A1, _A2 = (6.0 - np.sqrt(15.0)) / 21.0, (6.0 + np.sqrt(15.0)) / 21.0
_W1, _W2 = (155.0 - np.sqrt(15.0)) / 1200.0, (155.0 + np.sqrt(15.0)) / 1200.0
QUAD_BARY = np.array(
    [
        [1 / 3, 1 / 3, 1 / 3],
        [_A1, _A1, 1 - 2 * _A1],
        [_A1, 1 - 2 * _A1, _A1],
        [1 - 2 * _A1, _A1, _A1],
        [_A2, _A2, 1 - 2 * _A2],
        [_A2, 1 - 2 * _A2, _A2],
        [1 - 2 * _A2, _A2, _A2],
    ]
)
QUAD_WEIGHTS = np.array([9.0 / 40.0] + [_W1] * 3 + [_W2] * 3)


def p1_l2_error(mesh: TriMesh, u_nodal, exact) -> float:
    """L2 norm ``||u_h - u||`` of a P1 function against a callable ``exact(x, y)``.

    ``u_h`` is the P1 function with nodal values ``u_nodal``; the integral of
    ``(u_h - u)^2`` is computed per triangle with the 7-point degree-5 rule
    (exact for polynomials of degree 5), so the quadrature error is far below
    the O(h^2) discretization error being measured.
    """
    u_nodal = np.asarray(u_nodal, dtype=np.float64)
    if u_nodal.shape != (mesh.num_nodes,):
        raise InvalidParameterError(f"u_nodal must have shape ({mesh.num_nodes},); got {u_nodal.shape}")
    corners = mesh.points[mesh.cells]  # (m, 3, 2)
    xq = np.einsum("qk,mkd->mqd", QUAD_BARY, corners)  # (m, 7, 2)
    uh = np.einsum("qk,mk->mq", QUAD_BARY, u_nodal[mesh.cells])
    diff2 = (uh - exact(xq[..., 0], xq[..., 1])) ** 2
    return float(np.sqrt(np.sum(mesh.areas() * (diff2 @ QUAD_WEIGHTS))))


def _fd_level(n: int) -> tuple[float, float]:
    grid = UniformGrid((n, n))
    x, y = grid.coordinates(torch.float64)
    kappa, f, u_ex = conductivity(x, y), source(x, y), exact_solution(x, y)
    op = FDPoissonOperator(grid)
    u = DirectSolver().prepare(op, kappa)(op.rhs(kappa, f, dirichlet=u_ex))
    h = 1.0 / n
    return h, float(torch.sqrt(torch.sum(h * h * (u - u_ex) ** 2)))


def _p1_solve(mesh: TriMesh, kappa: np.ndarray) -> np.ndarray:
    """Torch P1 solution with boundary data ``u_ex`` and nodal ``f``; kappa nodal or per cell."""
    x, y = mesh.points[:, 0], mesh.points[:, 1]
    op = P1PoissonOperator(mesh)
    k = torch.from_numpy(np.ascontiguousarray(kappa))
    b = op.rhs(k, torch.from_numpy(source(x, y)), torch.from_numpy(exact_solution(x, y)))
    return DirectSolver().prepare(op, k)(b).numpy()


def _rel_diff(u_torch: np.ndarray, u_ref: np.ndarray) -> float:
    return float(np.max(np.abs(u_torch - u_ref)) / np.max(np.abs(u_ref)))


def _dolfinx_case(mesh: TriMesh, kappa: np.ndarray, u_torch: np.ndarray, comm, ksp: str) -> dict:
    from physinv.problems.poisson.reference import solve_p1_poisson

    x, y = mesh.points[:, 0], mesh.points[:, 1]
    t0 = time.perf_counter()
    u_ref, info = solve_p1_poisson(
        mesh.points,
        mesh.cells,
        kappa,
        source(x, y),
        exact_solution(x, y),
        mesh.boundary_nodes(),
        comm=comm,
        ksp=ksp,
        return_info=True,
    )
    return {
        "num_nodes": mesh.num_nodes,
        "num_cells": mesh.num_cells,
        "kappa_on": info["kappa_on"],
        "ksp_iterations": info["iterations"],
        "max_rel_diff": _rel_diff(u_torch, u_ref),
        "seconds": time.perf_counter() - t0,
    }


def _gmsh_mesh(comm, h: float) -> tuple[TriMesh, str]:
    """gmsh mesh made on rank 0 and broadcast; the shipped .msh file if gmsh is missing."""
    from physinv.fem import gmsh_meshes

    try:
        arrays = gmsh_meshes.unit_square_arrays(h) if comm.rank == 0 else None
        error = None
    except MissingExtraError as exc:
        arrays, error = None, str(exc)
    error = comm.bcast(error, root=0)
    if error is None:
        points, cells = comm.bcast(arrays, root=0)
        return TriMesh(points, cells), f"gmsh unit square, h={h}"
    return TriMesh.shipped("unit_square_h0.1.msh"), "meshes/unit_square_h0.1.msh (gmsh not installed)"


def validate_poisson(
    levels: int = 4,
    use_dolfinx: bool = True,
    *,
    ksp: str = "lu",
    gmsh_h: float = GMSH_H,
    comm=None,
) -> dict:
    """Run the Poisson validation study (see the module docstring for the problem).

    Parameters
    ----------
    levels
        Number of meshes per convergence study (>= 2): ``n = 8, 16, ..., 8 * 2^(levels-1)``.
    use_dolfinx
        Cross-check torch P1 against DOLFINx (needs ``physinv[fem]``); with
        ``False`` the ``max_rel_diff_p1_vs_dolfinx`` entry is ``None``.
    ksp
        DOLFINx linear solver, ``"lu"`` (MUMPS) or ``"cg-gamg"`` (rtol 1e-12).
    gmsh_h
        Characteristic length of the unstructured gmsh mesh.
    comm
        MPI communicator of the DOLFINx solves (default ``MPI.COMM_WORLD``).

    Returns
    -------
    dict
        JSON-serializable.  Keys ``rate_l2_fd``, ``rate_l2_p1``,
        ``max_rel_diff_p1_vs_dolfinx`` (float or ``None``); ``fd_l2_table`` and
        ``p1_l2_table`` (``n``, ``h``, ``error``, ``pairwise_rates``, ``rate``);
        ``dolfinx`` (per-mesh details, ``mpi_size``, ``ksp``) ; ``passed``
        (rates in :data:`RATE_BOUNDS` and the difference <= :data:`AGREEMENT_TOL`);
        ``problem``; ``seconds``.

    Raises
    ------
    MissingExtraError
        ``use_dolfinx=True`` without DOLFINx installed (``pip install 'physinv[fem]'``).
    """
    if int(levels) != levels or levels < 2:
        raise InvalidParameterError(f"levels must be an integer >= 2 (a rate needs two meshes); got {levels}")
    levels = int(levels)
    if levels > 8:
        raise InvalidParameterError(f"levels={levels} means n = {COARSEST_N * 2 ** (levels - 1)}; at most 8 allowed")
    if use_dolfinx:  # fail fast, before the torch work, if the extra is missing
        from physinv.fem.dolfinx import KSP_CHOICES, import_dolfinx

        if ksp not in KSP_CHOICES:
            raise InvalidParameterError(f"unknown ksp {ksp!r}; allowed: {', '.join(KSP_CHOICES)}")
        import_dolfinx("validate poisson against DOLFINx")
        from mpi4py import MPI

        comm = MPI.COMM_WORLD if comm is None else comm

    ns = [COARSEST_N * 2**k for k in range(levels)]
    seconds = {}

    t0 = time.perf_counter()
    fd = [_fd_level(n) for n in ns]
    fd_fit = fit_rate([h for h, _ in fd], [e for _, e in fd])
    seconds["fd"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    p1_errors, finest = [], None
    for n in ns:
        mesh = TriMesh.unit_square(n)
        x, y = mesh.points[:, 0], mesh.points[:, 1]
        kappa = conductivity(x, y)
        u = _p1_solve(mesh, kappa)
        p1_errors.append(p1_l2_error(mesh, u, exact_solution))
        finest = (mesh, kappa, u)
    p1_fit = fit_rate([1.0 / n for n in ns], p1_errors)
    seconds["p1"] = time.perf_counter() - t0

    result = {
        "rate_l2_fd": fd_fit.rate,
        "rate_l2_p1": p1_fit.rate,
        "max_rel_diff_p1_vs_dolfinx": None,
        "fd_l2_table": {"n": ns, **fd_fit.as_dict()},
        "p1_l2_table": {"n": ns, **p1_fit.as_dict()},
        "dolfinx": None,
        "problem": dict(PROBLEM),
        "levels": levels,
    }

    if use_dolfinx:
        t0 = time.perf_counter()
        mesh, kappa, u = finest
        structured = _dolfinx_case(mesh, kappa, u, comm, ksp)
        structured["mesh"] = f"TriMesh.unit_square({ns[-1]})"
        gmesh, label = _gmsh_mesh(comm, gmsh_h)
        centroids = gmesh.points[gmesh.cells].mean(axis=1)
        kappa_cells = conductivity(centroids[:, 0], centroids[:, 1])
        unstructured = _dolfinx_case(gmesh, kappa_cells, _p1_solve(gmesh, kappa_cells), comm, ksp)
        unstructured["mesh"] = label
        result["dolfinx"] = {
            "mpi_size": int(comm.size),
            "ksp": ksp,
            "structured": structured,
            "gmsh": unstructured,
        }
        result["max_rel_diff_p1_vs_dolfinx"] = max(structured["max_rel_diff"], unstructured["max_rel_diff"])
        seconds["dolfinx"] = time.perf_counter() - t0

    lo, hi = RATE_BOUNDS
    diff = result["max_rel_diff_p1_vs_dolfinx"]
    result["passed"] = bool(
        lo <= result["rate_l2_fd"] <= hi
        and lo <= result["rate_l2_p1"] <= hi
        and (diff is None or diff <= AGREEMENT_TOL)
    )
    result["seconds"] = seconds
    return result



def format_report(result: dict) -> str:
    """Readable plain-text report of a :func:`validate_poisson` result."""
    lo, hi = RATE_BOUNDS
    lines = [
        "Poisson validation: " + PROBLEM["pde"],
        f"  u_ex = {result['problem']['u_ex']},  kappa = {result['problem']['kappa']}",
        "",
    ]
    for key, rate_key, title in (
        ("fd_l2_table", "rate_l2_fd", "finite differences on UniformGrid((n, n)), discrete L2 error"),
        ("p1_l2_table", "rate_l2_p1", "torch P1 on TriMesh.unit_square(n), L2 error (degree-5 quadrature)"),
    ):
        table = result[key]
        lines.append(title)
        lines.append(f"  {'n':>5}  {'h':>10}  {'L2 error':>11}  {'order':>6}")
        for k, (n, h, e) in enumerate(zip(table["n"], table["h"], table["error"])):
            order = f"{table['pairwise_rates'][k - 1]:6.3f}" if k else f"{'-':>6}"
            lines.append(f"  {n:5d}  {h:10.4e}  {e:11.4e}  {order}")
        rate = result[rate_key]
        lines.append(f"  {rate_key} = {rate:.4f}   (expected in [{lo}, {hi}]: {verdict(lo <= rate <= hi)})")
        lines.append("")
    dolfinx = result.get("dolfinx")
    diff = result["max_rel_diff_p1_vs_dolfinx"]
    if dolfinx is None or diff is None:
        lines.append("torch P1 vs DOLFINx: not run (use_dolfinx=False)")
    else:
        lines.append(
            f"torch P1 vs DOLFINx P1, same mesh and data (ksp={dolfinx['ksp']}, MPI ranks={dolfinx['mpi_size']})"
        )
        lines.append(f"  {'mesh':<44}  {'nodes':>6}  {'kappa':>5}  {'max rel diff':>12}")
        for case in ("structured", "gmsh"):
            c = dolfinx[case]
            lines.append(f"  {c['mesh']:<44}  {c['num_nodes']:6d}  {c['kappa_on']:>5}  {c['max_rel_diff']:12.3e}")
        lines.append(
            f"  max_rel_diff_p1_vs_dolfinx = {diff:.3e}   "
            f"(expected <= {AGREEMENT_TOL:g}: {verdict(diff <= AGREEMENT_TOL)})"
        )
    lines.append("")
    lines.append("PASSED" if result.get("passed") else "FAILED")
    return "\n".join(lines)


def _rank() -> int:
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi.COMM_WORLD.rank if mpi is not None and mpi.Is_initialized() else 0


def main(argv=None) -> int:
    """Command line: ``python -m physinv.problems.poisson.validate [--json] [--levels N] [--no-dolfinx]``."""
    parser = validation_parser("poisson", "Convergence rates of the FD and P1 Poisson operators and agreement with DOLFINx.")
    parser.add_argument("--levels", type=int, default=4, help="meshes per convergence study (default 4)")
    parser.add_argument("--no-dolfinx", action="store_true", help="skip the DOLFINx cross-check")
    parser.add_argument("--ksp", default="lu", choices=("lu", "cg-gamg"), help="DOLFINx linear solver")
    args = parser.parse_args(argv)
    result = validate_poisson(args.levels, use_dolfinx=not args.no_dolfinx, ksp=args.ksp)
    return report_result(result, args.json, format_report, show=_rank() == 0)


if __name__ == "__main__":
    sys.exit(main())
