"""constant_features: input features that never change."""

import numpy as np

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    input_stats,
    make_view,
    quiet,
    standardised_features,
)

CAUSE = "constant_features"


def run(constant, features=12, batches=60):
    mean, std = standardised_features(features)
    std[:constant] = 0.0
    mean[:constant] = 1.0  # a column filled with one value
    d = healthy_diagnostics()
    d["inputs"]["train"] = input_stats(mean, std, batches=batches)
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_four_constant_columns():
    f = fires(CAUSE, run(4))
    assert f.confidence == "medium" and f.severity == "warning"
    assert "4 of 12" in f.summary and np.isclose(f.score, 4 / 12)


def test_quiet_when_every_feature_varies():
    quiet(CAUSE, run(0))


def test_quiet_on_too_few_batches_to_tell():
    # two sampled batches of a sparse feature can both hold the same value
    quiet(CAUSE, run(4, batches=2))


# --- applicability: image inputs --------------------------------------------------------------------
def test_quiet_on_a_cnn_whose_border_pixels_are_always_zero():
    view = run(4)
    view.diagnostics["model"]["layers"] = {"conv1": [[16, 1, 3, 3], [16]], **view.diagnostics["model"]["layers"]}
    assert view.image_inputs()
    quiet(CAUSE, view)
    fires(CAUSE, run(4))  # the same columns into an MLP's Linear first layer: reported


# --- constant columns standardised into NaN (0 / 0) -------------------------------------------------
def nan_columns_run(constant, nan, features=12, scattered=0.0):
    """`constant` columns that never vary, `nan` of them NaN in every value (the recorder counts a
    NaN column as constant: it has no finite minimum or maximum), plus a `scattered` NaN share."""
    mean, std = standardised_features(features)
    std[:constant] = 0.0
    mean[:constant] = 0.0
    d = healthy_diagnostics()
    d["inputs"]["train"] = input_stats(mean, std, batches=60, nonfinite_share=nan / features + scattered)
    d["inputs"]["train"]["nonfinite_features"] = nan
    return make_view(healthy_loss(), diagnostics=d)


def test_constant_columns_that_are_nan_in_every_value_lead_the_nan_inputs():
    view = nan_columns_run(3, 2)
    f = fires(CAUSE, view)
    assert f.confidence == "high" and f.severity == "failed" and "0 / 0" in f.summary
    assert fires("nonfinite_inputs", view).follows == ("constant_features",)


def test_scattered_nan_beside_constant_columns_are_not_tied_to_them():
    # whole NaN rows, 1 in 12: the same share as one NaN column of 12, but no feature is NaN throughout
    for view in (nan_columns_run(3, 0, scattered=1 / 12), nan_columns_run(3, 1, scattered=0.013)):
        f = fires(CAUSE, view)
        assert f.confidence == "medium" and f.severity == "warning"
        assert fires("nonfinite_inputs", view).follows == ()


def test_a_nan_column_among_raw_features_is_not_called_a_standardised_constant():
    # raw features around 50 +/- 20 with one column all NaN (a failed parse): no standardisation
    # happened, so nothing says 0 / 0 (found by review)
    mean, std = np.full(8, 50.0), np.full(8, 20.0)
    mean[0] = std[0] = 0.0  # the recorder's NaN column: no finite value, zero mean and std
    d = healthy_diagnostics()
    d["inputs"]["train"] = input_stats(mean, std, batches=60, nonfinite_share=1 / 8)
    d["inputs"]["train"]["nonfinite_features"] = 1
    view = make_view(healthy_loss(), diagnostics=d)
    f = fires(CAUSE, view)
    assert f.confidence == "medium" and fires("nonfinite_inputs", view).follows == ()
