"""learning_rate_too_low: the loss falls steadily but far too slowly."""

import math

import numpy as np

from mlflow_nnaudit.auditor.verdict import default_links, judge
from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    layer_names,
    linear,
    make_view,
    quiet,
)

CAUSE = "learning_rate_too_low"
CHANCE = math.log(4)
#: ||dW||/||W|| per step: ~1e-3 is healthy; the rule's documented limit is 1e-5
HEALTHY_RATIO, TINY_RATIO = 1e-3, 1e-7


def slow_loss():
    """10% down over the whole run, at a steady rate."""
    return linear(600, CHANCE, 0.9 * CHANCE, noise=0.005)


def recorded(ratio):
    d = healthy_diagnostics()
    return d, layer_curves("update_ratio", {n: ratio for n in layer_names(d["model"])})


def test_fires_on_a_slow_steady_decline():
    f = fires(CAUSE, make_view(slow_loss()))
    assert f.confidence == "medium" and f.severity == "warning"
    assert f.p_value is not None and f.p_value < 0.05


def test_tiny_update_ratios_with_the_slow_curve_are_high_confidence():
    d, ratios = recorded(TINY_RATIO)
    f = fires(CAUSE, make_view(slow_loss(), diagnostics=d, extra=ratios))
    assert f.confidence == "high" and f.p_value is None  # decided on the recorder's measurement


def test_tiny_update_ratios_on_a_loss_that_does_not_move_fail_the_run():
    d, ratios = recorded(TINY_RATIO)
    f = fires(CAUSE, make_view(linear(600, CHANCE, CHANCE, noise=0.005), diagnostics=d, extra=ratios))
    assert f.confidence == "medium" and f.severity == "failed"


def test_quiet_on_a_healthy_recorded_run():
    d, ratios = recorded(HEALTHY_RATIO)
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=ratios))


def test_quiet_on_a_steady_decline_that_makes_real_progress():
    # still falling steadily, but 50% down: not converged (another cause), not too slow
    quiet(CAUSE, make_view(linear(600, CHANCE, 0.5 * CHANCE, noise=0.005)))


def test_quiet_on_a_run_whose_loss_blew_up():
    import math

    import numpy as np

    from tests.rules.conftest import make_view, quiet

    # the explosion's peak is no start to measure a slow decline from
    quiet(
        "learning_rate_too_low",
        make_view(np.r_[3e13, np.linspace(5.0, math.log(4), 39)], params={"lr": "10", "n_classes": "4"}),
    )


def test_a_creep_of_a_model_whose_weights_get_no_gradient_is_not_a_small_learning_rate():
    """f29: zero weight matrices pass no gradient back, so only the output bias learns and the
    validation loss creeps monotonically towards the label prior. The creep alone reads as steps
    too small; the recorder's facts say the weights got no gradient at all, which no learning
    rate changes: frozen_parameters contradicts this cause and the verdict drops it."""
    import numpy as np

    from mlflow_nnaudit.auditor.rules import ALL_RULES
    from mlflow_nnaudit.auditor.verdict import default_links, judge

    names = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight"]
    d = healthy_diagnostics(
        learning={
            "optimizer": {
                "parameters": 6,
                "sampled_steps": 3,
                "never_grad": 5,
                "never_grad_names": names,
                "requires_grad_false": 0,
                "inputs_are_parameters": False,
                "never_changed": 5,
                "never_changed_names": names,
                "learning": 1,
            }
        }
    )
    val = CHANCE * np.linspace(0.99, 0.986, 12)  # falls at every evaluation, 0.4% in all
    view = make_view(linear(384, CHANCE, 0.99 * CHANCE, noise=0.01), val, diagnostics=d)
    fires(CAUSE, view)  # the creep, read alone
    findings = [f for rule in ALL_RULES if rule.applies(view) for f in [rule.evaluate(view)] if f is not None]
    assert "frozen_parameters" in [f.cause for f in findings]
    ordered, _, notes = judge(findings, default_links())
    assert CAUSE not in [f.cause for f in ordered]
    assert any(n.startswith(f"{CAUSE} not reported: contradicted by") and "frozen_parameters" in n for n in notes)


