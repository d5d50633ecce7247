r"""The ``ns-kolmogorov`` data set: spun-up Kolmogorov-flow vorticity ``w0`` and its state ``wT`` at time ``T``.

Registered with :func:`physinv.learn.data.register_dataset` when this module is imported.
Sample ``i`` draws, with ``numpy.random.default_rng([seed, i])``, a Gaussian random field
``w_grf`` (:func:`gaussian_random_field`), runs the forced Navier-Stokes equations
(:func:`physinv.problems.fluid.spectral.simulate`, float64, CPU, default CFL step per sample,
renewed every :data:`SPINUP_CHUNK` time units since the forcing speeds the flow up ~10x) for the
time ``spinup`` to get ``w0`` (the target of the inverse problem), then for ``T`` more to get
``wT`` (exactly ``VorticitySimulator(n, T, nu, ...)(w0)``) (the input; the EnKG observation is ``wT[::2, ::2]``).  Fields: ``w_grf``, ``w0``, ``wT``,
each ``(N, n, n)``.

The random field is Li et al.'s (FNO, ``GaussianRF(2, n, alpha, tau)``) on the unit square,
mapped to :math:`[0, 2\pi)^2`: covariance :math:`\sigma^2(-\Delta + \tau^2 I)^{-\alpha}` with
:math:`\Delta` the Laplacian of the unit square, :math:`\sigma = \tau^{\alpha - 1}`, zero mean mode;

.. math::

    w(x) = \mathrm{Re} \sum_{k \ne 0} \sqrt 2\, \sigma\, (4\pi^2|k|^2 + \tau^2)^{-\alpha/2}\,
    (\xi_k + i \eta_k)\, e^{i k\cdot x}, \qquad \xi_k, \eta_k \sim N(0, 1),

over the ``n x n`` integer wavenumbers of the FFT grid; defaults ``alpha = 2.5``, ``tau = 7``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physinv.learn.data import register_dataset
from physinv.problems.fluid.spectral import simulate

__all__ = ["DATASET_DEFAULTS", "SPINUP_CHUNK", "gaussian_random_field", "simulate_pair"]

DATASET_DEFAULTS = {
    "n": 128,            # grid points per side
    "T": 1.0,            # time from w0 to the observed state wT
    "nu": 0.005,         # viscosity (Re = 200)
    "drag": 0.0,         # linear drag
    "forcing_amplitude": 1.0,  # f = -A k_f cos(k_f y)
    "forcing_wavenumber": 4,
    "spinup": 5.0,       # time from the random field to w0
    "grf_alpha": 2.5,    # covariance (-lap + tau^2)^(-alpha) (unit-square Laplacian)
    "grf_tau": 7.0,
    "cfl": 0.5,          # Courant number of the default step
    "dtype": "float32",  # storage type of the fields
}

#: The spin-up runs in chunks of at most this time, each with a CFL step from its own start state.
SPINUP_CHUNK = 0.5


def gaussian_random_field(rng: np.random.Generator, n: int, alpha: float = 2.5, tau: float = 7.0) -> np.ndarray:
    """One ``(n, n)`` float64 draw of the field in the module docstring."""
    k = np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    sigma = tau ** (alpha - 1.0)
    sqrt_eig = n * n * np.sqrt(2.0) * sigma * (4 * np.pi**2 * k2 + tau**2) ** (-alpha / 2.0)
    sqrt_eig[0, 0] = 0.0
    xi = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    return np.ascontiguousarray(np.fft.ifft2(sqrt_eig * xi).real)


def simulate_pair(w_grf: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(w0, wT)`` of one random field: spin-up for ``params['spinup']``, then ``params['T']`` more."""
    kw = dict(nu=params["nu"], forcing_amplitude=params["forcing_amplitude"], drag=params["drag"],
              forcing_wavenumber=params["forcing_wavenumber"], cfl=params["cfl"])
    with torch.no_grad():
        w = torch.from_numpy(np.asarray(w_grf, dtype=np.float64))
        chunks = math.ceil(params["spinup"] / SPINUP_CHUNK - 1e-9)
        for _ in range(chunks):  # the CFL step is renewed per chunk while the forcing speeds the flow up
            w = simulate(w, params["spinup"] / chunks, **kw)
        wT = simulate(w, params["T"], **kw)  # = VorticitySimulator(n, T, ...)(w0): one CFL step from w0
    return w.numpy(), wT.numpy()


def _dataset_draw(rng: np.random.Generator, params: dict) -> dict[str, np.ndarray]:
    w = gaussian_random_field(rng, params["n"], params["grf_alpha"], params["grf_tau"])
    return {"w_grf": w.astype(params["dtype"])}


def _dataset_simulate(batch: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    pairs = [simulate_pair(w, params) for w in batch["w_grf"]]  # one row at a time: its own CFL step
    return {"w0": np.stack([p[0] for p in pairs]).astype(params["dtype"]),
            "wT": np.stack([p[1] for p in pairs]).astype(params["dtype"])}


register_dataset(
    "ns-kolmogorov",
    draw=_dataset_draw,
    simulate=_dataset_simulate,
    params=dict(DATASET_DEFAULTS),
    choices={"dtype": ("float32", "float64")},
    limits={"n": (8, None), "T": (1e-12, None), "nu": (1e-12, None), "drag": (0.0, None), "spinup": (0.0, None),
            "grf_alpha": (1e-12, None), "grf_tau": (0.0, None), "cfl": (1e-12, 1.35),
            "forcing_wavenumber": (0, None)},
    inputs=("wT",),
    targets=("w0",),
    description="2D Navier-Stokes vorticity on [0, 2pi]^2 with Kolmogorov forcing -A k_f cos(k_f y) (EnKG setting: "
                "Re 200, 128^2, T 1): Gaussian random field spun up to w0 (target), wT = w(T) (input)",
)
