"""loss_input_mismatch: the loss function gets the wrong kind of input."""

import numpy as np

from tests.rules.conftest import (
    classification_loss,
    falling,
    fires,
    flat,
    healthy_diagnostics,
    healthy_loss,
    make_view,
    quiet,
    regression_loss,
    rng,
)

CAUSE = "loss_input_mismatch"
#: what the recorder writes (recorder/probes/loss.py)
SOFTMAX_TWICE = {
    "loss": "cross_entropy",
    "problem": "probabilities",
    "detail": "its input rows are probabilities (each in [0, 1], summing to 1): softmax was applied "
    "before a loss that applies log-softmax itself",
}
LOGITS_TO_NLL = {
    "loss": "nll_loss",
    "problem": "not_log_probabilities",
    "detail": "its input is not log-probabilities (positive values, or rows whose exp does not sum to "
    "1): raw logits were fed to nll_loss without log_softmax",
}


def run(mismatch, fn="cross_entropy"):
    return make_view(
        healthy_loss(), diagnostics=healthy_diagnostics(loss=classification_loss(3, mismatch=mismatch, fn=fn))
    )


def test_fires_on_softmax_before_cross_entropy():
    f = fires(CAUSE, run(SOFTMAX_TWICE))
    assert f.confidence == "high" and f.severity == "warning" and "remove the softmax" in f.recommendation


def test_logits_fed_to_nll_loss_fail_the_run():
    f = fires(CAUSE, run(LOGITS_TO_NLL, fn="nll_loss"))
    assert f.severity == "failed" and "log_softmax" in f.recommendation


def test_quiet_when_the_input_was_fine():
    quiet(CAUSE, run(None))


# --- curves only: no recorder, so the loss function is not known; an accuracy curve says "a classifier"


def _train_curves(loss_fn, classify: bool, epochs: int = 12):
    """A real tiny model trained without the recorder, logging what users log per epoch: the
    training loss and, for a classifier, the validation accuracy."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long() if classify else x[:, :1] * 2.0
    model = torch.nn.Linear(8, 3 if classify else 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses, accs = [], []
    for _ in range(epochs):
        total = 0.0
        for i in range(0, 256, 32):
            out = model(x[i : i + 32])
            loss = loss_fn(out, y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / 8)
        with torch.no_grad():
            accs.append(float((model(x).argmax(1) == y).float().mean()) if classify else 0.0)
    return np.array(losses), np.array(accs)


def test_curves_only_a_classifier_whose_loss_goes_negative_was_fed_raw_logits():
    import torch

    losses, accs = _train_curves(torch.nn.NLLLoss(), classify=True)  # raw logits, no log_softmax
    assert losses.min() < 0
    f = fires(CAUSE, make_view(losses, val_acc=accs))
    assert f.severity == "failed" and f.confidence == "medium" and "log_softmax" in f.recommendation


def test_curves_only_a_negative_total_beside_logged_loss_terms_is_not_read():
    # held-out h75: a multi-task model with learned uncertainty weights logs its total (negative by
    # design: the log-sigma terms) beside its terms and an accuracy; it was `failed` from the curves
    import torch

    losses, accs = _train_curves(torch.nn.NLLLoss(), classify=True)
    view = make_view(losses, val_acc=accs)
    view.metric_keys = frozenset({"train_loss", "val_acc", "train_ce", "val_mse", "sigma_cls"})
    quiet(CAUSE, view)
    # whole losses of other splits or summaries are no terms: a classifier that logs them is still read
    view = make_view(losses, val_acc=accs)
    view.metric_keys = frozenset({"train_loss", "val_acc", "test_loss", "train_loss_step", "best_val_loss"})
    assert fires(CAUSE, view).severity == "failed"


def test_curves_only_a_negative_loss_without_an_accuracy_is_not_read():
    import torch

    gauss = torch.nn.GaussianNLLLoss()  # a density's negative log-likelihood may go below zero

    def nll(out, y):
        return gauss(out[:, :1], y, torch.nn.functional.softplus(out[:, 1:]) + 1e-3)

    losses, _ = _train_curves(nll, classify=False)
    assert losses.min() < 0
    quiet(CAUSE, make_view(losses))


#: what the recorder writes for predictions (N,) against targets (N, 1) (recorder/probes/loss.py)
BROADCAST = {
    "loss": "mse_loss",
    "problem": "broadcast",
    "detail": "predictions (32,) against targets (32, 1) broadcast to (32, 32): every prediction is compared "
    "with every target, so the model can only learn their mean",
}


def regression_run(val):
    targets = rng(7).standard_normal(4000)  # standardised: variance ~1
    loss = regression_loss(targets) | {"input_mismatch": BROADCAST}
    train = flat(945, 1.0, noise=0.22) if val[-1] > 0.9 else falling(945, 1.1, 0.1, knee=0.1, noise=0.05)
    return make_view(train, val, diagnostics=healthy_diagnostics(loss=loss))


def test_broadcast_predictions_against_targets_fail_a_run_that_learned_nothing():
    f = fires(CAUSE, regression_run(np.full(15, 0.994)))  # the validation MSE at the targets' variance
    assert f.confidence == "high" and f.severity == "failed"
    assert "(32,) against targets (32, 1)" in f.summary and "out.view_as(target)" in f.recommendation


def test_broadcast_on_a_run_that_learned_is_a_warning():
    f = fires(CAUSE, regression_run(np.linspace(0.8, 0.1, 15)))
    assert f.severity == "warning" and "squeeze(-1)" in f.recommendation


def test_a_negative_training_loss_beside_a_regression_loss_is_other_terms_not_its_input():
    # an actor-critic (pytorch/examples' actor_critic.py, program h64): `smooth_l1_loss` for the critic
    # plus -log_prob * advantage for the actor, backpropagated together; the sum swings below zero,
    # which the element-wise loss cannot do on any input: the policy term did it
    from tests.rules.conftest import regression_loss

    g = np.random.default_rng(3)
    train = 20 * g.standard_normal(200) + 10
    d = healthy_diagnostics(loss=regression_loss(g.standard_normal(248), fn="smooth_l1_loss"))
    assert train.min() < 0
    quiet(CAUSE, make_view(train, diagnostics=d))
    # the same curve beside nll_loss: that loss goes negative only on raw logits
    d = healthy_diagnostics(loss={"loss_function": "nll_loss", "n_classes": 4, "chance_loss": float(np.log(4))})
    assert fires(CAUSE, make_view(train, diagnostics=d)).severity == "failed"