def test_a_creep_over_six_evaluations_is_read_even_when_they_are_too_few_for_a_trend():
    """A run at a tiny learning rate with per-epoch validation (6 points: too few for the trend
    tests and the level reading) and a training loss that is noise around chance: each
    evaluation a little lower than the one before, 0.7% in all, is the slow creep of steps too
    small (a corpus sweep's Adam at 1e-5 was called healthy). A flat, noisy validation curve is not."""
    import numpy as np

    train = CHANCE + 0.02 * np.random.default_rng(0).standard_normal(192)
    f = fires(CAUSE, make_view(train, CHANCE * np.linspace(1.004, 0.997, 6)))
    assert "validation loss fell only 1%" in f.summary
    quiet(CAUSE, make_view(train, CHANCE + np.array([0.004, 0.001, 0.003, -0.001, 0.002, 0.0])))


def test_quiet_when_healthy_steps_shrank_as_the_loss_reached_its_minimum():
    # a loss converging to ~1e-11 (h04, a polynomial fit): the gradient vanishes, and with it the
    # updates (from ~1e-2 of the weights at first to ~1e-7): a minimum reached, not a small rate
    import numpy as np

    d = healthy_diagnostics()
    shrinking = np.geomspace(1e-2, 1e-7, 60)
    extra = layer_curves("update_ratio", {n: shrinking for n in layer_names(d["model"])})
    loss = CHANCE * np.exp(-np.arange(600) / 20.0) + 1e-11
    quiet(CAUSE, make_view(loss, diagnostics=d, extra=extra))


def test_tiny_steps_from_the_first_one_are_still_reported():
    import numpy as np

    d = healthy_diagnostics()
    extra = layer_curves("update_ratio", {n: np.full(60, TINY_RATIO) for n in layer_names(d["model"])})
    fires(CAUSE, make_view(linear(600, CHANCE, CHANCE, noise=0.005), diagnostics=d, extra=extra))


def test_the_curves_say_nothing_of_the_set_rate_after_an_early_decay():
    # the same slow decline, but the logged rate was cut 10x a fifth into the run (StepLR, f31):
    # the slowness is the schedule's (lr_decay_too_fast), not the set rate's
    import numpy as np

    from mlflow_nnaudit.auditor.curves import Curve

    lr = Curve("lr", np.array([0.0, 60.0, 120.0, 180.0, 300.0, 599.0]), np.array([0.1, 0.1, 0.01, 1e-3, 1e-4, 1e-5]))
    quiet(CAUSE, make_view(slow_loss(), lr=lr))
    # a rate cut only late in the run leaves the slow stretch to judge
    late = Curve("lr", np.array([0.0, 200.0, 400.0, 500.0, 599.0]), np.array([0.1, 0.1, 0.1, 0.01, 0.01]))
    fires(CAUSE, make_view(slow_loss(), lr=late))


def test_a_steady_creep_of_ten_evaluations_that_ends_near_chance_is_too_slow():
    """Adam at 1e-4 for 10 epochs (a corpus sweep): every evaluation lower than the one before,
    6% in all, at a steady rate, the model still near chance at the end: too few points for the
    tail trend test, but the same slow decline. The same fall decelerating onto a floor (a
    schedule or a converged model) or ending far below chance is not read this way."""
    import numpy as np

    d = healthy_diagnostics()
    train = CHANCE - 0.06 * np.linspace(0, 1, 320) + 0.02 * np.random.default_rng(0).standard_normal(320)
    steady = CHANCE * np.linspace(0.995, 0.935, 10)
    f = fires(CAUSE, make_view(train, steady, diagnostics=d))
    assert "validation loss fell only 6%" in f.summary
    floor = CHANCE * (0.935 + 0.06 * np.exp(-np.arange(10) / 1.5))
    quiet(CAUSE, make_view(train, floor, diagnostics=d))
    quiet(CAUSE, make_view(train * 0.3, 0.3 * steady, diagnostics=d))


