"""GPU check: the whole package on a CUDA device, in one run sized to stay under ten minutes.

Four sections (``--sections``, default all), each item reported, none dropped:

1. **verify**: the verification ladder (:func:`physinv.core.verification.verify_all`: Taylor
   slope, dot-product tests, gradcheck) of every registered simulator, its example built on
   the device.
2. **equal** (CPU = device): every simulator's float64 example on the CPU and on the device,
   forward output and the gradient of a fixed random functional; and the samplers
   (``sample_prior`` with the Heun, Euler and ancestral rules, ``sample_dps``, ``sample_enkg``),
   the same seed's draws on both devices.  Max relative difference <= 1e-8.
3. **speed**: device / CPU time ratios (median of ``--repeat`` calls after ``--warmup``,
   ``torch.cuda.synchronize`` around each) of the main kernels: Poisson apply and CG solve, the
   EIT Jacobian, Deepwave forward + gradient, spectral Navier-Stokes steps, one training step of
   NIO, FNO and the diffusion UNet; each kernel's device result is checked against its CPU
   result to a stated tolerance.
4. **cases**: each case's quick path on the device, one subprocess each
   (``python -m physinv.cli run NAME --quick --device cuda``), run last with what is left of
   ``--time-budget``; a case that times out or is not started for lack of time says so.

Writes ``OUT/gpu_check.json`` (environment, every record, wall time) and ``OUT/gpu_check.md``
(tables); exit code 1 if any check failed, else 0.  Without CUDA it prints why and exits 0
without running or writing anything.  ``--device cpu --tiny`` is a dry run of the script itself
on the CPU at tiny sizes (what its test runs; CPU-vs-CPU comparisons then agree trivially).

    python benchmarks/gpu_check.py                         # on a CUDA machine, < 10 minutes
    python benchmarks/gpu_check.py --sections verify,equal # seconds
    python benchmarks/gpu_check.py --device cpu --tiny --cases poisson_inverse   # dry run
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

import physinv
from physinv.core.errors import MissingExtraError
from physinv.core.io import atomic_write_json, atomic_write_text
from physinv.core.provenance import source_commit

SECTIONS = ("verify", "equal", "cases", "speed")
RUN_ORDER = ("verify", "equal", "speed", "cases")  # cases last: they use what is left of the time budget
REPO = Path(__file__).resolve().parents[1]
SEED = 0
#: CPU = device tolerance in float64 (max |a - b| / max |a|).  Both devices run the same float64
#: algorithm on tiny, well-conditioned examples and differ only in summation order, FMA contraction
#: and library kernels (cuFFT, cuBLAS), i.e. by some ulps (eps 2.2e-16) times the conditioning
#: (tests/test_gpu.py asks 1e-10 of the same forward outputs).  1e-8 leaves rounding a wide margin
#: yet catches every real difference: a float32 detour (~1e-7), another algorithm, a missed update.
EQUAL_TOL = 1e-8
#: Tolerance of the float64 speed kernels: larger problems, the same deterministic float64
#: arithmetic of one algorithm (see EQUAL_TOL).
FLOAT64_TOL = 1e-8
#: Tolerance of the float32 kernels (Deepwave, training steps), checked with TF32 off.  On the CPU
#: each differs from its float64 version by at most 7e-6 (measured at both sizes: Deepwave 5e-6,
#: NIO 6e-6, FNO 4e-6, UNet 7e-6 in the gradient); another float32 rounding order (GPU reductions,
#: cuFFT, cuDNN's Winograd or FFT convolutions, less accurate in float32) differs by that order or
#: somewhat more.  1e-3 keeps rounding far below it while a real fault (other weights, a wrong
#: kernel, a missed term) differs by O(1).
FLOAT32_TOL = 1e-3
CG_RTOL = 1e-8
MIN_CASE_S = 30.0  # a case starts only with at least this much (or --case-timeout) of the budget left
TAIL_LINES = 15
#: What a case prints (exit code 2) when it needs an optional extra that is not installed (physinv.core.extras).
MISSING_EXTRA = re.compile(r"optional dependency .* is not installed.*pip install '[^']+'")


def log(message: str = "") -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# options


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with every name checked (argparse's exit 2 and a message naming the allowed values)."""
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cuda (default; the current CUDA device, pick it with CUDA_VISIBLE_DEVICES) or cpu "
                             "(a dry run of the script itself: use it with --tiny)")
    parser.add_argument("--sections", type=_csv, default=list(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes everywhere, cases with their hidden --smoke flag where they have one")
    parser.add_argument("--simulators", type=_csv, help="comma-separated simulators of verify and equal (default: all)")
    parser.add_argument("--cases", type=_csv, help="comma-separated cases, run in the order given (default: all)")
    parser.add_argument("--time-budget", type=float, default=540.0,
                        help="seconds for the whole run (default: %(default)s); the cases, run last, get what is left")
    parser.add_argument("--parallel-cases", type=int, default=None,
                        help="cases run at once, sharing the CPU cores (default: 4 on CUDA, 1 with --device cpu)")
    parser.add_argument("--case-timeout", type=float, default=240.0,
                        help="seconds one case may run (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per kernel and device (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default: 1)")
    parser.add_argument("--out", default="results/gpu_check", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    _check_names(parser, "section", args.sections, list(SECTIONS))
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be >= 1 and --warmup >= 0")
    if args.time_budget <= 0 or args.case_timeout <= 0:
        parser.error("--time-budget and --case-timeout must be > 0 seconds")
    if args.parallel_cases is None:
        args.parallel_cases = 4 if args.device == "cuda" else 1
    if args.parallel_cases < 1:
        parser.error(f"--parallel-cases must be >= 1; got {args.parallel_cases}")
    if args.simulators is not None:
        from physinv.core.simulator import registered_simulators

        _check_names(parser, "simulator", args.simulators, sorted(registered_simulators()))
    if args.cases is not None:
        from physinv.cli import list_cases

        _check_names(parser, "case", args.cases, list(list_cases()))
    return args


def _check_names(parser: argparse.ArgumentParser, what: str, names: list[str], allowed: list[str]) -> None:
    unknown = [name for name in names if name not in allowed]
    if unknown:
        parser.error(f"unknown {what}(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if not names:
        parser.error(f"no {what} given; allowed: {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------
# shared helpers


def no_cuda_message() -> str:
    return (f"gpu_check: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False); "
            "nothing was run. Run it on a machine with an NVIDIA GPU: python benchmarks/gpu_check.py "
            "(or python benchmarks/gpu_check.py --device cpu --tiny to dry-run the script itself)")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def relative_difference(reference, other) -> float:
    """``max |a - b| / max |a|`` over the tensors of ``reference`` and ``other`` (tensors or tuples), in float64."""
    pairs = zip(reference, other, strict=True) if isinstance(reference, tuple) else [(reference, other)]
    worst = 0.0
    for a, b in pairs:
        wide = torch.complex128 if a.is_complex() else torch.float64
        a, b = a.detach().cpu().to(wide), b.detach().cpu().to(wide)
        if a.shape != b.shape:
            raise ValueError(f"shapes differ: {tuple(a.shape)} on the CPU, {tuple(b.shape)} on the device")
        if a.numel():
            worst = max(worst, float((a - b).abs().max()) / max(float(a.abs().max()), 1e-300))
    return worst


def guarded(fn: Callable[..., dict], *args) -> dict:
    """``fn(*args)``'s record plus its wall time; a missing extra gives a skip, any other error a failure."""
    start = time.perf_counter()
    try:
        record = fn(*args)
    except MissingExtraError as exc:
        record = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # one broken item must not hide the others
        record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    record["wall_s"] = time.perf_counter() - start
    return record


def verdict(ok: bool) -> str:
    return "passed" if ok else "failed"


def describe(record: dict) -> str:
    """The record's status, and why when it is not a pass."""
    reason = record.get("error") or record.get("reason")
    return record["status"] + (f" ({reason})" if reason and record["status"] != "passed" else "")


@contextmanager
def exact_float32():
    """TF32 off (cuDNN convolutions use it by default): the device computes float32 as the CPU does."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def cpu_randn(*shape: int, seed: int = SEED, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Seeded standard normal numbers drawn on the CPU (the same on every device once moved)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------
# verify


def verify_one(name: str, device: torch.device) -> dict:
    from physinv.core.verification import DOT_TOL, SLOPE_BOUNDS, verify_all

    result = verify_all([name], device=device)[name]
    if result.get("skipped"):
        return {"status": "skipped", "reason": result["skipped"]}
    return {"status": verdict(result["passed"]), "taylor_slope": result["taylor_slope"],
            "max_dot_mismatch": max(result["dot_tests"].values()), "dot_tests": result["dot_tests"],
            "gradcheck": result["gradcheck"], "slope_bounds": list(SLOPE_BOUNDS), "dot_tolerance": DOT_TOL}


def section_verify(names: list[str], device: torch.device, args) -> dict:
    records = {}
    for name in names:
        records[name] = record = guarded(verify_one, name, device)
        numbers = (f"slope {record['taylor_slope']:.3f}, max dot mismatch {record['max_dot_mismatch']:.1e}, "
                   f"gradcheck {record['gradcheck']}; " if "taylor_slope" in record else "")
        log(f"[verify] {name:28s} {numbers}{describe(record)} ({record['wall_s']:.1f} s)")
    return records


# ---------------------------------------------------------------------------------------------
# equal: CPU = device


def simulator_values(name: str, device: torch.device, weights: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """The float64 example's output ``F(m0)`` and the gradient of ``<w, F(m)>`` at ``m0`` (``w``: fixed, seeded)."""
    from physinv.core.simulator import get_simulator_spec

    example = get_simulator_spec(name).make_example(torch.float64, device)
    m = example.m0.detach().clone().requires_grad_(True)
    out = example.simulator(m)
    w = cpu_randn(*out.shape, seed=SEED + 1) if weights is None else weights
    (grad,) = torch.autograd.grad((w.to(out.device) * out).sum(), m)
    return out.detach(), grad, w


def simulator_equal(name: str, device: torch.device) -> dict:
    out_cpu, grad_cpu, w = simulator_values(name, torch.device("cpu"), None)
    out_dev, grad_dev, _ = simulator_values(name, device, w)
    on_device = out_dev.device.type == grad_dev.device.type == device.type
    forward, gradient = relative_difference(out_cpu, out_dev), relative_difference(grad_cpu, grad_dev)
    record = {"compared": "forward output, gradient of <w, F(m)>", "forward_rel_diff": forward,
              "gradient_rel_diff": gradient, "max_rel_diff": max(forward, gradient), "tolerance": EQUAL_TOL,
              "on_device": on_device, "status": verdict(on_device and max(forward, gradient) <= EQUAL_TOL)}
    if not on_device:
        record["error"] = f"output on {out_dev.device}, gradient on {grad_dev.device}; expected {device.type}"
    return record


# Every sampler draws its start and its noise from a private seeded CPU generator and moves the
# draws to the device (physinv/learn/diffusion/sampling.py, physinv/invert/posterior.py), so the
# same seed gives the same draws on both devices and the samples themselves are comparable: any
# difference is the device's arithmetic, not its random stream.


def sampler_problem(n: int, device: torch.device):
    """The linear-Gaussian test problem of the posterior samplers: N(0, I) prior on n x n, every other pixel
    observed with noise 0.1."""
    from physinv.invert import IdentityParametrization, InverseProblem
    from physinv.learn.diffusion import GaussianMixturePrior

    prior = GaussianMixturePrior(torch.zeros(1, n, n, dtype=torch.float64, device=device), 1.0)
    y = (cpu_randn(n // 2, n // 2, seed=SEED + 2) * 1.1).to(device)
    problem = InverseProblem(lambda x: x[..., ::2, ::2], y, 0.1, lambda m: m.new_zeros(()),
                             IdentityParametrization())
    return problem, prior


def priors(n: int, device: torch.device) -> dict:
    """A stationary Gaussian prior fitted to smooth random fields and a three-component mixture, on ``device``."""
    from physinv.learn.diffusion import GaussianMixturePrior, StationaryGaussianPrior
    from physinv.problems.fluid.spectral import smooth_random_vorticity

    fields = smooth_random_vorticity(n, torch.Generator().manual_seed(SEED), batch=(16,))
    means = torch.stack([torch.zeros(n, n, dtype=torch.float64), fields[0], -fields[1]])
    return {"stationary Gaussian": StationaryGaussianPrior(fields.to(device)),
            "Gaussian mixture": GaussianMixturePrior(means.to(device), 0.3)}


def sampler_runs(tiny: bool) -> dict[str, Callable[[torch.device], torch.Tensor]]:
    """Sampler name -> ``run(device)`` returning its draws (float64, fixed seed)."""
    from physinv.invert import sample_dps, sample_enkg
    from physinv.learn.diffusion import sample_prior

    n, steps, count = (8, 10, 4) if tiny else (16, 40, 8)

    def prior_draws(prior: str, method: str):
        return lambda device: sample_prior(priors(n, device)[prior], count, steps, seed=SEED + 3, method=method,
                                           device=device)

    def dps(device):
        return sample_dps(*sampler_problem(n, device), samples=count, steps=steps, zeta=0.3, seed=SEED + 4).samples

    def enkg(device):
        return sample_enkg(*sampler_problem(n, device), ensemble=count, steps=steps, guidance_scale=0.5,
                           seed=SEED + 5).samples

    return {"sample_prior heun (stationary Gaussian)": prior_draws("stationary Gaussian", "heun"),
            "sample_prior euler (Gaussian mixture)": prior_draws("Gaussian mixture", "euler"),
            "sample_prior ancestral (Gaussian mixture)": prior_draws("Gaussian mixture", "ancestral"),
            "sample_dps (linear problem)": dps, "sample_enkg (linear problem)": enkg}


def sampler_equal(run: Callable[[torch.device], torch.Tensor], device: torch.device) -> dict:
    cpu, dev = run(torch.device("cpu")), run(device)
    diff = relative_difference(cpu, dev)
    on_device = dev.device.type == device.type
    return {"compared": "samples of one seed", "max_rel_diff": diff, "tolerance": EQUAL_TOL, "on_device": on_device,
            "status": verdict(on_device and diff <= EQUAL_TOL)}


def section_equal(names: list[str], device: torch.device, args) -> dict:
    records = {}
    items = [(f"simulator {name}", simulator_equal, name) for name in names]
    items += [(name, sampler_equal, run) for name, run in sampler_runs(args.tiny).items()]
    for label, check, item in items:
        records[label] = record = guarded(check, item, device)
        diff = f"max rel. diff {record['max_rel_diff']:.1e}; " if "max_rel_diff" in record else ""
        log(f"[equal]  {label:44s} {diff}{describe(record)} ({record['wall_s']:.1f} s)")
    return records


# ---------------------------------------------------------------------------------------------
# speed


@dataclass
class KernelRun:
    """One kernel built on one device: ``step()`` is timed; ``result()`` gives the tensors compared."""

    step: Callable[[], Any]
    result: Callable[[], Any]


@dataclass
class Kernel:
    name: str
    dtype: torch.dtype
    sizes: dict[str, dict]  # "default" and "tiny": the keyword arguments of build
    build: Callable[..., KernelRun]
    measure: str = "max |device - CPU| / max |CPU| of the result"
    compare: Callable[..., float] | None = None  # (cpu result, device result, **size) -> difference
    tolerance: float | None = None  # default: FLOAT64_TOL or FLOAT32_TOL by dtype

    def __post_init__(self):
        if self.tolerance is None:
            self.tolerance = FLOAT64_TOL if self.dtype == torch.float64 else FLOAT32_TOL


def poisson_system(cells: tuple[int, ...], device: torch.device):
    """``-div(kappa grad u) = f`` on the unit square (Dirichlet), kappa = 1 + 0.5 sin(2 pi x) cos(2 pi y),
    seeded random ``f``: the operator, kappa and the right-hand side, float64 on ``device``."""
    from physinv.discretize.fd import FDPoissonOperator
    from physinv.discretize.grid import UniformGrid

    grid = UniformGrid(cells)
    op = FDPoissonOperator(grid)
    x, y = grid.coordinates(torch.float64, torch.device("cpu"))[:2]
    kappa = 1.0 + 0.5 * torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)
    b = op.rhs(kappa, source=cpu_randn(*grid.node_shape))
    return op, kappa.to(device), b.to(device)


def build_poisson_apply(device: torch.device, cells: tuple[int, ...]) -> KernelRun:
    op, kappa, _ = poisson_system(cells, device)
    matvec, u = op.bind(kappa), cpu_randn(*kappa.shape, seed=SEED + 1).to(device)
    return KernelRun(lambda: matvec(u), lambda: matvec(u))


def build_poisson_cg(device: torch.device, cells: tuple[int, ...]) -> KernelRun:
    from physinv.linalg.cg import cg

    op, kappa, b = poisson_system(cells, device)

    def solve():
        return cg(op.bind(kappa), b, rtol=CG_RTOL, maxiter=20 * max(cells)).x

    return KernelRun(solve, solve)


def cg_residual(_cpu_x: torch.Tensor, device_x: torch.Tensor, cells: tuple[int, ...]) -> float:
    """The device solution's true relative residual ``|b - A x| / |b|`` with the CPU operator (float64).

    CG stops at ``|r| <= rtol |b|``; two runs that round differently stop at different iterates, so
    their solutions agree only to ~``cond(A) rtol``.  What must hold on both devices is that the
    answer solves the CPU's system to the tolerance."""
    op, kappa, b = poisson_system(cells, torch.device("cpu"))
    return float((b - op.bind(kappa)(device_x.cpu())).norm() / b.norm())


def build_eit_jacobian(device: torch.device, mesh: str) -> KernelRun:
    from physinv.problems.eit.electrodes import ElectrodeMesh
    from physinv.problems.eit.simulator import EITSimulator

    sim = EITSimulator(ElectrodeMesh.shipped(mesh), "adjacent", "adjacent", contact_impedance=0.01, device=device)
    sigma = torch.as_tensor(1.0 + 0.5 * np.random.default_rng(SEED).random(sim.parameter_shape), device=device)
    return KernelRun(lambda: sim.jacobian(sigma), lambda: sim.jacobian(sigma))


def build_seismic(device: torch.device, survey: dict, pml: int) -> KernelRun:
    from physinv.problems.seismic.simulator import AcousticSimulator
    from physinv.problems.seismic.survey import openfwi_survey

    survey = openfwi_survey(**survey)
    sim = AcousticSimulator(survey, pml_width=pml).to(device)
    z = torch.linspace(0, 1, survey.shape[0], dtype=torch.float64)[:, None]
    x = torch.linspace(0, 1, survey.shape[1], dtype=torch.float64)[None, :]
    v = (1800.0 + 2400.0 * z + 300.0 * torch.sin(2 * math.pi * (2 * z + 0.5 * x))).float().to(device)

    def forward_gradient():
        vv = v.clone().requires_grad_(True)
        records = sim(vv)
        (grad,) = torch.autograd.grad(0.5 * records.pow(2).sum(), vv)
        return records.detach(), grad

    return KernelRun(forward_gradient, forward_gradient)


def build_ns(device: torch.device, n: int, batch: int, steps: int) -> KernelRun:
    from physinv.problems.fluid.spectral import simulate, smooth_random_vorticity

    w0 = 2.0 * smooth_random_vorticity(n, torch.Generator().manual_seed(SEED), batch=(batch,)).to(device)

    def run():
        return simulate(w0, steps * 0.002, 1.0 / 200, dt=0.002)

    return KernelRun(run, run)


def training_run(make_model: Callable[[], torch.nn.Module], inputs: tuple[torch.Tensor, ...], target: torch.Tensor,
                 device: torch.device, loss: Callable[..., torch.Tensor]) -> KernelRun:
    """One Adam step of ``make_model()`` (seeded initial weights, the same on every device) on a fixed batch;
    the compared result is the loss and gradient at the initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = make_model()
    model = model.to(device).train()
    inputs, target = tuple(t.to(device) for t in inputs), target.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    initial = copy.deepcopy(model)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss(model, inputs, target).backward()
        optimizer.step()

    def result():
        value = loss(initial, inputs, target)
        grads = torch.autograd.grad(value, [p for p in initial.parameters() if p.requires_grad])
        return value.detach(), torch.cat([g.reshape(-1) for g in grads])

    return KernelRun(step, result)


def mse(model, inputs, target):
    return torch.mean((model(*inputs) - target) ** 2)


def unet_mse(model, inputs, target):
    return torch.mean((model(*inputs).sample - target) ** 2)


def build_nio(device: torch.device, n: int, inputs: int, boundary: int, batch: int, model: dict) -> KernelRun:
    from physinv.learn.models import NIO

    x = cpu_randn(batch, inputs, boundary, 2, dtype=torch.float32)
    y = cpu_randn(batch, n, n, seed=SEED + 1, dtype=torch.float32)
    return training_run(lambda: NIO(n, boundary, 2, **model), (x,), y, device, mse)


def build_fno(device: torch.device, n: int, inputs: int, boundary: int, batch: int, model: dict) -> KernelRun:
    from physinv.learn.models import BoundaryFNO

    x = cpu_randn(batch, inputs, boundary, 2, dtype=torch.float32)
    y = cpu_randn(batch, n, n, seed=SEED + 1, dtype=torch.float32)
    return training_run(lambda: BoundaryFNO(n, 2, **model), (x,), y, device, mse)


def build_unet(device: torch.device, n: int, batch: int, width: int, levels: int) -> KernelRun:
    from physinv.learn.diffusion import make_unet

    x = cpu_randn(batch, 1, n, n, dtype=torch.float32)
    t = torch.randint(0, 1000, (batch,), generator=torch.Generator().manual_seed(SEED))
    eps = cpu_randn(batch, 1, n, n, seed=SEED + 1, dtype=torch.float32)
    return training_run(lambda: make_unet((n, n), width=width, levels=levels), (x, t), eps, device, unet_mse)


NIO_FULL = dict(basis=50, branch_width=256, branch_depth=3, trunk_width=256, trunk_depth=8, width=64, modes=16,
                layers=1)  # the NIO paper's Calderon model (cases/calderon_nio.py, "full")
NIO_TINY = dict(basis=8, branch_width=16, branch_depth=1, trunk_width=16, trunk_depth=1, width=8, modes=4, layers=1)

KERNELS = (
    Kernel("Poisson apply (FD, bound kappa)", torch.float64,
           {"default": dict(cells=(1024, 1024)), "tiny": dict(cells=(32, 32))}, build_poisson_apply),
    Kernel("Poisson CG solve (matrix-free)", torch.float64,
           {"default": dict(cells=(512, 512)), "tiny": dict(cells=(16, 16))}, build_poisson_cg,
           measure="true relative residual of the device solution with the CPU operator", compare=cg_residual,
           tolerance=2 * CG_RTOL),
    Kernel("EIT Jacobian (CEM, adjoint method)", torch.float64,
           {"default": dict(mesh="eit_disk_h0.05.msh"), "tiny": dict(mesh="eit_disk_h0.2.msh")}, build_eit_jacobian),
    Kernel("Deepwave forward + gradient", torch.float32,
           {"default": dict(survey=dict(nz=70, nx=70, dx=10.0, nt=1000, dt=1e-3, peak_frequency=15.0, n_shots=5),
                            pml=20),
            "tiny": dict(survey=dict(nz=12, nx=12, dx=20.0, nt=100, dt=2e-3, peak_frequency=10.0, n_shots=2),
                         pml=4)}, build_seismic),
    Kernel("spectral NS (IF-RK4 steps)", torch.float64,
           {"default": dict(n=256, batch=8, steps=10), "tiny": dict(n=16, batch=2, steps=2)}, build_ns),
    Kernel("NIO training step", torch.float32,
           {"default": dict(n=70, inputs=20, boundary=276, batch=16, model=NIO_FULL),
            "tiny": dict(n=8, inputs=4, boundary=12, batch=2, model=NIO_TINY)}, build_nio),
    Kernel("FNO training step", torch.float32,
           {"default": dict(n=70, inputs=20, boundary=276, batch=16, model=dict(width=64, modes=16, layers=4)),
            "tiny": dict(n=8, inputs=4, boundary=12, batch=2, model=dict(width=8, modes=4, layers=1))}, build_fno),
    Kernel("diffusion UNet training step", torch.float32,
           {"default": dict(n=64, batch=16, width=64, levels=3), "tiny": dict(n=8, batch=2, width=8, levels=2)},
           build_unet),
)


def median_time(step: Callable[[], Any], device: torch.device, repeat: int, warmup: int) -> float:
    """Median wall time of ``step`` over ``repeat`` calls after ``warmup`` calls, synchronized on CUDA."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def size_label(size: dict) -> str:
    """``key=value, ...`` of a kernel's size (nested settings flattened, model hyperparameters left out)."""
    flat = {}
    for key, value in size.items():
        if key != "model":
            flat.update(value if isinstance(value, dict) else {key: value})
    return ", ".join(f"{k}={v}" for k, v in flat.items())


def run_kernel(kernel: Kernel, device: torch.device, args) -> dict:
    size = kernel.sizes["tiny" if args.tiny else "default"]
    cpu = torch.device("cpu")
    record = {"size": size_label(size), "dtype": str(kernel.dtype).removeprefix("torch."),
              "measure": kernel.measure, "tolerance": kernel.tolerance}
    results, times = {}, {}
    for role, dev in (("cpu", cpu), ("device", device)):
        run = kernel.build(dev, **size)
        with exact_float32():
            results[role] = run.result()
        times[role] = median_time(run.step, dev, args.repeat, args.warmup)
        del run
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    compare = kernel.compare or (lambda a, b, **_: relative_difference(a, b))
    difference = compare(results["cpu"], results["device"], **size)
    record.update(cpu_s=times["cpu"], device_s=times["device"], time_ratio=times["device"] / times["cpu"],
                  speedup=times["cpu"] / times["device"], difference=difference,
                  status=verdict(difference <= kernel.tolerance))
    return record


def section_speed(_names, device: torch.device, args) -> dict:
    records = {}
    for kernel in KERNELS:
        records[kernel.name] = record = guarded(run_kernel, kernel, device, args)
        numbers = (f"CPU {record['cpu_s'] * 1e3:.2f} ms, {device.type} {record['device_s'] * 1e3:.2f} ms "
                   f"(speedup {record['speedup']:.2f}x), difference {record['difference']:.1e}; "
                   if "speedup" in record else "")
        log(f"[speed]  {kernel.name:36s} {numbers}{describe(record)}")
    return records


# ---------------------------------------------------------------------------------------------
# cases


def case_flag(path: str, tiny: bool) -> str:
    """``--smoke`` (hidden, the tests' setting) for ``--tiny`` where the case has it, else ``--quick``."""
    if tiny and re.search(r"add_training_flags\(|[\"']--smoke[\"']", Path(path).read_text(encoding="utf-8")):
        return "--smoke"
    return "--quick"


def output_tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    lines = [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]  # progress bars: last state
    return "\n".join(lines[-TAIL_LINES:])


#: The case processes running now (each in its own session, so the terminal's Ctrl-C does not reach them):
#: an interrupted run stops them (:func:`section_cases`).
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()


def run_case(name: str, path: str, device: torch.device, tiny: bool, timeout: float, work: Path,
             threads: int) -> dict:
    """``python -m physinv.cli run NAME --quick|--smoke --device D --out WORK/NAME`` in its own process group."""
    out, log_path = work / name, work / f"{name}.log"
    flag = case_flag(path, tiny)
    command = [sys.executable, "-m", "physinv.cli", "run", name, flag, "--device", device.type, "--out", str(out)]
    record = {"command": f"physinv run {name} {flag} --device {device.type}", "timeout_s": timeout}
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as sink:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with _RUNNING_LOCK:
            if _STOPPING.is_set():
                return {"status": "not run", "reason": "interrupted"}
            proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            _RUNNING.add(proc)
        try:
            record["rc"] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            record["rc"] = None
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    record["wall_s"] = time.perf_counter() - start
    metrics, missing = out / "metrics.json", MISSING_EXTRA.search(output_tail(log_path))
    if record["rc"] is None:
        record.update(status="timeout", reason=f"stopped after {timeout:.0f} s")
    elif record["rc"] == 2 and missing:
        record.update(status="skipped", reason=missing.group(0))
    elif record["rc"] != 0:
        record.update(status="failed", error=f"exit code {record['rc']}")
    elif not metrics.exists():
        record.update(status="failed", error="exit code 0 but no metrics.json")
    else:
        record.update(status="passed", metrics=json.loads(metrics.read_text(encoding="utf-8")))
    if record["status"] != "passed":
        record["output_tail"] = output_tail(log_path)
    return record


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the case's process group (it and its workers), SIGKILL 10 s later if still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def section_cases(names: list[str], device: torch.device, args) -> dict:
    """Each case's quick path as its own process, ``--parallel-cases`` at a time (the CPU cores shared
    among them); a case that cannot start before the time budget runs out is reported "not run"."""
    from physinv.cli import register_source_cases
    from physinv.core.registry import CASES

    register_source_cases()
    threads = max(1, (os.cpu_count() or 1) // args.parallel_cases)

    def one(name: str, work: Path) -> dict:
        left = args.deadline - time.perf_counter()
        if left < min(args.case_timeout, MIN_CASE_S):
            record = {"status": "not run", "reason": f"time budget: {max(left, 0):.0f} s left of "
                                                     f"--time-budget {args.time_budget:.0f} s"}
        else:
            record = guarded(run_case, name, CASES.get(name).path, device, args.tiny,
                             min(args.case_timeout, left), work, threads)
        wall = f" ({record['wall_s']:.1f} s)" if "wall_s" in record else ""
        log(f"[cases]  {name:20s} {describe(record)}{wall}")
        return record

    with tempfile.TemporaryDirectory(prefix="gpu_check_cases_") as work:
        pool = ThreadPoolExecutor(max_workers=args.parallel_cases)
        try:
            futures = {name: pool.submit(one, name, Path(work)) for name in names}
            records = {name: future.result() for name, future in futures.items()}
        except BaseException:  # Ctrl-C reaches this thread only: stop the running cases, start no other
            _STOPPING.set()
            with _RUNNING_LOCK:
                running = list(_RUNNING)
            for proc in running:
                stop_group(proc)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return records


# ---------------------------------------------------------------------------------------------
# report


def environment(device: torch.device) -> dict:
    env = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": str(device),
           "device_name": platform.processor() or platform.machine(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
           "physinv": physinv.__version__, "git_commit": source_commit(REPO), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "tf32_defaults": {"cudnn": torch.backends.cudnn.allow_tf32,
                             "matmul": torch.backends.cuda.matmul.allow_tf32}}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, device_memory_gib=round(props.total_memory / 2**30, 1))
    return env


def summarize(sections: dict) -> tuple[dict, list[str]]:
    """Counts per section and status, and the failed items (``section/item: why``)."""
    counts, failures = {}, []
    for section, records in sections.items():
        counts[section] = {}
        for item, record in records.items():
            counts[section][record["status"]] = counts[section].get(record["status"], 0) + 1
            if record["status"] == "failed":
                failures.append(f"{section}/{item}: {record.get('error', 'outside the tolerance')}")
    return counts, failures


def json_safe(value):
    """``value`` with every non-finite float (a NaN result, say) replaced by its name, which JSON can hold."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _fmt(value, spec: str = ".2e") -> str:
    return value if isinstance(value, str) else "" if value is None else format(value, spec)


def headline(result: dict) -> str:
    """``FAILED``, or ``All checks passed`` with the items left unchecked (timeout, not run, skipped) counted."""
    if not result["passed"]:
        return "FAILED"
    unchecked = sum(n for c in result["summary"].values() for status, n in c.items()
                    if status in ("timeout", "not run", "skipped"))
    return "All checks passed" + (f" ({unchecked} item(s) not checked: timeout, not run or skipped)"
                                  if unchecked else "")


def markdown(result: dict) -> str:
    env, sections = result["environment"], result["sections"]
    counts = "; ".join(f"{section} " + ", ".join(f"{n} {status}" for status, n in sorted(c.items()))
                       for section, c in result["summary"].items())
    lines = [f"# gpu_check: {env['device_name']} ({env['device']})", "",
             (f"{env['date']}; torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, "
              f"physinv {env['physinv']}, commit {env['git_commit']}; {env['cpu_count']} CPUs, torch threads "
              f"{env['torch_threads']}; sizes {'tiny' if result['options']['tiny'] else 'default'}; "
              f"wall time {result['wall_s']:.0f} s."), "",
             f"**{headline(result)}**: {counts}"]
    lines += [f"- {failure}" for failure in result["failures"]]
    tables = {
        "verify": ("Verification ladder on the device (slope in [1.9, 2.1], dot mismatch <= 1e-10, gradcheck)",
                   ["simulator", "Taylor slope", "max dot mismatch", "gradcheck", "status"],
                   lambda r: [_fmt(r.get("taylor_slope"), ".4f"), _fmt(r.get("max_dot_mismatch")),
                              str(r.get("gradcheck", ""))]),
        "equal": (f"CPU = device, float64, max |device - CPU| / max |CPU| <= {EQUAL_TOL:g}",
                  ["item", "compared", "max rel. diff", "status"],
                  lambda r: [r.get("compared", ""), _fmt(r.get("max_rel_diff"))]),
        "speed": ("Speed: median times, device / CPU ratio (< 1: the device is faster); device result vs CPU result",
                  ["kernel", "size", "dtype", "CPU s", "device s", "device/CPU", "speedup", "difference", "tolerance",
                   "status"],
                  lambda r: [r.get("size", ""), r.get("dtype", ""), _fmt(r.get("cpu_s"), ".4g"),
                             _fmt(r.get("device_s"), ".4g"), _fmt(r.get("time_ratio"), ".3f"),
                             _fmt(r.get("speedup"), ".1f"), _fmt(r.get("difference")),
                             _fmt(r.get("tolerance"), ".0e")]),
        "cases": ("Cases on the device (metrics in gpu_check.json)",
                  ["case", "command", "rc", "wall s", "metrics", "status"],
                  lambda r: [f"`{r['command']}`" if "command" in r else "", str(r.get("rc", "")),
                             _fmt(r.get("wall_s"), ".1f"), str(len(r.get("metrics", {})) or "")]),
    }
    for section in SECTIONS:
        if section not in sections:
            continue
        title, header, cells = tables[section]
        lines += ["", f"## {section}", "", title, "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        for item, record in sections[section].items():
            status = describe(record).replace("|", "/").replace("\n", " ")
            lines.append("| " + " | ".join([item, *cells(record), status]) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad option (2, message on stderr)
        return int(exc.code or 0)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(no_cuda_message(), flush=True)
        return 0
    out = Path(args.out)
    try:  # refuse a bad --out now, not after ten minutes of work
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError(f"--out {out} is not writable")
    except OSError as exc:
        print(f"gpu_check.py: error: --out {out}: {exc}; give a writable folder", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    args.deadline = start + args.time_budget
    from physinv.cli import list_cases
    from physinv.core.simulator import registered_simulators

    simulators = args.simulators or sorted(registered_simulators())
    cases = args.cases or (list(list_cases()) if "cases" in args.sections else [])
    runners = {"verify": (section_verify, simulators), "equal": (section_equal, simulators),
               "speed": (section_speed, None), "cases": (section_cases, cases)}
    env = environment(device)
    log(f"gpu_check on {env['device_name']} ({device}), torch {env['torch']}, sections {', '.join(args.sections)}"
        f"{', tiny sizes' if args.tiny else ''}")
    sections = {}
    for section in RUN_ORDER:
        if section in args.sections:
            runner, names = runners[section]
            sections[section] = runner(names, device, args)
    summary, failures = summarize(sections)
    options = {k: v for k, v in vars(args).items() if k != "deadline"}
    result = json_safe({"script": "benchmarks/gpu_check.py", "environment": env, "options": options,
                        "sections": {s: sections[s] for s in SECTIONS if s in sections}, "summary": summary,
                        "failures": failures, "passed": not failures, "wall_s": time.perf_counter() - start})
    atomic_write_json(out / "gpu_check.json", result)
    atomic_write_text(out / "gpu_check.md", markdown(result))
    log(f"\ngpu_check: {'all checks passed' if not failures else f'{len(failures)} check(s) FAILED'} "
        f"({result['wall_s']:.0f} s); wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    for failure in failures:
        log(f"  FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
