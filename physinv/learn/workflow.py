"""Supervised inverse-operator workflow shared by the case studies: standardize, train, save, reload, time.

* :class:`Standardized` wraps a network between input standardization and
  output de-standardization with training-set statistics (:func:`input_statistics`)
  kept as buffers, so a saved model is self-contained;
* :func:`train_and_save` trains a guarded model with :class:`~physinv.learn.trainer.Trainer`
  and writes a checkpoint that :func:`load_saved_model` rebuilds;
* :func:`predict` and :func:`timed_inference` evaluate it.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

import physinv
from physinv.core.io import atomic_torch_save
from physinv.learn.models.guard import InputGuard, InputSpec
from physinv.learn.trainer import SupervisedLoss, TrainConfig, Trainer, mse

__all__ = ["Standardized", "input_statistics", "load_saved_model", "predict", "timed_inference", "train_and_save"]

#: ``build(name, model_kwargs, spec, stats) -> InputGuard``: how a case rebuilds one of its models.
ModelBuilder = Callable[[str, dict, InputSpec, tuple], InputGuard]


class Standardized(torch.nn.Module):
    """``net`` between input standardization and output de-standardization (statistics as buffers).

    ``x -> (x - mean_x) / std_x -> net -> y_mean + y_std * out``; the
    statistics are those of the training set and travel in the state dict.
    """

    def __init__(self, net: torch.nn.Module, x_mean: torch.Tensor, x_std: torch.Tensor, y_mean: float, y_std: float):
        super().__init__()
        self.net = net
        self.register_buffer("x_mean", x_mean.clone())
        self.register_buffer("x_std", x_std.clone())
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.y_mean + self.y_std * self.net((x - self.x_mean) / self.x_std)


def input_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-set statistics ``(1, L, n_boundary, C)``: ``(x - mean) / std`` is the standardized input.

    ``mean`` is per entry (input l, boundary point, channel) over the samples: the boundary data of every
    sample are dominated by one profile (the response of the mean conductivity), and removing it
    leaves the sample-to-sample anomaly, which carries the information.  ``std`` is per (l, channel): the
    standard deviation of that anomaly over samples and boundary points (a per-entry std would divide
    entries that hardly vary by tiny numbers and blow up measurement noise there).  Channels that do not
    vary over the samples (the prescribed inputs) keep their per-(l, channel) mean and std instead.
    """
    mean = x.mean(dim=0, keepdim=True)
    std = (x - mean).pow(2).mean(dim=(0, 2), keepdim=True).sqrt()
    mean_l = x.mean(dim=(0, 2), keepdim=True)
    std_l = x.std(dim=(0, 2), keepdim=True).clamp_min(1e-6)
    constant = std <= 1e-6 * std_l
    mean = torch.where(constant, mean_l.expand_as(mean), mean)
    return mean, torch.where(constant, std_l, std).expand_as(mean).clone()


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def timed_inference(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """Seconds per sample, one batch of all of ``x``; fastest of ``repeats`` (interference only adds)."""
    times = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        predict(model, x, batch=len(x))
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times) / len(x)


def train_and_save(name: str, build: ModelBuilder, model_kwargs: dict, train: dict, data: dict, models_dir: Path,
                   device: torch.device, seed: int, resume: bool, progress: bool = True) -> dict:
    """Train ``build(name, model_kwargs, spec, stats)`` on ``data`` (``x_train``, ``y_train``, ``x_val``, ``y_val``).

    Inputs are standardized with :func:`input_statistics`, targets by their
    mean and std; AdamW with a cosine schedule (``train`` holds the other
    :class:`~physinv.learn.trainer.TrainConfig` fields); the best-validation model
    is saved to ``models_dir/NAME.pt`` (reload with :func:`load_saved_model`).
    Returns ``dict(model, params, seconds, result, spec, stats)``.
    """
    x_tr, y_tr, x_va, y_va = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    spec = InputSpec.from_data(x_tr, y_tr)
    x_mean, x_std = input_statistics(x_tr)
    stats = (x_mean, x_std, float(y_tr.mean()), float(y_tr.std()))
    torch.manual_seed(seed)  # the same initialization stream for every model
    model = build(name, model_kwargs, spec, stats)
    params = sum(p.numel() for p in model.parameters())
    config = TrainConfig(scheduler="cosine", seed=seed, **train)
    models_dir = Path(models_dir)
    trainer = Trainer(model, SupervisedLoss(mse), config=config, checkpoint_path=models_dir / f"{name}_train.pt",
                      log_path=models_dir / f"{name}_log.jsonl", device=str(device),
                      signature={**model.signature(), "model_kwargs": model_kwargs}, progress=progress)
    t0 = time.perf_counter()
    result = trainer.fit((x_tr, y_tr), (x_va, y_va), resume=resume)
    seconds = time.perf_counter() - t0
    if resume:  # epochs run before a resume count too
        seconds = float(sum(h["time_s"] for h in result.history))
    model = trainer.model
    atomic_torch_save({
        "physinv_version": physinv.__version__, "model": name, "model_kwargs": model_kwargs,
        "input_spec": asdict(spec), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "best_epoch": result.best_epoch, "best_val_mse": result.best_val,
    }, models_dir / f"{name}.pt")
    return dict(model=model, params=params, seconds=seconds, result=result, spec=spec, stats=stats)


def load_saved_model(path: Path, build: ModelBuilder) -> InputGuard:
    """Rebuild a model saved by :func:`train_and_save`; its InputSpec pins the input format it accepts."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    spec = InputSpec(**ck["input_spec"])
    sd = ck["state_dict"]
    stats = (sd["model.x_mean"], sd["model.x_std"], float(sd["model.y_mean"]), float(sd["model.y_std"]))
    model = build(ck["model"], ck["model_kwargs"], spec, stats)
    model.load_state_dict(sd)
    return model.eval()