def test_a_creep_under_heavy_dropout_is_listed_after_the_regularisation():
    """Dropout 0.8 (a corpus fault): the validation loss creeps down 5% at every evaluation,
    the training loss stalls near chance. Small steps read from the curves are what strong
    regularisation does at any learning rate: too_much_regularization comes first."""
    import numpy as np

    from mlflow_nnaudit.auditor.rules import ALL_RULES
    from tests.rules.conftest import mlp_model

    d = healthy_diagnostics(model=mlp_model([20, 64, 64, 4], dropout=0.8))
    train = CHANCE * 1.04 - 0.07 * np.linspace(0, 1, 320) + 0.03 * np.random.default_rng(0).standard_normal(320)
    view = make_view(train, CHANCE * np.linspace(0.99, 0.94, 10), diagnostics=d)
    fires(CAUSE, view)
    findings = [f for rule in ALL_RULES if rule.applies(view) for f in [rule.evaluate(view)] if f is not None]
    ordered, _, _ = judge(findings, default_links())
    causes = [f.cause for f in ordered]
    assert causes.index("too_much_regularization") < causes.index(CAUSE), causes


def test_a_warm_up_from_zero_does_not_hide_the_tiny_first_steps():
    """HF's linear warm-up takes its first step at a learning rate of 0: the first sampled update
    ratio of every layer is exactly 0. The first ratio above zero is the run's first real step."""
    d = healthy_diagnostics()
    ratios = layer_curves("update_ratio", {n: [0.0] + [TINY_RATIO] * 59 for n in layer_names(d["model"])})
    f = fires(CAUSE, make_view(linear(600, CHANCE, CHANCE, noise=0.005), diagnostics=d, extra=ratios))
    assert f.severity == "failed" and "changed the weights by only" in f.summary


def test_a_creep_is_learning_a_warning_and_the_outcome_fails_a_run_left_at_chance():
    """SGD+momentum at 3e-3 on an LSTM for 6 epochs (a corpus run still improving when stopped):
    every evaluation lower than the one before, 4.8% in all, ending little better than chance. A
    creep learns, however slowly: a warning, not a failed run; where the validation loss stayed at
    chance the outcome itself fails the run."""
    import numpy as np

    from mlflow_nnaudit.auditor.verdict import settle

    train = 1.35 + 0.03 * np.random.default_rng(0).standard_normal(192)
    view = make_view(train, np.array([1.383, 1.354, 1.34, 1.33, 1.322, 1.316]), params={"n_classes": "4"})
    f = fires(CAUSE, view)
    assert f.severity == "warning" and "fell only 5%" in f.summary
    assert settle([f], None, view.outcome_harm()) == "warning"
    at_chance = make_view(train, CHANCE * np.linspace(1.004, 0.997, 6), params={"n_classes": "4"})
    f = fires(CAUSE, at_chance)
    assert f.severity == "warning" and settle([f], None, at_chance.outcome_harm()) == "failed"


def test_a_rate_logged_at_a_few_sampled_steps_is_read_between_them():
    # ExponentialLR(gamma 0.3) per epoch (a corpus fault), the rate logged by the recorder at three
    # sampled steps only: 1e-3 at steps 0 and 10, 7e-7 at step 420. It crossed a tenth of its peak
    # long before step 420 (log-linear between 10 and 420: step ~ 140, a quarter of the run): the
    # slowness is the schedule's, not the set rate's
    import numpy as np

    from mlflow_nnaudit.auditor.curves import Curve

    sparse = Curve("nnaudit/lr", np.array([0.0, 10.0, 420.0]), np.array([1e-3, 1e-3, 7.29e-7]))
    quiet(CAUSE, make_view(slow_loss(), lr=sparse))
    # the last one barely under a tenth, at step 500: it crossed late (~80% in, inside the tail window
    # the curves are read on), the curves count
    late = Curve("nnaudit/lr", np.array([0.0, 10.0, 500.0]), np.array([1e-3, 1e-3, 9e-5]))
    fires(CAUSE, make_view(slow_loss(), lr=late))


