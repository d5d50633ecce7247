r"""Training a :class:`~physinv.learn.diffusion.unet.UNetPrior` on simulated fields, and loading it back.

The network :math:`\varepsilon_\theta` (:func:`~physinv.learn.diffusion.unet.make_unet`) minimizes
the DDPM loss (Ho et al. 2020) on the normalized fields :math:`x_0^n = (x_0 - \mu)/s`,

.. math::

    L(\theta) = E_{x_0, t, \varepsilon}\,\big\|\varepsilon_\theta(\sqrt{\bar\alpha_t}\,x_0^n
    + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t) - \varepsilon\big\|^2 \quad (\text{mean over entries}),

:math:`t` uniform on the integers ``0..999``, :math:`\varepsilon \sim N(0, I)`, with the shared
:class:`~physinv.learn.trainer.Trainer` (:meth:`~physinv.learn.trainer.Trainer.fit_steps`, AdamW,
constant learning rate, gradient clipping).  ``mu`` is the data mean per channel and ``s`` the
standard deviation of all entries about it (physical units; stored with the network).  Batch
``step`` of rank ``r`` (samples, timesteps, noise) is drawn from a private generator seeded
by ``(seed, step, r)``, with explicit dtypes, so a resumed run draws what the uninterrupted one
draws, whatever ``torch.get_default_dtype()`` is.

**Precision and global state.**  The network is built and trained in float32 whatever the default
dtype (:func:`train_prior` and :func:`load_prior` build it with float32 as the default dtype).  Its
initialization is drawn from the torch generator seeded with ``seed`` inside
:func:`torch.random.fork_rng`, and the :class:`~physinv.learn.trainer.Trainer` (which at a fresh start
reseeds ``random``, NumPy and torch with ``seed_everything``) runs with the caller's ``random``,
NumPy and torch generator states saved and restored afterwards: :func:`train_prior` and
:func:`load_prior` leave the caller's global random streams as they were.

**EMA.**  After every optimizer step ``k = 1, 2, ...`` the exponential moving average of the weights
is updated, :math:`\bar\theta \leftarrow d_k \bar\theta + (1 - d_k)\theta` with
:math:`d_k = \min(d, (1 + k)/(10 + k))` (the usual warm-up, so short runs are not dominated by the
initial weights); :math:`\bar\theta` lives in the model (the ``ema`` copy of :class:`EpsilonNet`),
so it is checkpointed and restored with it, and resume stays exact.  The prior uses :math:`\bar\theta`.

A prior directory ``DIR`` holds

``checkpoint.pt``
    the trainer's checkpoint (:mod:`physinv.learn.checkpoint`: verified by sha256), with the
    network, its EMA and the normalization;
``prior.json``
    written when training completes: format, field shape, network and training settings,
    normalization, noise range, parameter count, final losses and the data's provenance;
``training_log.jsonl``, ``training_curve.png``
    the loss of every step, as JSON lines and as a figure.

:func:`load_prior` rebuilds the :class:`~physinv.learn.diffusion.unet.UNetPrior` from it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import physinv
from physinv.core.errors import InvalidParameterError, PhysinvError, ShapeMismatchError
from physinv.core.io import atomic_write_json
from physinv.learn.checkpoint import CheckpointError, read_checkpoint
from physinv.learn.diffusion.unet import (NUM_TRAIN_TIMESTEPS, UNetPrior, ddpm_alphas_cumprod, make_unet,
                                          unet_channels)
from physinv.learn.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["PRIOR_FORMAT", "EpsilonNet", "PriorConfig", "PriorFileError", "PriorTraining", "load_prior",
           "normalization", "plot_training_curve", "train_prior"]

PRIOR_FORMAT = "physinv-diffusion-prior-1"
CHECKPOINT, META, LOG, CURVE = "checkpoint.pt", "prior.json", "training_log.jsonl", "training_curve.png"


class PriorFileError(PhysinvError, ValueError):
    """A directory that holds no complete trained prior, or a damaged one."""


@dataclass
class PriorConfig:
    """Network and training settings of a UNet prior (all enter the checkpoint signature).

    ``width``, ``levels``, ``layers_per_block``, ``periodic``, ``attention``: the network
    (:func:`~physinv.learn.diffusion.unet.make_unet`); ``batch_size`` samples per step (over all
    processes; divisible by their number), ``lr`` AdamW's constant learning rate, ``weight_decay``,
    ``grad_clip`` the gradient 2-norm bound (None: none), ``ema_decay`` in ``[0, 1)`` the EMA's
    decay ``d``, ``seed`` the initialization and batch seed.
    """

    width: int = 32
    levels: int = 3
    layers_per_block: int = 1
    periodic: bool = True
    attention: bool = False
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    seed: int = 0

    def __post_init__(self) -> None:
        for name, least in (("width", 8), ("levels", 1), ("layers_per_block", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidParameterError(f"PriorConfig.{name} must be an integer >= {least}; got {value!r}")
        for name in ("periodic", "attention"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidParameterError(f"PriorConfig.{name} must be True or False; got {getattr(self, name)!r}")
        if not (isinstance(self.ema_decay, (int, float)) and 0 <= self.ema_decay < 1):
            raise InvalidParameterError(f"PriorConfig.ema_decay must be a number in [0, 1); got {self.ema_decay!r}")
        self.ema_decay = float(self.ema_decay)
        # lr, weight_decay, grad_clip and seed are checked by TrainConfig
        self.train_config()

    def train_config(self) -> TrainConfig:
        """The :class:`~physinv.learn.trainer.TrainConfig` (constant learning rate: ``scheduler="none"``)."""
        return TrainConfig(epochs=1, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           scheduler="none", grad_clip=self.grad_clip, seed=self.seed)

    def unet_kwargs(self) -> dict[str, Any]:
        return dict(width=self.width, levels=self.levels, layers_per_block=self.layers_per_block,
                    periodic=self.periodic, attention=self.attention)


class EpsilonNet(torch.nn.Module):
    """The trained network ``net``, its EMA copy ``ema`` and the normalization buffers ``mean``, ``std``.

    ``forward(x, t)`` is ``net(x, t).sample`` on normalized fields ``(B, C, H, W)``; the EMA's
    parameters do not require gradients and are not optimized; :meth:`update_ema` updates them.
    """

    def __init__(self, net: torch.nn.Module, mean: torch.Tensor, std: float):
        super().__init__()
        self.net = net
        self.ema = copy.deepcopy(net).requires_grad_(False)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t).sample

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema <- decay * ema + (1 - decay) * net`` for every parameter (buffers are copied)."""
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers()):
            e.copy_(b)


