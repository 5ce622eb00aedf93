"""A regression's own validation R² as the yardstick where the recorder gives none (curves only, or
an L1 loss): real tiny regressions, written the way users write them (a plain loop logging
`train_loss`, `val_loss` and `val_r2` by hand each epoch), trained into a sqlite store and audited."""

from __future__ import annotations

import mlflow
import pytest
import torch
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit.auditor.curves import VAL_R2, assign_roles


@pytest.mark.parametrize("key", ["val_r2", "val/r2", "valid_r2_score", "r2_val", "eval/r2", "test_r2", "val_r2_epoch"])
def test_a_validation_r2_plays_its_role(key):
    assert assign_roles({key: 10, "val_loss": 10}).get(VAL_R2) == key


@pytest.mark.parametrize("key", ["val_r2_gpp", "train_r2", "r2", "val_r2_et_step"])
def test_one_outputs_r2_or_the_training_sets_plays_no_role(key):
    assert VAL_R2 not in assign_roles({key: 10, "val_loss": 10})


def _data(n: int, scale: float = 1.0, offset: float = 0.0, unrelated: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3] + 0.1 * torch.randn(n, 1, generator=g)
    if unrelated:  # targets read from another row than their inputs (a misaligned join)
        y = y[torch.randperm(n, generator=g)]
    return x, y * scale + offset


def _train(x, y, xv, yv, loss_fn, lr: float, epochs: int, opt_cls=torch.optim.Adam) -> str:
    """The loop users write; R² as scikit-learn's r2_score computes it on the validation set (each output's,
    averaged)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, y.shape[1]))
    opt = opt_cls(model.parameters(), lr=lr)
    with mlflow.start_run() as run:
        for epoch in range(epochs):
            model.train()
            total = 0.0
            for i in range(0, len(x), 32):
                opt.zero_grad()
                loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
                loss.backward()
                opt.step()
                total += loss.item() * len(x[i : i + 32])
            model.eval()
            with torch.no_grad():
                pred = model(xv)
                r2 = (1 - ((pred - yv) ** 2).sum(0) / ((yv - yv.mean(0)) ** 2).sum(0)).mean()
                mlflow.log_metrics(
                    {"train_loss": total / len(x), "val_loss": loss_fn(pred, yv).item(), "val_r2": r2.item()},
                    step=epoch,
                )
    return run.info.run_id


def _audit(run_id: str):
    (res,) = [r for r in mlflow_nnaudit.audit(force=True) if r.run_id == run_id]
    return res


@pytest.mark.parametrize("recorder", [False, True])
def test_targets_unrelated_to_inputs_with_r2_near_zero_are_a_failed_plateau(store_uri, recorder):
    """Curves only, and with the recorder on an L1 loss (its variance is no yardstick for L1): the
    validation R² never gets above 0, the L1 loss hardly moves, which no loss curve alone calls harm."""
    if recorder:
        mlflow.autolog(silent=True, log_models=False)
    x, y = _data(640, unrelated=True)
    xv, yv = _data(320, seed=1)
    res = _audit(_train(x, y, xv, yv, nn.L1Loss(), 1e-3, 12))
    assert res.status == "failed" and res.causes[0] in ("plateau", "labels_unrelated"), (res.status, res.causes)
    assert "plateau" in res.causes, res.causes
    assert res.harm is not None and "R²" in res.harm.summary


def test_the_same_regression_on_aligned_targets_is_healthy(store_uri):
    x, y = _data(640)
    xv, yv = _data(320, seed=1)
    res = _audit(_train(x, y, xv, yv, nn.L1Loss(), 1e-3, 12))
    assert res.status == "healthy" and res.harm is None, (res.status, res.causes, res.harm)


def _two_outputs(n: int, seed: int):
    """One target near 12,000 (a price, a count) beside one near 0, both functions of the inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    big = 12000 + 300 * (torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3])
    return x, torch.cat([big, torch.tanh(x[:, 3:4]) - x[:, 4:5] ** 2 / 3], 1)