def test_a_rate_gone_before_the_tail_leaves_the_tail_to_the_schedule():
    # ExponentialLR(gamma 0.5) per epoch over 6 epochs (a corpus fault): the rate is a tenth of its
    # peak ~60% into the run, after the first half but before the last 30% that the tail test reads:
    # the tail's slowness is the rate the schedule left, not the rate that was set (lr_decay_too_fast)
    import numpy as np

    from mlflow_nnaudit.auditor.curves import Curve

    halving = Curve("lr", np.arange(6) * 100.0, 1e-3 * 0.5 ** np.arange(6))
    quiet(CAUSE, make_view(slow_loss(), lr=halving))
    # a cosine over the whole run gets to a tenth only ~80% in, inside the tail: the set rate is read
    t = np.linspace(0, 1, 25)
    cosine = Curve("lr", t * 599, 1e-3 * 0.5 * (1 + np.cos(np.pi * t)))
    fires(CAUSE, make_view(slow_loss(), lr=cosine))


def at_chance_run(optimizer: str, lr: float, ratio: float, seed=7, **more_params):
    """A recorded 4-class run that learned nothing: per-step losses and 8 evaluations at ln 4 with
    noise (the evaluations not each lower than the last, so no creep), its update ratios `ratio`."""
    import numpy as np

    from tests.rules.conftest import optimizer_facts, recorder_params, rng

    r = rng(seed)
    d = healthy_diagnostics(optimizer=optimizer_facts(optimizer, lr=lr, momentum=None))
    d["loss"] = dict(d.get("loss", {}), n_classes=4, chance_loss=CHANCE)
    ratios = layer_curves("update_ratio", {n: ratio for n in layer_names(d["model"])})
    val = CHANCE + 0.002 * np.array([1.0, 0.2, 0.6, -0.1, 0.4, -0.3, 0.1, -0.2])
    params = recorder_params(d) | {"n_classes": "4"} | more_params
    return make_view(CHANCE + 0.05 * r.standard_normal(600), val, diagnostics=d, extra=ratios, params=params)


def test_steps_ten_times_too_small_on_a_run_that_learned_nothing():
    # AdamW at 1e-5 on a small BERT (a corpus sweep: its update ratios ~1e-4, not the 1e-5 of the
    # recorder's own test), the curves at chance wiggling too much for a creep or a trend: a tenth of
    # the bottom of Adam's usual range, and nothing learned
    f = fires(CAUSE, at_chance_run("AdamW", 1e-5, 1.3e-4))
    assert any(e.test == "small_steps" for e in f.evidence) and "without having learned" in f.summary
    # SGD: its recorded steps, 5e-5 of the weights from the first step on
    fires(CAUSE, at_chance_run("SGD", 1e-3, 5e-5))


def test_a_usual_fine_tuning_rate_is_not_ten_times_too_small():
    """Found by review: AdamW at 1e-5 is a usual rate for fine-tuning a pretrained transformer (BERT's
    2e-5..5e-5, 1e-5 for large models): a fine-tune that learned nothing for another reason (broken
    labels) must not be told to multiply its rate by 10. The Trainer logs the checkpoint it loaded."""
    quiet(CAUSE, at_chance_run("AdamW", 1e-5, 1.3e-4, _name_or_path="bert-base-uncased"))
    # built from a config (`_name_or_path` empty, as the Trainer logs it): trained from scratch, too small
    fires(CAUSE, at_chance_run("AdamW", 1e-5, 1.3e-4, _name_or_path=""))
    # a tenth of a fine-tune's usual range is too small again
    fires(CAUSE, at_chance_run("AdamW", 1e-6, 1.3e-5, _name_or_path="bert-base-uncased"))