def ema_decay_at(decay: float, step: int) -> float:
    """``min(decay, (1 + step) / (10 + step))``: the EMA decay after optimizer step ``step``."""
    return min(decay, (1.0 + step) / (10.0 + step))


def normalization(fields: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``(mean, std)`` of fields ``(N, H, W)`` or ``(N, C, H, W)``: mean per channel (shape ``()`` or
    ``(C, 1, 1)``, float64), std of all entries about it (one number)."""
    x = fields.double()
    mean = x.mean(dim=(0, -2, -1)) if x.ndim == 4 else x.mean()
    if x.ndim == 4:
        mean = mean.reshape(-1, 1, 1)
    std = float((x - mean).pow(2).mean().sqrt())
    return mean, std


def _check_fields(fields: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(fields):
        fields = torch.as_tensor(np.asarray(fields))
    if fields.ndim not in (3, 4) or not fields.is_floating_point():
        raise ShapeMismatchError(f"training fields must be a float tensor (N, H, W) or (N, C, H, W); got "
                                 f"{fields.dtype} of shape {tuple(fields.shape)}")
    if fields.shape[0] < 2:
        raise InvalidParameterError(f"need at least 2 training fields; got {fields.shape[0]}")
    bad = ~torch.isfinite(fields)
    if bool(bad.any()):
        raise InvalidParameterError(f"the training fields contain {int(bad.sum())} NaN/Inf value(s)")
    return fields


@contextlib.contextmanager
def _float32_default():
    """``torch.get_default_dtype()`` is float32 inside (the network is built and trained in float32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def _caller_rng_kept():
    """The global ``random``, NumPy and torch (CPU and initialized CUDA) generator states are restored on exit.

    The Trainer's fresh start reseeds all of them (``seed_everything``); this keeps that from
    leaking into the caller without changing the Trainer.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=_cuda_devices()):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []


def _build_unet(shape: tuple[int, ...], config: "PriorConfig") -> torch.nn.Module:
    """The float32 network of ``config``, initialized from the torch generator seeded with ``config.seed``
    (inside :func:`torch.random.fork_rng`: the caller's global generator is not touched)."""
    with torch.random.fork_rng(devices=[]), _float32_default():
        torch.manual_seed(config.seed)
        return make_unet(shape, **config.unet_kwargs()).float()


def _batch_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(2, np.uint64)[0])


def plot_training_curve(history: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """The loss of every step and its running mean (log scale), written atomically to ``path``."""
    from physinv.viz.figures import save_figure
    import matplotlib.pyplot as plt

    steps = np.array([h["step"] for h in history])
    loss = np.array([h["train_loss"] for h in history])
    window = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    ax.plot(steps, loss, lw=0.6, alpha=0.4, label="loss per step")
    ax.plot(steps[window - 1:], smooth, lw=1.5, label=f"running mean ({window} steps)")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("eps-prediction MSE")
    ax.set_title("diffusion prior training", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


@dataclass
class PriorTraining:
    """What :func:`train_prior` returns: the prior (EMA weights), the trainer's result, the directory."""

    prior: UNetPrior
    result: TrainResult
    directory: Path
    parameter_count: int
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


def train_prior(fields: torch.Tensor, out: str | os.PathLike, steps: int, config: PriorConfig | None = None, *,
                resume: bool = False, overwrite: bool = False, progress: bool = False, checkpoint_every: int = 100,
                device: str = "auto", data_info: dict[str, Any] | None = None,
                stop_after: int | None = None) -> PriorTraining:
    """Train a UNet prior on ``fields`` ``(N, H, W)`` or ``(N, C, H, W)`` (physical units) into ``out``.

    Parameters
    ----------
    steps
        Optimizer steps in all (a resumed run continues up to ``steps``; the learning rate is
        constant, so ``resume=True`` with a larger ``steps`` extends a finished run).
    resume
        Continue from ``out/checkpoint.pt`` if it exists (its settings and data must be the same).
    overwrite
        Start afresh in a directory that already holds a checkpoint (otherwise refused): the old
        checkpoint, ``prior.json``, training log and curve are removed before training starts.
        Cannot be combined with ``resume``.
    checkpoint_every
        Steps between checkpoints (the end is always written).
    data_info
        Provenance of the fields (data file, generator, seed, parameters, field name), stored in ``prior.json``.
    stop_after
        Return after this many steps in all without writing ``prior.json`` (an interruption; for tests).

    Notes
    -----
    Returns the :class:`PriorTraining`; writes the files listed in the module docstring.  The
    network is float32 whatever ``torch.get_default_dtype()`` is, and the caller's global random
    generators are left as they were (module docstring).
    """
    config = config or PriorConfig()
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidParameterError(f"steps must be an integer >= 1; got {steps!r}")
    if resume and overwrite:
        raise InvalidParameterError("resume and overwrite exclude each other: resume continues the checkpoint "
                                    "in the directory, overwrite deletes it and starts afresh; choose one")
    fields = _check_fields(fields)
    shape = tuple(fields.shape[1:])
    out = Path(out)
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not (resume or overwrite):
        raise InvalidParameterError(f"{out} already holds a prior's checkpoint; continue it with resume "
                                    "(--resume), replace it with overwrite (--overwrite), or choose another directory")
    mean, std = normalization(fields)
    if not std > 0:
        raise InvalidParameterError("the training fields are constant (std 0); a prior needs varying fields")
    data = ((fields.double() - mean) / std).float()
    if data.ndim == 3:
        data = data.unsqueeze(1)
    net = _build_unet(shape, config)
    model = EpsilonNet(net, mean, std)
    tconf = config.train_config()
    optimizer, _ = tconf.optimizer(net)
    ab = ddpm_alphas_cumprod().to(torch.float32)
    digest = hashlib.sha256(np.ascontiguousarray(fields.detach().cpu().numpy()).tobytes()).hexdigest()
    signature = {"kind": PRIOR_FORMAT, "shape": list(shape), "prior": asdict(config), "n": int(fields.shape[0]),
                 "data_sha256": digest, "schedule": f"ddpm-linear-{NUM_TRAIN_TIMESTEPS}"}

    def after_step(trainer: Trainer) -> None:
        model.update_ema(ema_decay_at(config.ema_decay, trainer.step))

    trainer = Trainer(model, _eps_loss, config=tconf, optimizer=optimizer, scheduler=None, signature=signature,
                      checkpoint_path=checkpoint, checkpoint_every=checkpoint_every, log_path=out / LOG,
                      device=device, progress=progress, after_step=after_step)
    rank, world = trainer.dist.rank, trainer.dist.world_size
    if config.batch_size % world:
        raise InvalidParameterError(f"batch_size {config.batch_size} must be divisible by the {world} processes")
    local = config.batch_size // world
    if overwrite:  # every check passed: now the directory may change
        for name in (CHECKPOINT, META, LOG, CURVE):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    def batches(step: int):
        gen = torch.Generator().manual_seed(_batch_seed(config.seed, step, rank))
        idx = torch.randint(data.shape[0], (local,), generator=gen, dtype=torch.int64)
        t = torch.randint(NUM_TRAIN_TIMESTEPS, (local,), generator=gen, dtype=torch.int64)
        eps = torch.randn((local, *data.shape[1:]), generator=gen, dtype=torch.float32)
        a = ab[t].reshape(-1, 1, 1, 1)
        return a.sqrt() * data[idx] + (1 - a).sqrt() * eps, t.to(torch.float32), eps

    t0 = time.perf_counter()
    with _caller_rng_kept(), _float32_default():  # the Trainer's fresh start reseeds the global generators
        result = trainer.fit_steps(batches, steps if stop_after is None else min(steps, stop_after), resume=resume)
    seconds = time.perf_counter() - t0
    prior = _prior_from(model.ema, model.mean, float(model.std), shape, ab)
    count = sum(p.numel() for p in net.parameters())
    meta: dict[str, Any] = {}
    if trainer.dist.is_main and result.step >= steps:
        losses = [h["train_loss"] for h in result.history]
        tail = losses[-min(100, len(losses)):]
        meta = {
            "format": PRIOR_FORMAT, "physinv_version": physinv.__version__, "shape": list(shape),
            "unet": {**config.unet_kwargs(), "channels": list(unet_channels(config.width, config.levels)),
                     "parameters": count},
            "training": {"steps": result.step, "batch_size": config.batch_size, "lr": config.lr,
                         "weight_decay": config.weight_decay, "grad_clip": config.grad_clip,
                         "ema_decay": config.ema_decay, "seed": config.seed, "processes": world,
                         "loss_first": losses[0], "loss_last_100_mean": float(np.mean(tail)),
                         "seconds_this_run": seconds},
            "schedule": {"num_train_timesteps": NUM_TRAIN_TIMESTEPS, "beta_schedule": "linear",
                         "prediction": "epsilon", "clip_sample": False},
            "normalization": {"mean": mean.flatten().tolist(), "std": std},
            "sigma_min": prior.sigma_min, "sigma_max": prior.sigma_max,
            "data": {**(data_info or {}), "n": int(fields.shape[0]), "sha256": digest},
            "files": {"checkpoint": CHECKPOINT, "log": LOG, "curve": CURVE},
        }
        plot_training_curve(result.history, out / CURVE)
        atomic_write_json(out / META, meta)
    return PriorTraining(prior, result, out, count, seconds, meta)


def _eps_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    x_t, t, eps = batch
    return torch.mean((model(x_t, t) - eps) ** 2)


def _prior_from(net: torch.nn.Module, mean: torch.Tensor, std: float, shape, ab: torch.Tensor) -> UNetPrior:
    net = copy.deepcopy(net).eval().requires_grad_(False)
    return UNetPrior(net, ab, mean.detach().double().cpu(), std, shape).to(next(net.parameters()).device)


def load_prior(directory: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True) -> UNetPrior:
    """The :class:`~physinv.learn.diffusion.unet.UNetPrior` trained into ``directory`` (EMA weights by default).

    Raises :class:`PriorFileError` when ``directory`` holds no trained prior (no ``prior.json``;
    training never run or not finished), when ``prior.json`` is not one physinv writes, or when
    the checkpoint is missing, damaged (sha256) or from another training than ``prior.json``.
    """
    directory = Path(directory)
    meta_path, ck_path = directory / META, directory / CHECKPOINT
    if not meta_path.exists():
        if ck_path.exists():
            raise PriorFileError(f"the training in {directory} has not finished (a checkpoint but no {META}); "
                                 "rerun the same `physinv prior train ... --resume` to complete it")
        raise PriorFileError(f"no trained prior in {directory} (no {META}); train one with "
                             f"`physinv prior train DATA.h5 --field NAME --out {directory}`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != PRIOR_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {PRIOR_FORMAT!r}")
        shape = tuple(int(s) for s in meta["shape"])
        unet = {k: meta["unet"][k] for k in ("width", "levels", "layers_per_block", "periodic", "attention")}
        steps = int(meta["training"]["steps"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PriorFileError(f"{meta_path} is damaged or not a physinv prior description ({exc})") from None
    if not ck_path.exists():
        raise PriorFileError(f"{directory} has {META} but no {CHECKPOINT}; retrain the prior")
    try:
        payload = read_checkpoint(ck_path, map_location="cpu")
    except CheckpointError as exc:
        raise PriorFileError(f"the prior in {directory} cannot be loaded: {exc}") from None
    if int(payload["step"]) != steps:
        raise PriorFileError(f"{ck_path} is at step {payload['step']} but {META} describes {steps} steps: a "
                             "training run is continuing or was interrupted; finish it with --resume")
    state = payload["model"]
    prefix = "ema." if ema else "net."
    with torch.random.fork_rng(devices=[]), _float32_default():  # float32, and the caller's generator untouched
        net = make_unet(shape, **unet).float()
    try:
        net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        mean, std = state["mean"], float(state["std"])
    except (RuntimeError, KeyError) as exc:
        raise PriorFileError(f"{ck_path} does not hold the network {META} describes ({exc})") from None
    if not math.isfinite(std) or std <= 0:
        raise PriorFileError(f"{ck_path} holds a bad normalization std={std}")
    net.to(device)
    return _prior_from(net, mean, std, shape, ddpm_alphas_cumprod())
