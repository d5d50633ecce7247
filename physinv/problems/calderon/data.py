"""The ``calderon`` data set: random conductivities and their Dirichlet-to-Neumann data.

Registered with :func:`physinv.learn.data.register_dataset` when
:mod:`physinv.problems.calderon` is imported: sample ``i`` draws ``a``
from the prior :func:`physinv.problems.calderon.simulator.draw_conductivity` with
``default_rng([seed, i])`` and simulates the Neumann data of the ``L``
trigonometric inputs with :class:`~physinv.problems.calderon.simulator.CalderonSimulator`.
Fields: ``a`` ``(N, n, n)`` (target) and ``neumann`` ``(N, L, 4(n-1))``
(input).  :func:`network_inputs` forms what the networks see.
"""

from __future__ import annotations

import numpy as np
import torch

from physinv.core.errors import InvalidParameterError
from physinv.learn.data import register_dataset
from physinv.problems.calderon.simulator import CalderonSimulator, draw_conductivity, trig_patterns

__all__ = ["DATASET_DEFAULTS", "network_inputs"]

DATASET_DEFAULTS = {
    "n": 32,            # nodes per side
    "L": 20,            # boundary inputs (trig_patterns)
    "a_min": 1.0,       # bounds of the conductivity (S/m)
    "a_max": 3.0,
    "modes": 5,         # sine modes per axis
    "amplitude": 2.0,   # standard deviation of the sine series before the sigmoid
    "decay": 2.0,       # spectral decay of the sine series
    "dtype": "float32",  # storage type of the fields
}



def network_inputs(neumann: torch.Tensor, patterns: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """The networks' input: pairs (Dirichlet input, Neumann output) per boundary input.

    ``neumann`` has shape ``(B, L, n_boundary)`` (the data set's field
    ``neumann``); ``patterns`` the Dirichlet inputs ``(L, n_boundary)``
    (default :func:`trig_patterns` for the grid that ``n_boundary`` implies).
    Returns ``(B, L, n_boundary, 2)``: channel 0 ``g_l`` at the boundary
    nodes, channel 1 ``a du_l/dn`` there.  Noise (multiplicative) is applied
    to the Neumann data before calling this.
    """
    if neumann.ndim != 3:
        raise InvalidParameterError(f"neumann must have shape (B, L, n_boundary); got {tuple(neumann.shape)}")
    _, L, nb = neumann.shape
    if nb % 4 or nb < 8:
        raise InvalidParameterError(f"n_boundary = 4 (n - 1) with n >= 3 nodes per side; got {nb}")
    if patterns is None:
        patterns = trig_patterns(nb // 4 + 1, L)
    g = torch.as_tensor(patterns, dtype=neumann.dtype, device=neumann.device)
    if tuple(g.shape) != (L, nb):
        raise InvalidParameterError(f"patterns must have shape ({L}, {nb}); got {tuple(g.shape)}")
    return torch.stack([g.expand_as(neumann), neumann], dim=-1)


def _dataset_draw(rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    a = draw_conductivity(rng, params["n"], params["a_min"], params["a_max"], params["modes"],
                          params["amplitude"], params["decay"])
    return {"a": a.astype(params["dtype"])}


_SIM_CACHE: dict[tuple, CalderonSimulator] = {}


def _dataset_simulate(batch: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    key = (params["n"], params["L"])
    if key not in _SIM_CACHE:
        _SIM_CACHE[key] = CalderonSimulator(n=params["n"], L=params["L"])
    sim = _SIM_CACHE[key]
    out = []
    with torch.no_grad():
        for a in batch["a"]:  # each row on its own (its own factorization)
            out.append(sim(torch.from_numpy(np.asarray(a, dtype=np.float64))).numpy())
    return {"neumann": np.stack(out).astype(params["dtype"])}


register_dataset(
    "calderon",
    draw=_dataset_draw,
    simulate=_dataset_simulate,
    params=dict(DATASET_DEFAULTS),
    choices={"dtype": ("float32", "float64")},
    limits={"n": (3, None), "L": (1, None), "a_min": (0.0, None), "a_max": (0.0, None), "modes": (1, None),
            "amplitude": (0.0, None), "decay": (0.0, None)},
    inputs=("neumann",),
    targets=("a",),
    description="Calderon problem on the unit square: -div(a grad u_l) = 0, u_l = g_l (L trig patterns); "
                "input the Neumann data a du_l/dn at the 4(n-1) boundary nodes (L, n_b), target a (n, n)",
)
