"""The compared networks of a case, trained alike: one call, their metrics and training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from physinv.casekit.setup import CaseRun
from physinv.core.errors import UnknownNameError
from physinv.learn.models import InputGuard, InputSpec
from physinv.learn.workflow import ModelBuilder, Standardized, timed_inference, train_and_save
from physinv.viz.figures import plot_histories


def model_builder(nets: Mapping[str, Callable[[InputSpec, dict], torch.nn.Module]]) -> ModelBuilder:
    """The case's ``build(name, kwargs, spec, stats)``: ``InputGuard(Standardized(nets[name](spec, kwargs)))``,
    the model as trained, saved and reloaded."""
    def build(name: str, kwargs: dict, spec: InputSpec, stats: tuple) -> InputGuard:
        if name not in nets:
            raise UnknownNameError(f"unknown model {name!r}; allowed: {', '.join(nets)}")
        return InputGuard(Standardized(nets[name](spec, kwargs), *stats), spec)
    return build


def train_methods(run: CaseRun, methods: Sequence[str], labels: Mapping[str, str], build: ModelBuilder,
                  data: dict) -> dict:
    """Train every method with the setting's ``train`` budget and ``models[name]`` sizes; saved in DIR/models.

    Returns
    -------
    dict
        ``{name: train_and_save(...) record}`` (model, result, params, seconds).
    """
    trained = {}
    for name in methods:
        print(f"  training {labels[name]} ...", flush=True)
        trained[name] = train_and_save(name, build, run.cfg["models"][name], run.cfg["train"], data,
                                       run.work / "models", run.device, run.args.seed, run.args.resume, run.progress)
        r = trained[name]["result"]
        print(f"  {labels[name]:12s} {trained[name]['params']} parameters, {r.epoch} epochs (best {r.best_epoch}), "
              f"{trained[name]['seconds']:.1f} s, best val MSE {r.best_val:.3g}", flush=True)
    return trained


def training_metrics(trained: dict) -> dict:
    """``NAME_params``, ``NAME_epochs``, ``NAME_best_epoch``, ``NAME_train_seconds``, ``NAME_best_val_mse``."""
    metrics = {}
    for name, record in trained.items():
        r = record["result"]
        metrics.update({f"{name}_params": record["params"], f"{name}_epochs": r.epoch,
                        f"{name}_best_epoch": r.best_epoch, f"{name}_train_seconds": record["seconds"],
                        f"{name}_best_val_mse": r.best_val})
    return metrics


def plot_training(trained: dict, labels: Mapping[str, str], quantity: str, path: Path) -> None:
    """Training and validation loss of every method per epoch (``quantity``: what the MSE is of)."""
    hist = {labels[name]: record["result"].history for name, record in trained.items()}
    plot_histories(
        {f"training loss (MSE of {quantity})": {k: [h["train_loss"] for h in v] for k, v in hist.items()},
         f"validation loss (MSE of {quantity})": {k: [h["val_loss"] for h in v] for k, v in hist.items()}},
        path, xlabel="epoch",
    )


def inference_times(trained: dict, x: torch.Tensor) -> dict:
    """``NAME_time_per_sample_s``: inference on one batch of all of ``x``, per sample."""
    return {f"{name}_time_per_sample_s": timed_inference(record["model"], x) for name, record in trained.items()}
