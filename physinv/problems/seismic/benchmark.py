"""Timing of the acoustic simulator against bare Deepwave, side by side in one process.

:func:`wrapper_overhead` times, interleaved (A B A B ...; the best of
``repeats`` rounds each, since interference on a shared machine only adds
time): physinv's :class:`~physinv.problems.seismic.simulator.AcousticSimulator`
forward, its forward + gradient of ``1/2 ||F(v)||^2``, and the same
forward + gradient through a direct ``deepwave.scalar`` call with the same
arguments.  Ratios, not seconds, are the result.
"""

from __future__ import annotations

import time

import torch

from physinv.core.extras import require
from physinv.problems.seismic.simulator import AcousticSimulator

__all__ = ["wrapper_overhead"]


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def wrapper_overhead(sim: AcousticSimulator, v: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` seconds per sample and the ratios ``wrapper_over_deepwave_time`` (physinv forward +
    gradient over bare Deepwave's) and ``grad_over_forward_time`` (physinv forward + gradient over forward)."""
    deepwave = require("deepwave", "seismic", "the wrapper-overhead timing")
    models, _ = sim.per_shot(v.detach())
    arguments = sim.deepwave_arguments(1, v.dtype)

    def physinv_forward():
        with torch.no_grad():
            sim(v)

    def physinv_gradient():
        vv = v.detach().clone().requires_grad_(True)
        (0.5 * sim(vv).pow(2).sum()).backward()

    def deepwave_gradient():
        vv = models.clone().requires_grad_(True)
        out = deepwave.scalar(vv, sim.survey.dx, sim.survey.dt, **arguments)[-1]
        (0.5 * out.pow(2).sum()).backward()

    runs = {"forward_s": physinv_forward, "forward_gradient_s": physinv_gradient,
            "deepwave_forward_gradient_s": deepwave_gradient}
    for fn in runs.values():  # warm-up: Deepwave's first call sets up its kernels
        fn()
    best = {k: float("inf") for k in runs}
    for _ in range(max(1, int(repeats))):
        for key, fn in runs.items():
            best[key] = min(best[key], _seconds(fn))
    best["wrapper_over_deepwave_time"] = best["forward_gradient_s"] / best["deepwave_forward_gradient_s"]
    best["grad_over_forward_time"] = best["forward_gradient_s"] / best["forward_s"]
    return best
