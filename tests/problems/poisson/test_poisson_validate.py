"""The `validate poisson` study: rates, DOLFINx agreement, serial vs mpiexec -n 2."""

import json
import os
import subprocess
import sys
from math import factorial
from pathlib import Path

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, MissingExtraError
from physinv.discretize import TriMesh
from physinv.problems.poisson.validate import (
    AGREEMENT_TOL,
    QUAD_BARY,
    QUAD_WEIGHTS,
    RATE_BOUNDS,
    conductivity,
    exact_solution,
    format_report,
    p1_l2_error,
    source,
    validate_poisson,
)

REPO = Path(__file__).resolve().parents[2]


def has_dolfinx():
    from physinv.fem.dolfinx import import_dolfinx

    try:
        import_dolfinx()
        return True
    except MissingExtraError:
        return False


@pytest.fixture(scope="module")
def result():
    if not has_dolfinx():
        pytest.skip("DOLFINx not installed (pip install 'physinv[fem]')")
    return validate_poisson()


def test_rates_and_dolfinx_agreement(result):
    lo, hi = RATE_BOUNDS
    assert lo <= result["rate_l2_fd"] <= hi
    assert lo <= result["rate_l2_p1"] <= hi
    assert result["max_rel_diff_p1_vs_dolfinx"] <= AGREEMENT_TOL == 1e-8
    assert result["passed"] is True
    for key in ("fd_l2_table", "p1_l2_table"):
        table = result[key]
        assert table["n"] == [8, 16, 32, 64] and len(table["error"]) == 4
        assert all(e1 < e0 / 3.5 for e0, e1 in zip(table["error"], table["error"][1:]))
    dx = result["dolfinx"]
    assert {dx["structured"]["kappa_on"], dx["gmsh"]["kappa_on"]} == {"node", "cell"}
    assert result["max_rel_diff_p1_vs_dolfinx"] == max(dx["structured"]["max_rel_diff"], dx["gmsh"]["max_rel_diff"])


def test_result_is_json_and_report_readable(result):
    back = json.loads(json.dumps(result))
    assert back["rate_l2_fd"] == result["rate_l2_fd"]
    text = format_report(result)
    for needle in ("rate_l2_fd", "rate_l2_p1", "max_rel_diff_p1_vs_dolfinx", "PASSED", "gmsh"):
        assert needle in text


def test_without_dolfinx_levels_2():
    res = validate_poisson(levels=2, use_dolfinx=False)
    assert res["max_rel_diff_p1_vs_dolfinx"] is None and res["dolfinx"] is None
    assert res["fd_l2_table"]["n"] == [8, 16]
    assert 1.8 < res["rate_l2_fd"] < 2.2  # two coarse levels only: looser than RATE_BOUNDS
    assert "not run" in format_report(res)
    with pytest.raises(InvalidParameterError):
        validate_poisson(levels=1, use_dolfinx=False)


def test_missing_dolfinx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dolfinx", None)
    monkeypatch.setitem(sys.modules, "dolfinx_solver", None)
    with pytest.raises(MissingExtraError, match=r"physinv\[fem\]"):
        validate_poisson(levels=2)


def test_source_is_minus_div_kappa_grad_u():
    xy = torch.rand(50, 2, dtype=torch.float64, requires_grad=True)
    x, y = xy[:, 0], xy[:, 1]
    (grad_u,) = torch.autograd.grad(exact_solution(x, y).sum(), xy, create_graph=True)
    flux = conductivity(x, y)[:, None] * grad_u
    div = sum(torch.autograd.grad(flux[:, a].sum(), xy, retain_graph=True)[0][:, a] for a in range(2))
    torch.testing.assert_close(source(x, y), -div, rtol=1e-12, atol=1e-12)


def test_quadrature_exact_to_degree_5():
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = QUAD_BARY @ corners
    for a in range(6):
        for b in range(6 - a):
            value = 0.5 * np.sum(QUAD_WEIGHTS * q[:, 0] ** a * q[:, 1] ** b)
            assert value == pytest.approx(factorial(a) * factorial(b) / factorial(a + b + 2), abs=1e-15)


def test_p1_l2_error_of_linear_function_is_zero_and_of_constant_shift_is_exact():
    mesh = TriMesh.unit_square(4)
    x, y = mesh.points.T
    lin = lambda x, y: 2 * x - y + 0.5  # noqa: E731  (P1 represents it exactly)
    assert p1_l2_error(mesh, lin(x, y), lin) < 1e-14
    assert p1_l2_error(mesh, lin(x, y) + 0.3, lin) == pytest.approx(0.3, rel=1e-13)


def find_mpiexec():
    """mpiexec of the MPI that mpi4py uses: the mpich wheel puts it beside the venv's python."""
    candidate = Path(sys.executable).parent / "mpiexec"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


@pytest.mark.mpi
def test_mpiexec_two_ranks_same_result(result):
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip(f"no mpiexec beside {sys.executable} (the mpich wheel installs one there)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, "-m", "physinv.problems.poisson.validate", "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parallel = json.loads(proc.stdout)  # rank 0 prints exactly one JSON document
    assert parallel["dolfinx"]["mpi_size"] == 2
    assert parallel["max_rel_diff_p1_vs_dolfinx"] <= AGREEMENT_TOL
    assert abs(parallel["max_rel_diff_p1_vs_dolfinx"] - result["max_rel_diff_p1_vs_dolfinx"]) <= 1e-8
    assert parallel["rate_l2_fd"] == pytest.approx(result["rate_l2_fd"], abs=1e-12)
    assert parallel["rate_l2_p1"] == pytest.approx(result["rate_l2_p1"], abs=1e-12)
