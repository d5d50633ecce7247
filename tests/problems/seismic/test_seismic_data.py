"""OpenFWI-style velocity families and their data sets (physinv.problems.seismic.data)."""

import numpy as np
import pytest
import torch

from physinv.core.errors import InvalidParameterError, UnknownNameError, UnstableTimeStepError
from physinv.learn import data
from physinv.problems.seismic import velocity_families as vf
from physinv.problems.seismic.velocity_families import FAMILIES, draw_structure, render, velocity_map

SEEDS = range(24)
TINY = {"nz": 12, "nx": 12, "dx": 20.0, "nt": 80, "dt": 2e-3, "peak_frequency": 10.0, "n_shots": 2,
        "n_receivers": 12, "pml_width": 5}


def _maps(family, nz=70, nx=70, seeds=SEEDS):
    return [velocity_map(family, np.random.default_rng([s, 11]), nz, nx) for s in seeds]


def _lateral_jumps(v):
    """(row, boundary) pairs where v changes between cells j and j + 1 (boundary at x = (j + 1) / nx)."""
    rows, cols = np.nonzero(np.diff(v, axis=1))
    return rows, cols + 1


@pytest.mark.parametrize("family", FAMILIES)
def test_maps_in_range_shaped_deterministic_and_random(family):
    maps = _maps(family, seeds=range(8))
    for v in maps:
        assert v.shape == (70, 70) and v.dtype == np.float64
        assert vf.V_MIN <= v.min() and v.max() <= vf.V_MAX
        assert len(np.unique(v)) >= 2
    again = velocity_map(family, np.random.default_rng([0, 11]))
    np.testing.assert_array_equal(again, maps[0])
    assert all(not np.array_equal(maps[0], v) for v in maps[1:])
    assert velocity_map(family, np.random.default_rng(3), 20, 44).shape == (20, 44)


@pytest.mark.parametrize("family", FAMILIES)
def test_maps_scale_with_the_grid(family):
    # the 35 x 35 map is the 70 x 70 geology at half resolution: a coarse cell's centre is the corner of
    # four fine cells, and its velocity is one of theirs
    for s in range(6):
        fine = velocity_map(family, np.random.default_rng(s), 70, 70)
        coarse = velocity_map(family, np.random.default_rng(s), 35, 35)
        match = np.any([coarse == fine[a::2, b::2] for a in (0, 1) for b in (0, 1)], axis=0)
        assert match.mean() > 0.98


def test_flat_families_have_constant_rows_and_curved_ones_do_not():
    for family in ("flatvel-a", "flatvel-b"):
        assert max(float(np.ptp(v, axis=1).max()) for v in _maps(family)) == 0.0
    for family in ("curvevel-a", "curvevel-b"):
        # every map has rows with lateral variation (at least a tenth of the rows)
        for v in _maps(family):
            assert float(v.std(axis=1).max()) > 0
            assert np.mean(v.std(axis=1) > 0) > 0.1


def _near_a_fault(structure, rows, bounds, nz, nx, tol=1.0):
    """Whether lateral jumps at (row, boundary) lie within tol cells of a fault plane (as displaced by
    the faults after it)."""
    z = (rows + 0.5) / nz
    ok = np.zeros(len(rows), dtype=bool)
    faults = structure.faults
    for m, fault in enumerate(faults):
        shifts = [0.0] + [f.throw for f in faults[m + 1:]]  # the later faults move this plane on their side
        for shift in shifts:
            ok |= np.abs(bounds - fault.trace(z + shift) * nx) <= tol
    return ok


@pytest.mark.parametrize("family", ["flatfault-a", "flatfault-b"])
def test_flat_fault_maps_jump_only_along_slanted_fault_planes(family):
    nz = nx = 70
    for s in SEEDS:
        st = draw_structure(family, np.random.default_rng([s, 11]))
        assert 1 <= len(st.faults) <= 2
        for f in st.faults:
            assert 55 <= abs(f.dip) <= 80  # slanted, neither vertical nor flat
        v = render(st, nz, nx)
        rows, bounds = _lateral_jumps(v)
        assert len(rows) > 0  # the throw displaced the layers
        assert _near_a_fault(st, rows, bounds, nz, nx).all()
        if len(st.faults) == 1 and len(set(rows)) >= 8:
            # the jump positions follow the fault's slope d(col)/d(row) = 1 / tan(dip) (square grid)
            slope = np.polyfit(rows, bounds, 1)[0]
            assert slope == pytest.approx(1 / np.tan(np.radians(st.faults[0].dip)), abs=0.15)


@pytest.mark.parametrize("family", ["flatfault-a", "flatfault-b", "curvefault-a", "curvefault-b"])
def test_faults_move_only_one_side(family):
    moved = 0
    for s in SEEDS:
        st = draw_structure(family, np.random.default_rng([s, 11]))
        v = render(st, 70, 70)
        unfaulted = render(vf.Structure(**{**st.__dict__, "faults": ()}), 70, 70)
        z, x = np.meshgrid((np.arange(70) + 0.5) / 70, (np.arange(70) + 0.5) / 70, indexing="ij")
        still = np.all([f.side(z, x) == 0 for f in st.faults], axis=0)
        np.testing.assert_array_equal(v[still], unfaulted[still])
        moved += not np.array_equal(v[~still], unfaulted[~still])
    assert moved >= 0.9 * len(SEEDS)


