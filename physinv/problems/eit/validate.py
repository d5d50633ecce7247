"""``physinv validate eit``: the two EIT forward models against references.

Two studies.

**(a) Complete electrode model vs DOLFINx.**  On the shipped meshes
``meshes/eit_disk_h0.2.msh``, ``eit_disk_h0.1.msh``, ``eit_disk_h0.05.msh``
(16 electrodes, half the circumference covered) the electrode voltages of
:class:`~physinv.problems.eit.operators.CompleteElectrodeOperator` (torch,
:class:`~physinv.linalg.solvers.DirectSolver`, rank-one ground) are compared
with :func:`physinv.problems.eit.reference.solve_cem` (UFL/DOLFINx assembly, ground by
a Lagrange multiplier, SciPy LU) for

* two conductivities with inclusions: per cell ``1 + 2 chi_1 - 0.5 chi_2``
  (``chi_1`` the disk of radius 0.3 around ``(0.4, 0.2)``, ``chi_2`` radius
  0.25 around ``(-0.35, -0.3)``; values 3, 0.5 and 1 S/m, by cell centroid), and
  nodal ``1 + 2 exp(-|x - c_1|^2 / 0.045) - 0.5 exp(-|x - c_2|^2 / 0.045)``;
* two sets of contact impedances: ``z_l = 0.01`` and ``z_l = 0.01 * 10^(-1 + 2 (l-1)/(L-1))``
  (0.001 to 0.1 Ohm m^2);
* adjacent (``+1`` at ``k``, ``-1`` at ``k+1``, ``L`` patterns) and opposite
  (``+1`` at ``k``, ``-1`` at ``k + L/2``, ``L/2`` patterns) currents (A).

The metric is ``max |U_torch - U_dolfinx| / max |U_dolfinx|`` over the patterns
of a set; both solve the same discrete problem, so it must be at round-off
(pass: ``<= 1e-8``).

**(b) Continuum model: convergence on the homogeneous disk.**  With
``sigma = 1`` on the unit disk and ``g = cos(k theta)`` (``sin(k theta)``),
``k = 1, 2, 3``, the Neumann problem has the harmonic solution
``u = r^k cos(k theta) / k`` (``sin``), a polynomial of degree ``k``.
:class:`~physinv.problems.eit.operators.NeumannOperator` is solved with
the nodal ``g`` on meshes from :func:`physinv.problems.eit.mesh.eit_disk_arrays`
(``h = 0.2, 0.1, 0.05, 0.025, 0.0125``; ``quick``: without 0.0125).  The mesh
is the inscribed polygon ``Omega_h`` (boundary nodes on the circle).

*Ground.*  The discrete solution satisfies ``m . u_h = 0`` with
``m_i = int_{dOmega_h} phi_i ds`` (the operator's ground).  The exact solution
is compared after subtracting the constant ``c = m . I_h u / sum(m)``, the same
ground functional applied to the nodal interpolant of ``u``, so that
``u - c`` satisfies the discrete ground exactly.  (The boundary nodes of the
gmsh disks are 16-fold rotationally symmetric, so ``c`` is at round-off for
``k <= 3``; the subtraction matters for other meshes or modes.)

*Errors.*  ``||u_h - (u - c)||_{L2(Omega_h)}`` and the H1 seminorm
``||grad u_h - grad u||_{L2(Omega_h)}``, integrated per triangle with the
12-point degree-6 Dunavant rule: the integrands are polynomials of degree
``<= 2k <= 6`` on each triangle, so the quadrature is exact.

*Rates.*  Fitted with :func:`~physinv.fem.convergence.fit_rate` against the
**gmsh characteristic length** ``h`` (the nominal mesh width, as
``validate poisson`` fits against ``1/n``).  Pass: every L2 rate in
``[1.9, 2.1]``.  The fits against each mesh's largest edge length
(``TriMesh.max_edge_length``) are reported beside them, not checked: that
single-edge statistic is ``1.18 h`` on the coarsest mesh but ``1.25 h`` to
``1.34 h`` on the finer ones, which tilts the least-squares slope up by about
0.1 (2.07 to 2.09 on the full study, up to 2.10 on the quick one), while the
last pairwise orders are 2.00 against ``h`` and 2.01 to 2.02 against
``h_max``.  The H1 rates are reported, not checked: about 1 for ``k = 2, 3``,
about 2 for ``k = 1``, whose solution ``u = x`` (``y``) is linear, so P1
interpolates it exactly and the whole error comes from the polygonal boundary
(and the interpolated Neumann data on it).
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.core.validation import report_result, validation_parser, verdict
from physinv.problems.eit.operators import CompleteElectrodeOperator, NeumannOperator, edge_load
from physinv.problems.eit.electrodes import ElectrodeMesh
from physinv.discretize.mesh import TriMesh
from physinv.fem.convergence import fit_rate
from physinv.linalg.solvers import DirectSolver
from physinv.problems.eit.simulator import injection_pattern

__all__ = [
    "AGREEMENT_TOL",
    "RATE_BOUNDS",
    "CEM_MESHES",
    "CONTINUUM_H",
    "QUAD_BARY",
    "QUAD_WEIGHTS",
    "exact_mode",
    "p1_errors",
    "validate_eit",
    "format_report",
    "main",
]

#: Largest accepted ``max|dU| / max|U|`` between torch CEM and DOLFINx.
AGREEMENT_TOL = 1e-8
#: Accepted interval for the fitted L2 rates of the continuum model.
RATE_BOUNDS = (1.9, 2.1)
#: Shipped meshes of study (a); ``quick`` uses the first two.
CEM_MESHES = ("eit_disk_h0.2.msh", "eit_disk_h0.1.msh", "eit_disk_h0.05.msh")
#: gmsh ``h`` of study (b); ``quick`` drops the last.
CONTINUUM_H = (0.2, 0.1, 0.05, 0.025, 0.0125)
#: Fourier modes ``(kind, k)`` of study (b).
MODES = tuple((kind, k) for k in (1, 2, 3) for kind in ("cos", "sin"))
#: Contact impedance of the uniform set (Ohm m^2).
Z_UNIFORM = 0.01

# 12-point degree-6 rule on the reference triangle (Dunavant 1985): barycentric points, weights sum to 1
_D6 = (
    (0.116786275726379, (0.501426509658179, 0.249286745170910, 0.249286745170910)),
    (0.050844906370207, (0.873821971016996, 0.063089014491502, 0.063089014491502)),
    (0.082851075618374, (0.053145049844817, 0.310352451033784, 0.636502499121399)),
)
QUAD_BARY = np.array([p for _, b in _D6 for p in sorted(set(itertools.permutations(b)))])
QUAD_WEIGHTS = np.array([w for w, b in _D6 for _ in sorted(set(itertools.permutations(b)))])
QUAD_WEIGHTS = QUAD_WEIGHTS / QUAD_WEIGHTS.sum()


def exact_mode(kind: str, k: int, x, y):
    """``u = r^k cos(k theta) / k`` (``kind="cos"``) or ``sin``, and its gradient ``(u, u_x, u_y)``.

    Written as ``Re``/``Im`` of ``(x + i y)^k / k``; ``grad u`` is ``Re``/``Im`` of
    ``(x + i y)^(k-1) * (1, i)``.
    """
    w = (np.asarray(x) + 1j * np.asarray(y)) ** (k - 1)
    val = w * (np.asarray(x) + 1j * np.asarray(y)) / k
    part = np.real if kind == "cos" else np.imag
    return part(val), part(w), part(1j * w)


def p1_errors(mesh: TriMesh, u_nodal: np.ndarray, kind: str, k: int, offset: float) -> tuple[float, float]:
    """``(||u_h - (u - offset)||_L2, |u_h - u|_H1)`` on the mesh, degree-6 quadrature per triangle."""
    corners = mesh.points[mesh.cells]  # (m, 3, 2)
    xq = np.einsum("qk,mkd->mqd", QUAD_BARY, corners)
    uh = np.einsum("qk,mk->mq", QUAD_BARY, u_nodal[mesh.cells])
    u, ux, uy = exact_mode(kind, k, xq[..., 0], xq[..., 1])
    # constant P1 gradient per cell: solve J^T grad = (u1 - u0, u2 - u0)
    jac = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=1)  # rows: edge vectors
    du = u_nodal[mesh.cells[:, 1:]] - u_nodal[mesh.cells[:, :1]]
    grad = np.linalg.solve(jac, du[..., None])[..., 0]  # (m, 2)
    area = np.abs(mesh.areas())
    l2 = np.sum(area * (((uh - (u - offset)) ** 2) @ QUAD_WEIGHTS))
    h1 = np.sum(area * (((grad[:, None, 0] - ux) ** 2 + (grad[:, None, 1] - uy) ** 2) @ QUAD_WEIGHTS))
    return float(np.sqrt(l2)), float(np.sqrt(h1))


# --------------------------------------------------------------------- study (a)


def _patterns(L: int) -> dict[str, np.ndarray]:
    return {name: injection_pattern(name, L) for name in ("adjacent", "opposite")}


def _conductivities(mesh: TriMesh) -> dict[str, np.ndarray]:
    c1, c2 = np.array([0.4, 0.2]), np.array([-0.35, -0.3])
    cent = mesh.points[mesh.cells].mean(axis=1)
    per_cell = (
        1.0
        + 2.0 * (np.linalg.norm(cent - c1, axis=1) < 0.3)
        - 0.5 * (np.linalg.norm(cent - c2, axis=1) < 0.25)
    )
    p = mesh.points
    nodal = (
        1.0
        + 2.0 * np.exp(-np.sum((p - c1) ** 2, axis=1) / 0.045)
        - 0.5 * np.exp(-np.sum((p - c2) ** 2, axis=1) / 0.045)
    )
    return {"cell": per_cell, "node": nodal}


def _impedances(L: int) -> dict[str, np.ndarray]:
    return {
        f"uniform {Z_UNIFORM:g}": np.full(L, Z_UNIFORM),
        "graded 0.001..0.1": Z_UNIFORM * 10.0 ** np.linspace(-1.0, 1.0, L),
    }


def _cem_study(mesh_names) -> list[dict]:
    from physinv.problems.eit.reference import solve_cem

    cases = []
    for name in mesh_names:
        em = ElectrodeMesh.shipped(name)
        mesh, L = em.mesh, em.num_electrodes
        patterns = _patterns(L)
        currents = np.concatenate(list(patterns.values()))
        for (z_label, z), (sigma_on, sigma) in itertools.product(
            _impedances(L).items(), _conductivities(mesh).items()
        ):
            t0 = time.perf_counter()
            op = CompleteElectrodeOperator(em, z)
            s = torch.from_numpy(sigma)
            x = DirectSolver().prepare(op, s)(op.rhs(torch.from_numpy(currents)))
            u_torch = x[:, mesh.num_nodes :].numpy()
            u_ref = solve_cem(mesh.points, mesh.cells, em.electrode_edges, sigma, z, currents, kappa_on=sigma_on)
            start = 0
            for pattern_name, block in patterns.items():
                rows = slice(start, start + len(block))
                start += len(block)
                diff = np.abs(u_torch[rows] - u_ref[rows]).max() / np.abs(u_ref[rows]).max()
                cases.append(
                    {
                        "mesh": name,
                        "num_nodes": mesh.num_nodes,
                        "conductivity": sigma_on,
                        "impedance": z_label,
                        "patterns": pattern_name,
                        "num_patterns": len(block),
                        "max_abs_voltage": float(np.abs(u_ref[rows]).max()),
                        "max_abs_sum_voltages": float(np.abs(u_ref[rows].sum(axis=1)).max()),
                        "max_rel_diff": float(diff),
                    }
                )
            cases[-1]["seconds"] = time.perf_counter() - t0
    return cases


# --------------------------------------------------------------------- study (b)


def _continuum_level(h: float) -> dict:
    from physinv.problems.eit.mesh import eit_disk_arrays

    points, cells, _ = eit_disk_arrays(h)
    mesh = TriMesh(points, cells)
    op = NeumannOperator(mesh)
    xb, yb = mesh.points[op.boundary_nodes].T
    theta = np.arctan2(yb, xb)
    g = np.stack([(np.cos if kind == "cos" else np.sin)(k * theta) for kind, k in MODES])
    sigma = torch.ones(mesh.num_cells, dtype=torch.float64)
    u = DirectSolver().prepare(op, sigma)(op.rhs(torch.from_numpy(g))).numpy()
    m = edge_load(mesh.points, mesh.boundary_edges(), mesh.num_nodes)
    errors = {}
    x, y = mesh.points.T
    for (kind, k), uh in zip(MODES, u):
        offset = float(m @ exact_mode(kind, k, x, y)[0] / m.sum())
        errors[f"{kind}{k}"] = (*p1_errors(mesh, uh, kind, k, offset), offset, float(m @ uh / m.sum()))
    return {
        "h": h,
        "h_max": mesh.max_edge_length(),
        "num_nodes": mesh.num_nodes,
        "num_cells": mesh.num_cells,
        "errors": errors,
    }


def _continuum_study(hs) -> dict:
    levels = [_continuum_level(h) for h in hs]
    h_max = [lv["h_max"] for lv in levels]
    modes = {}
    for kind, k in MODES:
        key = f"{kind}{k}"
        l2 = [lv["errors"][key][0] for lv in levels]
        h1 = [lv["errors"][key][1] for lv in levels]
        modes[key] = {
            "l2": fit_rate(hs, l2).as_dict(),
            "h1": fit_rate(hs, h1).as_dict(),
            "rate_l2_vs_h_max": fit_rate(h_max, l2).rate,
            "rate_h1_vs_h_max": fit_rate(h_max, h1).rate,
            "ground_offset": [lv["errors"][key][2] for lv in levels],
            "discrete_ground_residual": max(abs(lv["errors"][key][3]) for lv in levels),
        }
    return {
        "h": list(hs),
        "h_max": h_max,
        "num_nodes": [lv["num_nodes"] for lv in levels],
        "num_cells": [lv["num_cells"] for lv in levels],
        "modes": modes,
    }


def validate_eit(quick: bool = False, *, cem_meshes=None, continuum_h=None) -> dict:
    """Run both EIT studies (see the module docstring).

    Parameters
    ----------
    quick
        Study (a) on the h0.2 and h0.1 meshes only, study (b) without its finest mesh.
    cem_meshes
        Override the shipped mesh names of study (a).
    continuum_h
        Override the gmsh ``h`` values of study (b) (at least two, each in ``[0.004, 0.5]``).

    Returns
    -------
    dict
        JSON-serializable: ``max_rel_diff_cem_vs_dolfinx``, ``cem_cases`` (one
        entry per mesh, conductivity, impedance set and pattern set);
        ``continuum`` (``h``, ``h_max``, ``num_nodes``, per mode ``l2``/``h1``
        tables with rates against ``h``, ``rate_l2_vs_h_max``,
        ``rate_h1_vs_h_max``, ground offsets); ``rate_l2_min``/``rate_l2_max``
        (all modes, vs ``h``), ``rate_h1_min``/``rate_h1_max`` (``k = 2, 3``),
        ``rate_h1_k1`` (smaller of the two ``k = 1`` modes);
        ``passed``; ``quick``; ``seconds``.

    Raises
    ------
    MissingExtraError
        DOLFINx or gmsh is not installed (``pip install 'physinv[fem]'``).
    """
    from physinv.fem.dolfinx import import_dolfinx

    import_dolfinx("validate eit against DOLFINx")  # fail fast when the extra is missing
    cem_meshes = tuple(cem_meshes) if cem_meshes is not None else CEM_MESHES[:2] if quick else CEM_MESHES
    hs = tuple(float(h) for h in continuum_h) if continuum_h is not None else CONTINUUM_H[:-1] if quick \
        else CONTINUUM_H
    if not cem_meshes:
        raise InvalidParameterError("cem_meshes must name at least one shipped mesh")
    if len(set(hs)) < 2:
        raise InvalidParameterError(f"continuum_h needs at least two distinct values for a rate; got {list(hs)}")

    seconds = {}
    t0 = time.perf_counter()
    cases = _cem_study(cem_meshes)
    seconds["cem_vs_dolfinx"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    continuum = _continuum_study(hs)
    seconds["continuum"] = time.perf_counter() - t0

    l2_rates = [mode["l2"]["rate"] for mode in continuum["modes"].values()]
    h1_rates = [mode["h1"]["rate"] for key, mode in continuum["modes"].items() if not key.endswith("1")]
    h1_k1 = [mode["h1"]["rate"] for key, mode in continuum["modes"].items() if key.endswith("1")]
    diff = max(c["max_rel_diff"] for c in cases)
    lo, hi = RATE_BOUNDS
    return {
        "max_rel_diff_cem_vs_dolfinx": diff,
        "rate_l2_min": min(l2_rates),
        "rate_l2_max": max(l2_rates),
        "rate_h1_min": min(h1_rates),
        "rate_h1_max": max(h1_rates),
        "rate_h1_k1": min(h1_k1),
        "cem_cases": cases,
        "continuum": continuum,
        "passed": bool(diff <= AGREEMENT_TOL and all(lo <= r <= hi for r in l2_rates)),
        "quick": bool(quick),
        "seconds": seconds,
    }



def format_report(result: dict) -> str:
    """Readable plain-text report of a :func:`validate_eit` result."""
    lo, hi = RATE_BOUNDS
    diff = result["max_rel_diff_cem_vs_dolfinx"]
    lines = [
        "EIT validation" + (" (quick)" if result.get("quick") else ""),
        "",
        "(a) complete electrode model: torch CompleteElectrodeOperator vs DOLFINx (solve_cem), 16 electrodes",
        f"  {'mesh':<20} {'nodes':>6}  {'sigma':>5}  {'impedance':<18} {'patterns':<9} {'max|U|':>9}  "
        f"{'max rel diff':>12}",
    ]
    for c in result["cem_cases"]:
        lines.append(
            f"  {c['mesh']:<20} {c['num_nodes']:6d}  {c['conductivity']:>5}  {c['impedance']:<18} "
            f"{c['patterns']:<9} {c['max_abs_voltage']:9.3e}  {c['max_rel_diff']:12.3e}"
        )
    lines.append(
        f"  max_rel_diff_cem_vs_dolfinx = {diff:.3e}   "
        f"(expected <= {AGREEMENT_TOL:g}: {verdict(diff <= AGREEMENT_TOL)})"
    )
    lines.append("")

    cont = result["continuum"]
    names = list(cont["modes"])
    lines.append(
        "(b) continuum model (NeumannOperator), sigma = 1 on the unit disk, g = cos/sin(k theta), "
        "u = r^k cos/sin(k theta)/k"
    )
    lines.append("  meshes: eit_disk_arrays(h); rates: least-squares fit vs the gmsh h (checked) and vs h_max "
                 "(max edge length, reported)")
    header = f"  {'h':>7} {'h_max':>8} {'nodes':>6}  " + "  ".join(f"{n:>9}" for n in names)
    for norm, title in (
        ("l2", "L2(Omega_h) error (degree-6 quadrature; exact solution shifted to the discrete ground)"),
        ("h1", "H1-seminorm error"),
    ):
        lines.append(f"  {title}")
        lines.append(header)
        for i, (h, hm, nn) in enumerate(zip(cont["h"], cont["h_max"], cont["num_nodes"])):
            row = "  ".join(f"{cont['modes'][n][norm]['error'][i]:9.3e}" for n in names)
            lines.append(f"  {h:7.4f} {hm:8.5f} {nn:6d}  {row}")
        for label, values in (
            ("last pairwise order", [cont["modes"][n][norm]["pairwise_rates"][-1] for n in names]),
            ("rate vs h", [cont["modes"][n][norm]["rate"] for n in names]),
            ("rate vs h_max", [cont["modes"][n][f"rate_{norm}_vs_h_max"] for n in names]),
        ):
            lines.append(f"  {label:>23}  " + "  ".join(f"{v:9.3f}" for v in values))
    ok = lo <= result["rate_l2_min"] and result["rate_l2_max"] <= hi
    lines.append(
        f"  L2 rates (vs h) in [{result['rate_l2_min']:.4f}, {result['rate_l2_max']:.4f}]   "
        f"(expected in [{lo}, {hi}]: {verdict(ok)})"
    )
    lines.append(
        f"  H1 rates (vs h), k = 2, 3: [{result['rate_h1_min']:.4f}, {result['rate_h1_max']:.4f}] (expected about 1); "
        f"k = 1: {result['rate_h1_k1']:.4f} (u linear, error from the polygonal boundary only); not checked"
    )
    lines.append("")
    lines.append("PASSED" if result.get("passed") else "FAILED")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: ``python -m physinv.problems.eit.validate [--json] [--quick]``."""
    parser = validation_parser("eit", "Torch complete electrode model vs DOLFINx, and convergence of the continuum EIT model.")
    parser.add_argument("--quick", action="store_true", help="two CEM meshes, no finest continuum mesh")
    args = parser.parse_args(argv)
    result = validate_eit(quick=args.quick)
    return report_result(result, args.json, format_report)


if __name__ == "__main__":
    sys.exit(main())
