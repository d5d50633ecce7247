"""physinv.core.errors and physinv.core.checks."""

import math

import pytest
import torch

from physinv.core.checks import check_finite, check_positive, check_shape
from physinv.core.errors import (
    InvalidParameterError,
    MissingExtraError,
    PhysinvError,
    ShapeMismatchError,
    UnknownNameError,
    UnstableTimeStepError,
)


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (InvalidParameterError, ValueError),
        (ShapeMismatchError, ValueError),
        (UnknownNameError, KeyError),
        (MissingExtraError, ImportError),
        (UnstableTimeStepError, ValueError),
    ],
)
def test_error_hierarchy(cls, builtin):
    err = cls("what was wrong; allowed: this")
    assert isinstance(err, PhysinvError)
    assert isinstance(err, builtin)
    with pytest.raises(builtin):
        raise err


def test_unknown_name_error_message_is_not_quoted():
    msg = "unknown thing 'x'; allowed: a, b"
    assert str(UnknownNameError(msg)) == msg
    assert str(KeyError(msg)) != msg  # the plain KeyError would quote it
    assert str(UnknownNameError()) == ""


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_check_finite_counts_bad_entries(bad):
    x = torch.ones(3, 4, dtype=torch.float64)
    x[0, 1] = bad
    x[2, 3] = bad
    with pytest.raises(InvalidParameterError, match=r"kappa contains 2 NaN/Inf"):
        check_finite("kappa", x)


def test_check_finite_accepts_finite_and_rejects_non_tensor():
    check_finite("x", torch.tensor([0.0, -1e300, 1e-300], dtype=torch.float64))
    with pytest.raises(InvalidParameterError, match="must be a torch.Tensor, got list"):
        check_finite("x", [1.0, 2.0])


@pytest.mark.parametrize("value, ok", [(1e-300, True), (0.0, False), (-1e-12, False), (math.nan, False)])
def test_check_positive(value, ok):
    x = torch.full((2, 2), 1.0, dtype=torch.float64)
    x[1, 0] = value
    if ok:
        check_positive("kappa", x)
    else:
        with pytest.raises(InvalidParameterError, match="kappa"):
            check_positive("kappa", x)


def test_check_positive_reports_minimum():
    with pytest.raises(InvalidParameterError, match=r"minimum -2"):
        check_positive("kappa", torch.tensor([1.0, -2.0, 3.0]))


def test_check_shape_trailing_dims():
    check_shape("u", torch.zeros(5, 3, 4), (3, 4))
    check_shape("u", torch.zeros(3, 4), (3, 4))
    with pytest.raises(ShapeMismatchError, match=r"u has shape \(3, 5\); expected trailing shape \(3, 4\) \(nodes\)"):
        check_shape("u", torch.zeros(3, 5), (3, 4), "nodes")
    with pytest.raises(ShapeMismatchError):
        check_shape("u", torch.zeros(4), (3, 4))  # fewer dims than expected
    with pytest.raises(ShapeMismatchError):
        check_shape("u", torch.zeros(4, 3), (3, 4))  # transposed
