"""The generic verification ladder, applied to every registered simulator.

For each simulator's tiny float64 example (:mod:`physinv.core.simulator`):

* Taylor test of ``J(m) = <w, F(m)> + 1/2 ||F(m)||^2`` along a random relative
  direction: slope in [1.9, 2.1];
* dot-product test of the linearization (``J dm`` forward mode vs ``J^T w``
  reverse mode) and of each listed linear operator with its adjoint:
  relative mismatch <= 1e-10;
* ``torch.autograd.gradcheck``.

A simulator whose example needs a missing optional extra (e.g. a DOLFINx form
simulator without ``physinv[fem]``) is reported as skipped, with the message
naming the extra, not as a failure.

``device`` runs the ladder on the example built on that device (e.g. ``"cuda"``);
the random directions are drawn on the CPU from the seeded generator and then
moved, so CPU and CUDA runs of one seed see the same directions.
"""

from __future__ import annotations

import torch

from physinv.core.errors import MissingExtraError
from physinv.core.simulator import get_simulator_spec, registered_simulators
from physinv.core.verify import dot_product_test, gradcheck_model, jacobian_dot_test, taylor_test

SLOPE_BOUNDS = (1.9, 2.1)
DOT_TOL = 1e-10


def verify_simulator(name: str, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Run the ladder on simulator ``name``, its example built on ``device``; returns the numbers and ``passed``."""
    spec = get_simulator_spec(name)
    device = torch.device(device)
    example = spec.make_example(torch.float64, device)
    sim, m0 = example.simulator, example.m0
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same directions on every device
    randn = lambda shape: torch.randn(shape, generator=gen, dtype=torch.float64).to(device)  # noqa: E731
    with torch.no_grad():
        out = sim(m0)
    w = randn(out.shape)
    dm = 0.2 * m0 * randn(m0.shape)  # relative perturbation keeps kappa positive for small h

    def objective(m: torch.Tensor) -> torch.Tensor:
        f = sim(m)
        return (w * f).sum() + 0.5 * (f**2).sum()

    taylor = taylor_test(objective, m0, dm)
    dots = {"jacobian": jacobian_dot_test(sim, m0, randn(m0.shape), w)}
    for pair in example.linear_operators:
        dots[pair.name] = dot_product_test(pair.apply, pair.adjoint, randn(pair.domain_shape), randn(pair.range_shape))
    gradcheck_ok = bool(gradcheck_model(sim, m0, raise_exception=False))
    passed = (SLOPE_BOUNDS[0] <= taylor.slope <= SLOPE_BOUNDS[1]
              and max(dots.values()) <= DOT_TOL and gradcheck_ok)
    return {
        "description": spec.description,
        "taylor_slope": taylor.slope,
        "taylor_remainders": [float(r) for r in taylor.remainders],
        "dot_tests": dots,
        "gradcheck": gradcheck_ok,
        "passed": passed,
    }


def verify_all(names: list[str] | None = None, device: str | torch.device = "cpu") -> dict[str, dict]:
    """:func:`verify_simulator` on each name (default: all registered) on ``device``; a simulator whose
    example needs a missing optional extra gets ``{"skipped": message, "passed": None}``."""
    names = names or sorted(registered_simulators())
    results = {}
    for name in names:
        try:
            results[name] = verify_simulator(name, device=device)
        except MissingExtraError as exc:
            results[name] = {"description": get_simulator_spec(name).description, "skipped": str(exc),
                             "passed": None}
    return results


def format_results(results: dict[str, dict]) -> str:
    width = max([16, *map(len, results)])
    lines = [f"{'simulator':{width}s} {'Taylor slope':>12s} {'max dot mismatch':>17s} {'gradcheck':>9s}  verdict",
             "-" * (width + 50)]
    for name, r in results.items():
        if r.get("skipped"):
            lines.append(f"{name:{width}s} skipped: {r['skipped']}")
            continue
        worst = max(r["dot_tests"], key=r["dot_tests"].get)
        lines.append(f"{name:{width}s} {r['taylor_slope']:12.4f} {r['dot_tests'][worst]:11.2e} ({worst[:4]}) "
                     f"{str(r['gradcheck']):>9s}  {'ok' if r['passed'] else 'FAIL'}")
    lines.append(f"\nbounds: slope in [{SLOPE_BOUNDS[0]}, {SLOPE_BOUNDS[1]}], dot mismatch <= {DOT_TOL:g}, gradcheck passes")
    return "\n".join(lines)
