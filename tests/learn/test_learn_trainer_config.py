"""TrainConfig refuses every value that would not train as asked (ascent, fractional epochs, NaN...)."""

import math

import numpy as np
import pytest

from physinv.core.errors import InvalidParameterError
from physinv.learn.trainer import TrainConfig

BAD = [
    ("epochs", 2.5), ("epochs", 3.0), ("epochs", 0), ("epochs", True), ("epochs", "3"),
    ("batch_size", 0), ("batch_size", 8.0),
    ("lr", 0.0), ("lr", -1e-3), ("lr", math.nan), ("lr", math.inf), ("lr", "1e-3"),
    ("weight_decay", -1), ("weight_decay", math.nan),
    ("betas", (1.0, 0.9)), ("betas", (0.9, -0.1)), ("betas", (0.9,)), ("betas", 0.9), ("betas", (0.9, math.nan)),
    ("min_lr", -1), ("min_lr", 1.0), ("min_lr", math.nan),
    ("step_size", 0), ("step_size", 2.5),
    ("gamma", 0.0), ("gamma", 1.5), ("gamma", -0.1),
    ("plateau_factor", 0.0), ("plateau_factor", 1.0),
    ("plateau_patience", -1), ("plateau_patience", 1.5),
    ("patience", 0), ("patience", 2.0),
    ("min_delta", -1e-3), ("min_delta", math.inf),
    ("restore_best", 1),
    ("grad_clip", -1), ("grad_clip", 0.0), ("grad_clip", math.nan),
    ("seed", -1), ("seed", 1.5), ("seed", 2**63),
]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(InvalidParameterError, match=rf"TrainConfig\.{field}\b.*must be .*got ") as info:
        TrainConfig(**{field: value})
    if field != "betas":  # (for betas: the entry at fault)
        assert str(info.value).endswith(f"got {value!r}")


def test_good_values_are_kept_and_normalized():
    config = TrainConfig(epochs=np.int64(3), lr=1, betas=[0, 0.5], min_lr=1, weight_decay=0, gamma=1,
                         patience=None, grad_clip=None, seed=0)
    assert config.epochs == 3 and type(config.epochs) is int
    assert config.lr == 1.0 and type(config.lr) is float and config.min_lr == 1.0
    assert config.betas == (0.0, 0.5)
    assert TrainConfig() == TrainConfig(epochs=100, batch_size=32, lr=1e-3, weight_decay=1e-2)