def test_quiet_on_a_run_at_chance_with_steps_of_a_usual_size():
    # Adam at 1e-3 stuck at chance (shuffled labels, a bug): not the rate's doing
    quiet(CAUSE, at_chance_run("Adam", 1e-3, 1e-3))
    quiet(CAUSE, at_chance_run("SGD", 0.1, 1e-3))


def test_small_steps_alone_are_no_finding_on_a_run_that_learned():
    d, ratios = recorded(5e-5)
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=ratios))


def test_a_slow_decline_with_small_steps_rests_on_no_p_value():
    # the same slow decline read with AdamW at 1e-5 on a run that ended near chance: the steps and
    # the outcome decide it, so the audit's false-discovery control cannot drop it (plateau would
    # then be named first for what the small rate did)
    from tests.rules.conftest import optimizer_facts, recorder_params

    d = healthy_diagnostics(optimizer=optimizer_facts("AdamW", lr=1e-5, momentum=None))
    view = make_view(slow_loss(), diagnostics=d, params=recorder_params(d) | {"n_classes": "4"})
    assert view.outcome_harm() is not None
    f = fires(CAUSE, view)
    assert f.p_value is None and any(e.test == "small_steps" for e in f.evidence)
    assert fires(CAUSE, make_view(slow_loss())).p_value is not None  # the curves alone: a test, a p-value


def still_improving(val):
    """SGD+momentum at 3e-3 on an LSTM for 6 epochs of 32 steps (a corpus run 30x under its sweep's best
    rate): the per-step training loss through its epoch means 1.379 .. 1.246, under minibatch noise that
    hides its tail's trend, and `val` the validation loss at each epoch's end."""
    import numpy as np

    means = [1.379, 1.327, 1.295, 1.277, 1.26, 1.246]
    noise = 0.04 * np.random.default_rng(3).standard_normal(192)
    train = np.interp(np.arange(192), 16 + 32 * np.arange(6), means) + noise
    return make_view(train, np.asarray(val), params={"n_classes": "4", "lr": "0.003"})


def test_a_creep_still_falling_through_its_last_half_near_chance_is_too_slow():
    """Every evaluation lower than the one before, 6% in all, ending little better than chance, and
    through its last half still falling at a rate that would gain 5% of its start in one more run as
    long: not converged onto a floor, however much faster its first epoch was (here the last 30%
    brought only 13% of the fall, under the steady-rate test). The same fall levelling off onto a
    floor is not read this way."""
    import numpy as np

    f = fires(CAUSE, still_improving([1.357, 1.325, 1.307, 1.295, 1.283, 1.272]))
    assert f.severity == "warning" and "fell only 6%" in f.summary and "(it is 0.003)" in f.recommendation
    floor = 1.272 + 0.085 * np.exp(-np.arange(6) / 0.9)
    quiet(CAUSE, still_improving(floor))
    # found by the end-to-end test: the 1-hidden-unit sample run (a capacity floor, Adam at a usual 3e-3)
    # still falls 5% of its start at its last half's rate, but at 0.16 of its first half's pace
    bottleneck = [1.414, 1.305, 1.235, 1.2, 1.181, 1.168, 1.159, 1.148, 1.141, 1.134]
    quiet(CAUSE, still_improving(bottleneck))