def test_raw_scale_targets_still_falling_with_a_negative_r2_are_not_converged(store_uri):
    """f179's pattern (benchmarks/programs): MSE on raw targets, one near 12,000: the loss falls
    geometrically from ~6e7 and is still falling when the run stops, the validation R² (the mean of each
    output's, as scikit-learn's r2_score averages them) far below 0. Its absolute fall is nearly all in the
    first epochs (the last 30% brings ~0.2% of it), so only the log scale shows it still going (~13%, over
    the 10% line: approximate, this seed and torch 2.13)."""
    (x, y), (xv, yv) = _two_outputs(640, 0), _two_outputs(320, 1)
    res = _audit(_train(x, y, xv, yv, nn.MSELoss(), 3e-2, 15))
    # without the R² the huge start is a set-up risk on a run whose curves look fine: `healthy`
    assert res.status == "failed" and res.causes[0] == "targets_not_normalized", (res.status, res.causes)
    assert res.harm is not None and "worse than predicting their mean" in res.harm.summary
    # (`not_converged` second, read on a log scale, is ~13% of the fall here against a 10% line: too close
    # to assert on a trained run; `test_a_geometric_fall_still_going_is_read_on_a_log_scale` asserts it)


def _log(curves: dict[str, list[float]]) -> str:
    """Curves logged by hand, one point an epoch."""
    with mlflow.start_run() as run:
        for key, values in curves.items():
            for step, v in enumerate(values):
                mlflow.log_metric(key, v, step=step)
    return run.info.run_id


#: f179's validation loss and R² (benchmarks/programs: raw targets near 12,000, still halving each epoch)
F179_VAL = [1.777e7, 1.276e7, 1.399e6, 5.633e5, 4.867e5, 4.384e5, 3.748e5, 3.255e5, 2.786e5, 2.277e5]
F179_VAL += [1.845e5, 1.561e5, 1.131e5, 8.593e4, 6.418e4]
F179_R2 = [-610.6, -432.7, -959.9, -402.7, -205.5, -239.6, -197.8, -192.5, -129.8, -123.1, -87.75, -133, -87.29]
F179_R2 += [-72.89, -51.56]


def test_a_geometric_fall_still_going_is_read_on_a_log_scale(store_uri):
    res = _audit(_log({"train_loss": [v * 1.05 for v in F179_VAL], "val_loss": F179_VAL, "val_r2": F179_R2}))
    assert res.status == "failed" and "not_converged" in res.causes, (res.status, res.causes)
    nc = res.findings[res.causes.index("not_converged")]
    assert "log scale" in nc.summary and nc.confidence == "medium"


def test_the_log_scale_is_not_read_without_harm_or_on_a_training_loss(store_uri):
    """The same fall with an R² of 0.9 is a run that did well (its absolute fall is done); a training loss
    falling geometrically without a validation loss is as often a model memorising its set."""
    good = _audit(_log({"train_loss": F179_VAL, "val_loss": F179_VAL, "val_r2": [0.5 + 0.03 * i for i in range(15)]}))
    assert good.status == "healthy" and good.harm is None, (good.status, good.causes)
    train_only = _audit(_log({"train_loss": F179_VAL, "val_r2": [0.1 - 0.007 * i for i in range(15)]}))
    assert "not_converged" not in train_only.causes, train_only.causes


def test_a_short_run_whose_r2_climbs_steeply_is_no_plateau(store_uri):
    """Six evaluations, R² -0.6 -> 0.04 evenly (still rising 0.27 over its last half, never significant on 3
    points), an L1 loss falling with it only ~22%: a run still learning, not one that learned nothing."""
    r2 = [-0.6 + 0.128 * i for i in range(6)]
    l1 = [0.8 * (1 - r) ** 0.5 for r in r2]
    res = _audit(_log({"train_loss": [v * 0.98 for v in l1], "val_loss": l1, "val_r2": r2}))
    assert "plateau" not in res.causes, (res.status, res.causes)


def test_a_negative_log_likelihood_that_fell_is_not_stuck(store_uri):
    """A Gaussian NLL falling from -0.2 to -1.5 has no share of its start to read: no "learned nothing"."""
    nll = [-0.2 - 1.3 * (1 - 0.7**i) for i in range(12)]
    res = _audit(_log({"train_loss": nll, "val_loss": [v + 0.01 for v in nll], "val_r2": [0.03] * 12}))
    assert "plateau" not in res.causes, (res.status, res.causes)


def test_a_classifier_logging_val_r2_is_not_read_as_a_regression(store_uri):
    """A summariser's ROUGE-2 as `val_r2` beside an accuracy: no R² harm."""
    loss = [1.0 * 0.9**i for i in range(12)]
    res = _audit(_log({"train_loss": loss, "val_loss": loss, "val_acc": [0.5] * 12, "val_r2": [0.1] * 12}))
    assert res.harm is None or "R²" not in res.harm.summary, res.harm
