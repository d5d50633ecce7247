"""OpenFWI-style random velocity maps: flat layers, curved layers, and layers cut by faults.

The eight families follow the *descriptions* of the Vel and Fault families of
OpenFWI (Deng et al., "OpenFWI: Large-scale multi-structural benchmark
datasets for full waveform inversion", NeurIPS 2022 datasets track): layered
maps with velocities in ``[1500, 4500]`` m/s; flat (``flatvel``) or curved
(``curvevel``) interfaces; the same layers displaced by one or two slanted
faults (``flatfault``, ``curvefault``); an "A" version that is simpler (few
layers, velocity increasing with depth, gentle curvature, small fault throw)
and a "B" version that is more complex (more layers, velocities in any order
with larger contrasts, stronger curvature, larger throw).  OpenFWI did not
publish its map generator; the numbers below are **ours**, chosen so the maps
look like the released ones, and documented per family in :data:`FAMILY_SPECS`.

Geometry is defined on the unit square, depth ``z`` and offset ``x`` in
``[0, 1]`` (cell ``(i, j)`` of an ``nz x nx`` grid sits at
``z = (i + 1/2) / nz``, ``x = (j + 1/2) / nx``), so the same random draw gives
the same geology at any resolution: a 35 x 35 map is the 70 x 70 one at half
resolution (up to where cell centres fall with respect to interfaces).

Construction of one map (all draws from the ``rng`` passed in, in a fixed order):

1. **Layers.**  ``L`` layers (uniform integer in the family's range), with
   thicknesses ``t_min + (1 - L t_min) w``, ``w ~ Dirichlet(1, ..., 1)``,
   ``t_min = 0.05``; interface ``k`` lies at the cumulated thickness ``d_k``.
2. **Velocities** (one constant per layer, sharp interfaces as in OpenFWI's
   maps: no smoothing).  "A": ``L`` values increasing with depth, adjacent
   steps at least 150 m/s (sorted uniforms on a shortened range, spread
   apart).  "B": each layer uniform in ``[1500, 4500]``, redrawn until it
   differs from the layer above by at least 600 m/s, so the velocity is not
   monotone in depth and the contrasts are large.
3. **Curvature** (curve families).  Every interface follows a common fold
   ``h_k(x) = d_k + a sin(2 pi f x + phi)`` (amplitude ``a`` in depth units,
   ``f`` cycles across the map); "B" adds to each interface its own smooth
   random perturbation, a sum of 3 sines, each of amplitude
   ``U[0, a_max / 6]`` (``a_max`` the top of the family's fold amplitude
   range, so at most 0.025) and ``U[1, 3]`` cycles with a random phase, so
   the interfaces are not parallel (they may pinch out where they meet).
   A cell's layer is the number of interfaces above it.
4. **Faults** (fault families).  1 or 2 straight faults; fault ``m`` crosses
   mid-depth at offset ``x_m ~ U[0.2, 0.8]`` with a dip ``theta_m`` from the
   horizontal, ``|theta_m| ~ U[55, 80]`` degrees, either direction; the block
   below/right of the fault plane (``x > x_m + (z - 1/2) / tan theta_m``) is
   moved up by the throw ``s_m`` (depth units, sign random): the map there is
   the unfaulted map sampled at ``z + s_m``.  Two faults act one after the
   other.  Layers are extended above the top and below the bottom of the map,
   so moved blocks stay layered.

Use :func:`velocity_map` (one map) or :func:`draw_structure` +
:func:`render` (the random parameters, then the map on any grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from physinv.core.errors import InvalidParameterError, UnknownNameError

__all__ = ["FAMILIES", "FAMILY_SPECS", "V_MIN", "V_MAX", "Fault", "Structure", "draw_structure", "render",
           "velocity_map", "fault_traces"]

V_MIN, V_MAX = 1500.0, 4500.0  # m/s, OpenFWI's label range
MIN_THICKNESS = 0.05           # of the map's depth
A_MIN_STEP = 150.0             # m/s between adjacent layers, "A" (increasing) families
B_MIN_CONTRAST = 600.0         # m/s between adjacent layers, "B" families


@dataclass(frozen=True)
class FamilySpec:
    """Random parameters of one family (depth and offset in units of the map's size)."""

    layers: tuple[int, int]              # inclusive range of the layer count
    increasing: bool                     # "A": velocity increases with depth
    curve_amplitude: tuple[float, float] = (0.0, 0.0)  # fold amplitude a (depth units)
    curve_frequency: tuple[float, float] = (0.0, 0.0)  # fold frequency f (cycles across the map)
    wiggle: bool = False                 # per-interface random perturbation ("B" curves)
    faults: tuple[int, int] = (0, 0)     # inclusive range of the fault count
    throw: tuple[float, float] = (0.0, 0.0)  # |throw| range (depth units)
    dip: tuple[float, float] = (55.0, 80.0)  # |dip| range (degrees from horizontal)


FAMILY_SPECS: dict[str, FamilySpec] = {
    # flat layers, velocity increasing with depth
    "flatvel-a": FamilySpec(layers=(2, 4), increasing=True),
    # more flat layers, velocities in any order, contrasts >= 600 m/s
    "flatvel-b": FamilySpec(layers=(4, 8), increasing=False),
    # a gentle common sine fold
    "curvevel-a": FamilySpec(layers=(2, 4), increasing=True, curve_amplitude=(0.03, 0.10),
                             curve_frequency=(0.5, 1.5)),
    # a stronger fold plus non-parallel random interfaces
    "curvevel-b": FamilySpec(layers=(4, 8), increasing=False, curve_amplitude=(0.05, 0.15),
                             curve_frequency=(0.75, 2.0), wiggle=True),
    # flat layers cut by 1-2 faults of small throw
    "flatfault-a": FamilySpec(layers=(2, 4), increasing=True, faults=(1, 2), throw=(0.06, 0.15)),
    "flatfault-b": FamilySpec(layers=(4, 8), increasing=False, faults=(1, 2), throw=(0.10, 0.25)),
    # folded layers cut by faults
    "curvefault-a": FamilySpec(layers=(2, 4), increasing=True, curve_amplitude=(0.03, 0.10),
                               curve_frequency=(0.5, 1.5), faults=(1, 2), throw=(0.06, 0.15)),
    "curvefault-b": FamilySpec(layers=(4, 8), increasing=False, curve_amplitude=(0.05, 0.15),
                               curve_frequency=(0.75, 2.0), wiggle=True, faults=(1, 2), throw=(0.10, 0.25)),
}

#: Family names, in OpenFWI's order.
FAMILIES: tuple[str, ...] = tuple(FAMILY_SPECS)


@dataclass(frozen=True)
class Fault:
    """A straight fault through ``(z = 1/2, x = x0)`` dipping ``dip`` degrees; the side
    ``x > x0 + (z - 1/2) / tan(dip)`` is moved up by ``throw`` (depth units; negative: down)."""

    x0: float
    dip: float
    throw: float

    def side(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """1.0 on the moved block, 0.0 elsewhere."""
        return (x > self.x0 + (z - 0.5) / math.tan(math.radians(self.dip))).astype(np.float64)

    def trace(self, z: np.ndarray) -> np.ndarray:
        """Offset ``x`` of the fault plane at depth ``z``."""
        return self.x0 + (np.asarray(z) - 0.5) / math.tan(math.radians(self.dip))


@dataclass(frozen=True)
class Structure:
    """The random parameters of one map (see the module docstring)."""

    family: str
    depths: np.ndarray        # (L - 1,) mean interface depths d_k
    velocities: np.ndarray    # (L,) m/s, top to bottom
    amplitude: float = 0.0
    frequency: float = 0.0
    phase: float = 0.0
    wiggles: np.ndarray | None = None   # (L - 1, 3, 3): amplitude, frequency, phase per interface and term
    faults: tuple[Fault, ...] = ()


def _family(family: str) -> FamilySpec:
    key = str(family).lower()
    if key not in FAMILY_SPECS:
        raise UnknownNameError(f"unknown velocity family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILY_SPECS[key]


def _velocities(rng: np.random.Generator, n: int, increasing: bool) -> np.ndarray:
    if increasing:
        span = (V_MAX - V_MIN) - (n - 1) * A_MIN_STEP
        return V_MIN + np.sort(rng.uniform(0.0, span, n)) + A_MIN_STEP * np.arange(n)
    v = [rng.uniform(V_MIN, V_MAX)]
    while len(v) < n:
        c = rng.uniform(V_MIN, V_MAX)
        if abs(c - v[-1]) >= B_MIN_CONTRAST:
            v.append(c)
    return np.array(v)


def draw_structure(family: str, rng: np.random.Generator) -> Structure:
    """The random parameters of one map of ``family`` (deterministic given ``rng``'s state)."""
    spec = _family(family)
    n = int(rng.integers(spec.layers[0], spec.layers[1] + 1))
    thickness = MIN_THICKNESS + (1 - n * MIN_THICKNESS) * rng.dirichlet(np.ones(n))
    depths = np.cumsum(thickness)[:-1]
    velocities = _velocities(rng, n, spec.increasing)
    amplitude = frequency = phase = 0.0
    wiggles = None
    if spec.curve_amplitude[1] > 0:
        amplitude = float(rng.uniform(*spec.curve_amplitude))
        frequency = float(rng.uniform(*spec.curve_frequency))
        phase = float(rng.uniform(0, 2 * np.pi))
        if spec.wiggle:
            wiggles = np.stack([rng.uniform(0, spec.curve_amplitude[1] / 2, (n - 1, 3)),
                                rng.uniform(1.0, 3.0, (n - 1, 3)),
                                rng.uniform(0, 2 * np.pi, (n - 1, 3))], axis=-1) * np.array([1 / 3, 1, 1])
    faults = []
    if spec.faults[1] > 0:
        for _ in range(int(rng.integers(spec.faults[0], spec.faults[1] + 1))):
            x0 = float(rng.uniform(0.2, 0.8))
            dip = float(rng.uniform(*spec.dip)) * (1 if rng.random() < 0.5 else -1)
            throw = float(rng.uniform(*spec.throw)) * (1 if rng.random() < 0.5 else -1)
            faults.append(Fault(x0, dip, throw))
    return Structure(str(family).lower(), depths, velocities, amplitude, frequency, phase, wiggles, tuple(faults))


def _interfaces(s: Structure, x: np.ndarray) -> np.ndarray:
    """Interface depths ``h_k(x)``, shape ``(L - 1, *x.shape)``."""
    h = s.depths.reshape(-1, *([1] * x.ndim)) + s.amplitude * np.sin(2 * np.pi * s.frequency * x + s.phase)
    if s.wiggles is not None:
        for term in range(s.wiggles.shape[1]):
            a, f, p = (s.wiggles[:, term, i].reshape(-1, *([1] * x.ndim)) for i in range(3))
            h = h + a * np.sin(2 * np.pi * f * x + p)
    return h


def _grid(nz: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    for name, n in (("nz", nz), ("nx", nx)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise InvalidParameterError(f"{name} must be an integer >= 2 (cells); got {n!r}")
    z = (np.arange(nz) + 0.5) / nz
    x = (np.arange(nx) + 0.5) / nx
    return np.meshgrid(z, x, indexing="ij")


def render(s: Structure, nz: int = 70, nx: int = 70) -> np.ndarray:
    """The map of structure ``s`` on an ``nz x nx`` grid, m/s, float64."""
    z, x = _grid(nz, nx)
    for fault in reversed(s.faults):  # the last fault acts on the map the earlier ones made
        z = z + fault.throw * fault.side(z, x)
    layer = (z[None] >= _interfaces(s, x)).sum(axis=0) if len(s.depths) else np.zeros(z.shape, dtype=np.int64)
    return s.velocities[layer].astype(np.float64)


def fault_traces(s: Structure, nz: int = 70, nx: int = 70) -> np.ndarray:
    """Lateral cell position ``(j + 1/2 = x nx)`` of each fault plane at each row's depth, ``(n_faults, nz)``.

    For the last fault this is where the jump is in the final map; an earlier fault's plane is
    itself displaced by the later faults' throws on their moved side.
    """
    z = (np.arange(nz) + 0.5) / nz
    return np.array([f.trace(z) * nx for f in s.faults]).reshape(len(s.faults), nz)


def velocity_map(family: str, rng: np.random.Generator, nz: int = 70, nx: int = 70) -> np.ndarray:
    """One random velocity map (m/s, float64, shape ``(nz, nx)``) of ``family`` (one of :data:`FAMILIES`).

    Deterministic given ``rng``'s state; the family parameters are in :data:`FAMILY_SPECS`:

    ``flatvel-a``
        2-4 flat layers, velocity increasing with depth (steps >= 150 m/s) in [1500, 4500] m/s.
    ``flatvel-b``
        4-8 flat layers, velocities uniform in [1500, 4500] m/s in any order, adjacent contrast >= 600 m/s.
    ``curvevel-a``
        As flatvel-a with all interfaces folded by one sine: amplitude 0.03-0.10 of the depth,
        0.5-1.5 cycles across the map, random phase.
    ``curvevel-b``
        As flatvel-b with a stronger common fold (amplitude 0.05-0.15, 0.75-2 cycles) plus, per
        interface, a sum of 3 sines (amplitudes <= 0.025 each, 1-3 cycles): non-parallel interfaces.
    ``flatfault-a``
        flatvel-a layers cut by 1-2 straight faults (dip 55-80 degrees either way, crossing mid-depth at
        0.2-0.8 of the width), the hanging side moved by a throw of 0.06-0.15 of the depth, up or down.
    ``flatfault-b``
        flatvel-b layers cut by 1-2 faults with throw 0.10-0.25.
    ``curvefault-a``
        curvevel-a layers cut by faults as in flatfault-a.
    ``curvefault-b``
        curvevel-b layers cut by faults as in flatfault-b.
    """
    return render(draw_structure(family, rng), nz, nx)
