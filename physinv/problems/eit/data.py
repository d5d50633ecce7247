"""The ``eit`` data set: disk phantoms with 1-4 inclusions and their electrode data.

Registered with :func:`physinv.learn.data.register_dataset` when
:mod:`physinv.problems.eit` is imported.  Sample ``i`` draws a phantom with
:func:`physinv.problems.eit.phantoms.draw_phantom` from ``default_rng([seed, i])``
and simulates the complete electrode model (:class:`~physinv.problems.eit.simulator.EITSimulator`)
on the shipped mesh ``mesh`` with the phantom's cell averages.  Fields:

* ``sigma`` ``(N, n, n)``: the phantom on the ``n x n`` pixel grid of
  ``[-1, 1]^2`` (pixel centres; background outside the disk) -- the target;
* ``inclusions`` ``(N, 4, 6)``: ``(x, y, a, b, angle, sigma)`` per inclusion,
  rows of zeros for absent ones -- the exact geometry, for reconstructions on meshes;
* ``voltages`` ``(N, n_patterns, n_measurements)``: noise-free data (V) -- the input.

:func:`network_inputs` forms what the networks see; :func:`phantom_from_row`
rebuilds the exact phantom.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.problems.eit.electrodes import ElectrodeMesh
from physinv.learn.data import register_dataset
from physinv.problems.eit.simulator import INJECTIONS, MEASUREMENTS, EITSimulator, injection_pattern
from physinv.problems.eit.phantoms import Inclusion, Phantom, draw_phantom, pixel_grid

__all__ = ["DATASET_DEFAULTS", "network_inputs", "phantom_from_row"]

DATASET_DEFAULTS = {
    "n": 32,                        # pixels per side of the target grid
    "mesh": "eit_disk_h0.05.msh",   # shipped mesh the data are simulated on
    "electrodes": 16,
    "injection": "adjacent",
    "measurement": "adjacent",
    "contact_impedance": 0.01,      # Ohm m^2
    "min_inclusions": 1,
    "max_inclusions": 4,
    "background": 1.0,              # S/m
    "dtype": "float32",
}
_MAX_INCLUSIONS = 4


def phantom_from_row(row: np.ndarray, background: float = 1.0) -> Phantom:
    """The :class:`Phantom` of one ``inclusions`` row ``(4, 6)`` (rows with semi-axis ``a = 0`` are absent)."""
    row = np.asarray(row, dtype=np.float64)
    return Phantom(float(background), tuple(Inclusion(*map(float, r)) for r in row if r[2] > 0))


def network_inputs(voltages: torch.Tensor, injection: str = "adjacent", keep: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """``(B, n_patterns, n_measurements)`` data -> ``(B, n_patterns, n_measurements, 2)`` network input:
    channel 0 the injected currents of each pattern (at the electrodes; needs ``n_measurements == L``),
    channel 1 the measured voltages, set to 0 where ``keep`` (``(n_patterns, n_measurements)`` bool) is
    false (e.g. ``~driven_measurements(...)``: the networks then see exactly the data a classic method uses)."""
    if voltages.ndim != 3:
        raise InvalidParameterError(f"voltages must have shape (B, n_patterns, n_measurements); got "
                                    f"{tuple(voltages.shape)}")
    _, n_patterns, n_meas = voltages.shape
    currents = torch.as_tensor(injection_pattern(injection, n_meas), dtype=voltages.dtype, device=voltages.device)
    if currents.shape[0] != n_patterns:
        raise InvalidParameterError(f"{n_patterns} patterns do not match the {injection!r} protocol with "
                                    f"{n_meas} electrodes ({currents.shape[0]} patterns)")
    if keep is not None:
        voltages = voltages * torch.as_tensor(keep, device=voltages.device).to(voltages.dtype)
    return torch.stack([currents.expand_as(voltages), voltages], dim=-1)


def _dataset_draw(rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    phantom = draw_phantom(rng, (params["min_inclusions"], params["max_inclusions"]), params["background"])
    rows = np.zeros((_MAX_INCLUSIONS, 6))
    for k, inc in enumerate(phantom.inclusions):
        rows[k] = (inc.x, inc.y, inc.a, inc.b, inc.angle, inc.sigma)
    centres, _ = pixel_grid(params["n"])
    return {"sigma": phantom.on_points(centres).astype(params["dtype"]), "inclusions": rows}


_SIM_CACHE: dict[tuple, EITSimulator] = {}


def _simulator(params: dict) -> EITSimulator:
    key = (params["mesh"], params["electrodes"], params["injection"], params["measurement"],
           params["contact_impedance"])
    if key not in _SIM_CACHE:
        mesh = ElectrodeMesh.shipped(params["mesh"])
        _SIM_CACHE[key] = EITSimulator(mesh, params["injection"], params["measurement"],
                                       params["contact_impedance"], n_electrodes=params["electrodes"])
    return _SIM_CACHE[key]


def _dataset_simulate(batch: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    sim = _simulator(params)
    mesh = sim.electrode_mesh.mesh
    out = []
    with torch.no_grad():
        for row in batch["inclusions"]:
            sigma = phantom_from_row(row, params["background"]).on_cells(mesh)
            out.append(sim(torch.from_numpy(sigma)).numpy())
    return {"voltages": np.stack(out).astype(params["dtype"])}


register_dataset(
    "eit",
    draw=_dataset_draw,
    simulate=_dataset_simulate,
    params=dict(DATASET_DEFAULTS),
    choices={"dtype": ("float32", "float64"), "injection": INJECTIONS, "measurement": MEASUREMENTS},
    limits={"n": (2, None), "electrodes": (2, None), "contact_impedance": (0.0, None),
            "min_inclusions": (1, _MAX_INCLUSIONS), "max_inclusions": (1, _MAX_INCLUSIONS), "background": (0.0, None)},
    inputs=("voltages",),
    targets=("sigma",),
    description="EIT on the unit disk, complete electrode model (16 electrodes, adjacent/adjacent): phantoms with "
                "1-4 circular/elliptic inclusions; input electrode data (16, 16), target sigma (n, n)",
)
