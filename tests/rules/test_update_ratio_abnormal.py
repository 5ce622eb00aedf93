"""update_ratio_abnormal: some layers move far more, or far less, than the others per step."""

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, layer_curves, make_view, quiet, rule_for

CAUSE = "update_ratio_abnormal"
HEALTHY = 1e-3  # ||dW||/||W|| per step; the rule's documented band is [1e-5, 1e-1]


def run(ratios):
    d = healthy_diagnostics()  # layers 0, 3, 6
    return make_view(healthy_loss(), diagnostics=d, extra=layer_curves("update_ratio", ratios))


def test_fires_on_one_layer_moving_far_too_much():
    f = fires(CAUSE, run({"0": HEALTHY, "3": 2 * HEALTHY, "6": 400 * HEALTHY}))
    assert f.confidence == "medium" and f.severity == "warning" and "6 (" in f.summary
    assert "too much" in f.recommendation


def test_fires_on_one_layer_barely_moving():
    f = fires(CAUSE, run({"0": HEALTHY / 1e4, "3": HEALTHY, "6": HEALTHY}))
    assert "too little" in f.recommendation


def test_quiet_when_layers_differ_within_the_healthy_band():
    quiet(CAUSE, run({"0": HEALTHY / 3, "3": HEALTHY, "6": 3 * HEALTHY}))


def test_quiet_when_all_layers_are_off_together():
    # every layer 400x too fast: the learning rate as a whole, which learning_rate_too_high reports
    v = run({"0": 400 * HEALTHY, "3": 400 * HEALTHY, "6": 400 * HEALTHY})
    quiet(CAUSE, v)
    assert rule_for("learning_rate_too_high").evaluate(v) is not None


def test_quiet_on_exact_zeros():
    # a frozen layer's update is exactly 0: frozen_parameters' business
    quiet(CAUSE, run({"0": 0.0, "3": HEALTHY, "6": HEALTHY}))


# --- applicability: L-BFGS ---------------------------------------------------------------------------
def test_quiet_on_lbfgs():
    view = run({"0": 5e-1, "3": 1e-3, "6": 1e-3})
    fires(CAUSE, view)
    view.params["nnaudit.optimizer"] = "LBFGS"
    quiet(CAUSE, view)
    assert view.update_ratios() == {}  # nor does any learning-rate rule read them


def test_quiet_when_a_layer_just_crosses_the_line_next_to_layers_as_fast():
    # SGD at lr 1 on a GRU (a healthy corpus sweep run, the best of its sweep): the recurrent layer at
    # 5e-2, the head at 1.1e-1: one fast learning rate for the whole network, not one layer apart
    quiet(CAUSE, run({"0": 55 * HEALTHY, "3": 50 * HEALTHY, "6": 110 * HEALTHY}))
    # the same head 10x above the others stands apart
    fires(CAUSE, run({"0": 5 * HEALTHY, "3": 5 * HEALTHY, "6": 110 * HEALTHY}))


def test_a_slow_layer_under_a_group_rate_set_10x_lower_is_by_design():
    """A CLIP-style model (held-out program f130) fine-tunes its text encoder at 1e-5 beside a head at 1e-3: the
    encoder's tiny update ratios follow the rates the user chose. Groups at one rate (a weight-decay split) do not
    excuse a slow layer."""

    def reported(slow, spread):
        d = healthy_diagnostics()
        if spread is not None:
            d.setdefault("optimizer", {})["nnaudit.optimizer.lr_spread"] = spread
        ratios = {"0": HEALTHY * slow, "3": HEALTHY, "6": HEALTHY}
        return (
            rule_for(CAUSE).evaluate(
                make_view(healthy_loss(), diagnostics=d, extra=layer_curves("update_ratio", ratios))
            )
            is not None
        )

    assert not reported(1 / 500, 100.0)  # 500x slower under rates 100x apart: what the rates do
    assert reported(1 / 500, 1.0) and reported(1 / 500, None)
    # review: the rates excuse no more than their own spread, 10x over: a layer 1e5x slower under rates 10x apart
    assert reported(1e-5, 10.0)
    # a layer moving far too much is reported whatever the groups' rates
    d = healthy_diagnostics()
    d.setdefault("optimizer", {})["nnaudit.optimizer.lr_spread"] = 100.0
    fires(
        CAUSE,
        make_view(
            healthy_loss(),
            diagnostics=d,
            extra=layer_curves("update_ratio", {"0": HEALTHY, "3": HEALTHY, "6": 400 * HEALTHY}),
        ),
    )