def test_a_warm_up_from_zero_is_not_read_as_the_learning_rate():
    # the Hugging Face Trainer's linear warm-up starts at 0, which the recorder reads when it first sees
    # the optimizer (held-out program h30: "AdamW at a learning rate of 0")
    params = {"nnaudit.optimizer.lr": "0.0", "nnaudit.optimizer": "AdamW", "learning_rate": "0.003"}
    assert make_view(healthy_loss(), params=params).learning_rate() == ("learning_rate", 0.003)
    params = {"nnaudit.optimizer.lr": "0.0"}
    view = make_view(healthy_loss(), lr=np.r_[0.0, np.linspace(1e-4, 3e-3, 9), np.linspace(3e-3, 0, 50)], params=params)
    assert view.learning_rate()[1] == 3e-3  # the peak of the logged rate


# --- a warm-up longer than the run (held-out program f73: warmup_steps=2000 for a run of 300 steps) ---
def _warmup_run(peak_step: int, n: int = 300):
    """An HF-Trainer-style run: learning_rate=1e-3 with a linear warm-up over `peak_step` steps, then
    constant; the loss falls 30% and is still falling at the end."""
    lr = 1e-3 * np.minimum(np.arange(n) / peak_step, 1.0)
    loss = 4.0 - 1.2 * np.arange(n) / n + 0.02 * np.random.default_rng(0).standard_normal(n)
    return make_view(loss, lr=lr, params={"learning_rate": "0.001", "warmup_steps": str(peak_step)})


def test_a_warm_up_that_outlasts_the_run_is_a_rate_never_delivered():
    f = fires(CAUSE, _warmup_run(2000))
    assert "still warming up when the run ended (warmup_steps=2000)" in f.summary and "15%" in f.summary
    assert "warmup_ratio" in f.recommendation and "Multiply" not in f.recommendation


def test_a_warm_up_that_ends_within_the_run_is_not_read_so():
    # the rate reached the 1e-3 set at step 30: whatever the curve says, not an unfinished warm-up
    f = _rule_finding(_warmup_run(30))
    assert f is None or "warming up" not in f.summary
    # a rate that never rose (a constant 1e-4 logged against a param of 1e-3) is no warm-up either
    view = make_view(4.0 - np.arange(300) / 300, lr=np.full(300, 1e-4), params={"learning_rate": "0.001"})
    f = _rule_finding(view)
    assert f is None or "warming up" not in f.summary


def _rule_finding(view):
    from tests.rules.conftest import rule_for

    return rule_for(CAUSE).evaluate(view)


def test_a_warm_up_that_outlasts_a_fine_tune_which_learned_what_it_could_is_no_harm():
    # the same rate never delivered, but the loss fell fast and then flattened (the last 30% of the run
    # brings ~1% of the progress): the run learned what it could; nothing to say (found by review)
    n = 300
    lr = 1e-3 * np.arange(n) / 2000
    loss = 1.0 + 3.0 * np.exp(-np.arange(n) / 30) + 0.002 * np.random.default_rng(0).standard_normal(n)
    f = _rule_finding(make_view(loss, lr=lr, params={"learning_rate": "0.001", "warmup_steps": "2000"}))
    assert f is None or "warming up" not in f.summary


def test_an_adam_family_optimiser_is_told_by_name_whatever_its_package_calls_it():
    # bitsandbytes' AdamW8bit and apex's FusedAdam take Adam's steps (lr / rms(w)): their update ratios are not
    # read on SGD's scale (review: AdamW8bit at 1e-4 with ratios of 5e-5 read as "10x under the usual")
    from mlflow_nnaudit.auditor.rules.helpers import large_steps, small_steps
    from tests.rules.conftest import optimizer_facts, recorder_params

    for name in ("AdamW", "AdamW8bit", "FusedAdam", "PagedAdamW8bit"):
        for lr, ratio in ((1e-4, 5e-5), (1e-3, 2e-2)):
            d = healthy_diagnostics(optimizer=optimizer_facts(name, lr, momentum=None))
            extra = layer_curves("update_ratio", {n: ratio for n in layer_names(d["model"])})
            view = make_view(healthy_loss(), diagnostics=d, params=recorder_params(d), extra=extra)
            assert small_steps(view) is None and large_steps(view) is None, (name, lr)
