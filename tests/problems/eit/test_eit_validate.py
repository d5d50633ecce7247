"""The `validate eit` study: torch CEM vs DOLFINx, continuum convergence rates, CLI."""

import json
from math import factorial

import numpy as np
import pytest

from physinv.core.errors import MissingExtraError
from physinv.problems.eit.validate import (
    AGREEMENT_TOL,
    QUAD_BARY,
    QUAD_WEIGHTS,
    RATE_BOUNDS,
    exact_mode,
    format_report,
    validate_eit,
)


def has_fem_extra():
    from physinv.fem.dolfinx import import_dolfinx

    try:
        import_dolfinx()
        import gmsh  # noqa: F401
        import meshio  # noqa: F401
    except (MissingExtraError, ImportError):
        return False
    return True


@pytest.fixture(scope="module")
def result():
    if not has_fem_extra():
        pytest.skip("DOLFINx/gmsh/meshio not installed (pip install 'physinv[fem]')")
    return validate_eit(quick=True)


def test_quick_study_passes(result):
    assert result["quick"] is True and result["passed"] is True
    assert result["max_rel_diff_cem_vs_dolfinx"] <= AGREEMENT_TOL == 1e-8
    meshes = {c["mesh"] for c in result["cem_cases"]}
    assert meshes == {"eit_disk_h0.2.msh", "eit_disk_h0.1.msh"}
    assert {(c["conductivity"], c["patterns"]) for c in result["cem_cases"]} == {
        (s, p) for s in ("cell", "node") for p in ("adjacent", "opposite")
    }
    assert all(c["max_abs_sum_voltages"] <= 1e-12 for c in result["cem_cases"])
    lo, hi = RATE_BOUNDS
    cont = result["continuum"]
    assert cont["h"] == [0.2, 0.1, 0.05, 0.025]
    assert set(cont["modes"]) == {f"{kind}{k}" for k in (1, 2, 3) for kind in ("cos", "sin")}
    for mode in cont["modes"].values():
        assert lo <= mode["l2"]["rate"] <= hi
        assert all(e1 < e0 / 3.5 for e0, e1 in zip(mode["l2"]["error"], mode["l2"]["error"][1:]))
        assert mode["discrete_ground_residual"] < 1e-12
    assert 0.9 <= result["rate_h1_min"] <= result["rate_h1_max"] <= 1.1
    assert "PASSED" in format_report(result)


def test_quadrature_exact_to_degree_6():
    x, y = QUAD_BARY[:, 1], QUAD_BARY[:, 2]  # reference triangle (0,0), (1,0), (0,1), area 1/2
    assert QUAD_WEIGHTS.sum() == pytest.approx(1.0, abs=1e-15)
    for p in range(7):
        for q in range(7 - p):
            exact = factorial(p) * factorial(q) / factorial(p + q + 2)
            assert 0.5 * QUAD_WEIGHTS @ (x**p * y**q) == pytest.approx(exact, rel=1e-13)


@pytest.mark.parametrize("kind", ["cos", "sin"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_mode_is_the_neumann_solution(kind, k):
    rng = np.random.default_rng(k)
    theta = rng.uniform(0, 2 * np.pi, 5)
    r = rng.uniform(0.1, 1.0, 5)
    x, y = r * np.cos(theta), r * np.sin(theta)
    u, ux, uy = exact_mode(kind, k, x, y)
    trig = np.cos if kind == "cos" else np.sin
    np.testing.assert_allclose(u, r**k * trig(k * theta) / k, atol=1e-14)
    eps = 1e-6  # gradient by central differences

    def value(px, py):
        return exact_mode(kind, k, px, py)[0]

    np.testing.assert_allclose(ux, (value(x + eps, y) - value(x - eps, y)) / (2 * eps), atol=1e-8)
    np.testing.assert_allclose(uy, (value(x, y + eps) - value(x, y - eps)) / (2 * eps), atol=1e-8)
    # Neumann data on the unit circle: du/dr = cos/sin(k theta)
    _, bx, by = exact_mode(kind, k, np.cos(theta), np.sin(theta))
    np.testing.assert_allclose(bx * np.cos(theta) + by * np.sin(theta), trig(k * theta), atol=1e-14)


def test_cli_json(result, capsys):
    from physinv.cli import VALIDATIONS, main

    assert VALIDATIONS.get("eit").module == "physinv.problems.eit.validate"
    assert main(["validate", "eit", "--json", "--quick"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and data["quick"] is True
    assert data["max_rel_diff_cem_vs_dolfinx"] <= AGREEMENT_TOL
    assert RATE_BOUNDS[0] <= data["rate_l2_min"] <= data["rate_l2_max"] <= RATE_BOUNDS[1]