def test_a_families_are_simpler_than_b():
    def layers(v):
        return len(np.unique(v))

    def vertical_variation(v):
        return float(np.abs(np.diff(v, axis=0)).sum(axis=0).mean())

    for kind in ("flatvel", "curvevel", "flatfault", "curvefault"):
        a, b = _maps(f"{kind}-a"), _maps(f"{kind}-b")
        assert 2 <= min(map(layers, a)) and max(map(layers, a)) <= 4
        assert np.mean([layers(v) for v in b]) > np.mean([layers(v) for v in a]) + 2
        assert np.mean([vertical_variation(v) for v in b]) > 2 * np.mean([vertical_variation(v) for v in a])
    # "A": velocity increases with depth in every column; "B": not monotone in nearly every map
    for kind in ("flatvel", "curvevel"):
        assert all((np.diff(v, axis=0) >= 0).all() for v in _maps(f"{kind}-a"))
        assert np.mean([(np.diff(v, axis=0) < 0).any() for v in _maps(f"{kind}-b")]) > 0.8


def test_unknown_family_and_bad_grid_are_refused():
    with pytest.raises(UnknownNameError, match="unknown velocity family 'flatvel-c'.*curvefault-b"):
        velocity_map("flatvel-c", np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="nz must be an integer >= 2"):
        velocity_map("flatvel-a", np.random.default_rng(0), 1, 70)


# ------------------------------------------------------------------ data sets
pytest.importorskip("deepwave")
from physinv.problems.seismic import data as sdata  # noqa: E402  (registers the openfwi-* data sets)
from physinv.problems.seismic.simulator import AcousticSimulator  # noqa: E402
from physinv.problems.seismic.survey import openfwi_survey  # noqa: E402


def test_registered_names_and_defaults():
    names = data.dataset_names()
    assert all(f"openfwi-{f}" in names for f in FAMILIES)
    gen = data.get_dataset("openfwi-curvefault-b")
    assert gen.params == {"nz": 70, "nx": 70, "dx": 10.0, "nt": 1000, "dt": 1e-3, "peak_frequency": 15.0,
                          "n_shots": 5, "n_receivers": 70, "pml_width": 20, "accuracy": 4, "dtype": "float32"}
    assert (gen.inputs, gen.targets) == (("gathers",), ("velocity",))


def test_generated_gathers_are_the_simulator_applied_to_the_stored_velocities(tmp_path):
    path = data.generate("openfwi-flatfault-b", 4, tmp_path / "ff.h5", seed=2, chunk=2, params=TINY,
                         progress=False)
    loaded = data.load(path)
    v, d = loaded["velocity"], loaded["gathers"]
    assert v.shape == (4, 12, 12) and d.shape == (4, 2, 12, 80)
    assert v.dtype == d.dtype == torch.float32
    assert loaded.meta["params"] == {**data.get_dataset("openfwi-flatfault-b").params, **TINY}
    assert 1500 <= float(v.min()) and float(v.max()) <= 4500
    np.testing.assert_array_equal(  # the stored map is the family's map of default_rng([seed, i])
        v[3].numpy(), velocity_map("flatfault-b", np.random.default_rng([2, 3]), 12, 12).astype(np.float32))
    survey = openfwi_survey(12, 12, 20.0, 80, 2e-3, 10.0, 2, 12)
    sim = AcousticSimulator(survey, (1500.0, 4500.0), accuracy=4, pml_width=5)
    with torch.no_grad():
        expected = sim(v)
    np.testing.assert_array_equal(d.numpy(), expected.numpy())  # rows independent of their chunk
    assert float(d.abs().max()) > 0


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(UnknownNameError, match="openfwi-flatvel-c"):
        data.generate("openfwi-flatvel-c", 2, tmp_path / "x.h5", progress=False)
    with pytest.raises(UnstableTimeStepError, match="maximum stable dt is 0.0027"):
        data.generate("openfwi-flatvel-a", 2, tmp_path / "dt.h5", params={**TINY, "dt": 3e-3}, progress=False)
    with pytest.raises(InvalidParameterError, match="n_receivers = 13 exceeds nx = 12"):
        data.generate("openfwi-flatvel-a", 2, tmp_path / "r.h5", params={**TINY, "n_receivers": 13},
                      progress=False)
    with pytest.raises(InvalidParameterError, match="'accuracy' must be one of 2, 4, 6, 8"):
        data.generate("openfwi-flatvel-a", 2, tmp_path / "a.h5", params={**TINY, "accuracy": 3}, progress=False)
    with pytest.raises(InvalidParameterError, match="'nz' must lie in"):
        data.generate("openfwi-flatvel-a", 2, tmp_path / "n.h5", params={**TINY, "nz": 4}, progress=False)
    assert not any(tmp_path.glob("*.h5"))


def test_network_inputs_and_velocity_scaling():
    g = torch.tensor([[-26.95, 0.0, 52.77], [1.0, -1.0, 10.0]], dtype=torch.float64)
    x = sdata.network_inputs(g, -26.95, 52.77)
    assert x.shape == g.shape and isinstance(x, torch.Tensor)
    assert float(x[0, 0]) == pytest.approx(-1) and float(x[0, 2]) == pytest.approx(1)
    lo, hi = -np.log1p(26.95), np.log1p(52.77)
    assert float(x[1, 0]) == pytest.approx(2 * (np.log1p(1) - lo) / (hi - lo) - 1)
    assert torch.all(torch.diff(sdata.network_inputs(torch.linspace(-30, 60, 50), -26.95, 52.77)) > 0)
    xn = sdata.network_inputs(g.numpy(), *sdata.data_range(g))
    assert isinstance(xn, np.ndarray) and xn.min() == pytest.approx(-1) and xn.max() == pytest.approx(1)
    with pytest.raises(InvalidParameterError, match="data_min < data_max"):
        sdata.network_inputs(g, 1.0, 1.0)
    v = torch.tensor([1500.0, 3000.0, 4500.0])
    torch.testing.assert_close(sdata.normalize_velocity(v), torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(sdata.denormalize_velocity(sdata.normalize_velocity(v)), v)
