"""From findings to a run's status: the false-discovery control across the runs of one audit
(from tests/test_setup_rules.py)."""

from __future__ import annotations

from mlflow_nnaudit.auditor.result import AuditResult
from mlflow_nnaudit.auditor.rules.base import Finding
from mlflow_nnaudit.auditor.verdict import control_false_discoveries, decide_status


def _result(run_id, *findings):
    return AuditResult(run_id, run_id, "0", "e", status=decide_status(list(findings)), findings=list(findings))


def test_benjamini_hochberg_across_the_runs_of_one_audit():
    strong = [_result(f"s{i}", Finding("not_converged", "medium", "warning", "s", "r", p_value=1e-6)) for i in range(5)]
    weak = _result("w", Finding("not_converged", "medium", "warning", "s", "r", p_value=0.04))
    recorded = _result("r", Finding("nonfinite_inputs", "high", "failed", "s", "r"))  # no p-value: untouched
    results = [*strong, weak, *[_result(f"h{i}") for i in range(20)], recorded]
    # 0.04 alone would pass at 5%; among 6 tests its BH threshold is 0.05 * 6/6 ... but with 20 more
    # healthy runs nothing changes (they have no tests): it is the number of tests that counts
    assert control_false_discoveries(results) == 0
    many = [_result(f"m{i}", Finding("oscillating_loss", "low", "warning", "s", "r", p_value=0.5)) for i in range(30)]
    results = [*strong, weak, *many, recorded]
    dropped = control_false_discoveries(results)
    assert dropped == 31  # the weak one and the 30 null ones; the strong ones survive
    assert weak.findings == [] and weak.status == "healthy" and "Benjamini-Hochberg" in weak.notes[0]
    assert all(r.findings for r in strong) and recorded.findings and recorded.status == "failed"


# --- status follows harm ------------------------------------------------------------------------
from mlflow_nnaudit.auditor import writer  # noqa: E402
from mlflow_nnaudit.auditor.rules.base import OutcomeHarm  # noqa: E402
from mlflow_nnaudit.auditor.verdict import Links, judge, rank_findings, settle  # noqa: E402


def _f(cause, confidence="high", severity="warning", score=0.5, **kw):
    return Finding(cause, confidence, severity, f"{cause} seen", f"Fix {cause}.", score=score, **kw)


def _judged(findings, links=None, reason=None, harm=None):
    ordered, status, notes = judge(findings, links or Links(), reason, harm)
    result = AuditResult("r", "r", "0", "e", status=status, findings=ordered, notes=notes, harm=harm)
    return result


def test_a_run_whose_only_findings_are_risks_is_healthy_with_them_as_advisories():
    result = _judged([_f("targets_not_normalized", score=0.7), _f("constant_features", "medium")])
    assert result.status == "healthy"
    assert result.causes == [] and result.advisories == ["targets_not_normalized", "constant_features"]
    assert result.recommendation.startswith("Advisory")
    tags = writer.audit_tags(result)
    assert tags["nnaudit.status"] == "healthy" and tags["nnaudit.causes"] == ""
    assert tags["nnaudit.advisories"] == "targets_not_normalized,constant_features"
    # filtering by cause still finds the run
    assert tags["nnaudit.cause.targets_not_normalized"] == "high"
    assert tags["nnaudit.cause.constant_features"] == "medium"
    assert result.to_dict()["advisories"] == ["targets_not_normalized", "constant_features"]
    assert all(d["advisory"] and d["kind"] == "risk" for d in result.to_dict()["findings"])


def test_a_risk_found_with_harm_is_one_of_its_causes_and_the_status_follows_the_harm():
    result = _judged([_f("inputs_not_normalized", score=0.9), _f("plateau", "medium", "failed")])
    assert result.status == "failed"
    assert set(result.causes) == {"inputs_not_normalized", "plateau"} and result.advisories == []
    # a risk's own severity never moves the status: harm does
    result = _judged([_f("dead_relu", "high", "failed"), _f("oscillating_loss", "medium", "warning")])
    assert result.status == "warning"


def test_a_definite_bug_is_warning_or_failed_even_when_the_curves_look_fine():
    assert _judged([_f("loss_input_mismatch", severity="warning")]).status == "warning"
    assert _judged([_f("gradients_not_zeroed", severity="failed")]).status == "failed"
    assert _judged([_f("frozen_parameters")]).status == "warning"
    # and a risk found next to a bug is listed as a cause of the run, not an advisory
    result = _judged([_f("frozen_parameters"), _f("missing_bias", "low")])
    assert result.causes == ["frozen_parameters", "missing_bias"] and result.advisories == []


def test_a_finding_can_carry_its_own_kind():
    # a risk cause whose rule saw the harm itself (the loss stuck) makes the run warn
    assert _judged([_f("network_too_deep", kind="outcome")]).status == "warning"
    assert _judged([_f("network_too_deep")]).status == "healthy"


def test_harm_seen_in_the_outcome_makes_the_risks_its_causes():
    harm = OutcomeHarm("failed", "the validation loss at its best was 1.37, no better than chance (ln C = 1.39)")
    result = _judged([_f("dead_relu", severity="warning")], harm=harm)
    assert result.status == "failed" and result.causes == ["dead_relu"]
    assert result.to_dict()["outcome_harm"].startswith("the validation loss")
    # with no finding at all there is nothing to blame: the outcome rules decide such runs
    assert _judged([], harm=harm).status == "healthy"


def test_too_few_points_are_not_failed_on_weak_findings():
    reason = "the loss curve 'loss' has only 5 points"
    assert _judged([_f("plateau", "medium", "failed")], reason=reason).status == "inconclusive"
    assert _judged([_f("nonfinite_loss", "high", "failed")], reason=reason).status == "failed"
    # and risks alone leave it inconclusive, not healthy
    assert _judged([_f("repeated_batch", "high", "failed", kind="risk")], reason=reason).status == "inconclusive"


# --- causal order, contradictions ------------------------------------------------------------------
LINKS = Links(
    explained_by={"labels_unrelated": ("class_imbalance",)},
    consequence_of={
        "nonfinite_loss": ("nonfinite_inputs", "learning_rate_too_high"),
        "dead_relu": ("learning_rate_too_high",),
        "vanishing_gradients": ("dead_relu", "learning_rate_too_high"),
    },
    contradicted_by={"learning_rate_too_low": ("learning_rate_too_high", "nonfinite_loss")},
)


def test_the_upstream_cause_comes_first_and_its_recommendation_names_its_consequences():
    nan = _f("nonfinite_loss", "high", "failed", 1.0)
    dead = _f("dead_relu", "high", "failed", 0.95)
    vanish = _f("vanishing_gradients", "high", "warning", 0.9)
    lr = _f("learning_rate_too_high", "medium", "failed", 0.6)
    overfit = _f("overfitting", "high", "warning", 0.8)
    result = _judged([overfit, vanish, dead, nan, lr], LINKS)
    assert result.causes == [
        "learning_rate_too_high",
        "nonfinite_loss",
        "dead_relu",
        "vanishing_gradients",
        "overfitting",
    ]
    assert lr.consequences == ["nonfinite_loss", "dead_relu"] and dead.consequences == ["vanishing_gradients"]
    assert nan.upstream == "learning_rate_too_high" and vanish.upstream == "dead_relu"
    assert (
        result.recommendation == "Fix learning_rate_too_high. This is also why the loss turned NaN and the ReLUs "
        "died (listed after it)."
    )
    assert nan.advice.startswith("A consequence of `learning_rate_too_high` on this run: fix that first.")
    d = {f["cause"]: f for f in result.to_dict()["findings"]}
    assert d["nonfinite_loss"]["consequence_of"] == "learning_rate_too_high"
    assert d["learning_rate_too_high"]["consequences"] == ["nonfinite_loss", "dead_relu"]


def test_a_definite_bug_ranks_before_a_risk_found_as_surely_and_ties_with_harm_seen():
    # a layer left out of the optimizer (a bug) beside dead units (a risk, higher score): the bug first. A
    # blow-up the rate's rule saw itself (an outcome) ties with a bug: the score decides (review: a blow-up
    # that saturated a sigmoid to exactly 0 reads as a constant loss input, which must not lead)
    risk, bug = _f("dead_relu", "high", "warning", 0.95), _f("frozen_parameters", "high", "warning", 0.7)
    assert [f.cause for f in rank_findings([risk, bug])] == ["frozen_parameters", "dead_relu"]
    blow_up = _f("learning_rate_too_high", "high", "failed", 1.0, kind="outcome")
    constant = _f("loss_input_mismatch", "high", "failed", 0.9)
    assert [f.cause for f in rank_findings([constant, blow_up])] == ["learning_rate_too_high", "loss_input_mismatch"]
    # confidence and severity still come first: a medium bug stays after a high risk
    unsure = _f("gradients_not_zeroed", "medium", "warning", 1.0)
    assert [f.cause for f in rank_findings([unsure, risk])] == ["dead_relu", "gradients_not_zeroed"]


def test_a_risk_ranks_as_a_warning_at_most_so_it_never_outranks_harm_seen_as_surely():
    # a set-up risk whose rule gave it severity `failed` (it never sets the status: docs/auditor.md) ranks as a
    # warning: after harm seen at `warning` and the same confidence, whatever the scores
    risk = _f("bad_weight_init", "high", "failed", 1.0)
    harm = _f("overfitting", "high", "warning", 0.2)
    assert [f.cause for f in rank_findings([risk, harm])] == ["overfitting", "bad_weight_init"]
    # the same risk found with harm (its own kind `outcome`) keeps its severity and leads
    risk_with_harm = _f("bad_weight_init", "high", "failed", 0.1, kind="outcome")
    assert [f.cause for f in rank_findings([harm, risk_with_harm])] == ["bad_weight_init", "overfitting"]
    # among risks their own severity still parts them before the score
    weak_failed, strong_warning = _f("dead_relu", "high", "failed", 0.3), _f("missing_bias", "high", "warning", 0.9)
    assert [f.cause for f in rank_findings([strong_warning, weak_failed])] == ["dead_relu", "missing_bias"]


def test_the_best_ranked_upstream_wins_and_cycles_cannot_loop():
    # NaN inputs (high) and a high learning rate (medium) both explain a NaN loss: the better one holds it
    order = rank_findings(
        [
            _f("learning_rate_too_high", "medium", "failed"),
            _f("nonfinite_loss", "high", "failed"),
            _f("nonfinite_inputs", "high", "failed", 1.0),
        ],
        LINKS.consequence_of,
    )
    assert [f.cause for f in order] == ["nonfinite_inputs", "nonfinite_loss", "learning_rate_too_high"]
    cyclic = {"plateau": ("insufficient_capacity",), "insufficient_capacity": ("plateau",)}
    order = rank_findings([_f("insufficient_capacity", "low"), _f("plateau", "medium", "failed")], cyclic)
    # the better-ranked finding's declaration is read first and holds; the reverse link is ignored
    assert [f.cause for f in order] == ["insufficient_capacity", "plateau"]
    assert order[1].upstream == "insufficient_capacity" and order[0].upstream is None


def test_a_finding_can_rule_out_a_link_its_rule_allows_in_general():
    # an accuracy under the least its loss allows (a metric bug) beside a skewed label histogram: the general link
    # (imbalance -> the metric disagrees) would list the imbalance first; the finding rules it out on this run
    def order(rules_out):
        bug = _f("loss_metric_disagreement", "high", "warning", 0.9, kind="bug", rules_out=rules_out)
        links = {"loss_metric_disagreement": ("class_imbalance",)}
        return rank_findings([bug, _f("class_imbalance", "high", "warning", 0.95)], links)

    assert [f.cause for f in order(())] == ["class_imbalance", "loss_metric_disagreement"]
    ranked = order(("class_imbalance",))
    assert [f.cause for f in ranked] == ["loss_metric_disagreement", "class_imbalance"]
    assert ranked[0].upstream is None and ranked[1].consequences == []


def test_a_finding_can_follow_a_cause_on_this_run_only():
    # the rule saw why (inputs in the hundreds): the blow-up hangs under the inputs, and what the
    # blow-up destroyed under it; without `follows` the declared links alone put the learning rate first
    def findings(follows):
        return [
            _f("learning_rate_too_high", "high", "failed", 1.0, follows=follows),
            _f("dead_relu", "high", "failed", 0.95),
            _f("inputs_not_normalized", "high", "warning", 0.8),
        ]

    order = rank_findings(findings(("inputs_not_normalized",)), LINKS.consequence_of)
    assert [f.cause for f in order] == ["inputs_not_normalized", "learning_rate_too_high", "dead_relu"]
    assert order[1].upstream == "inputs_not_normalized" and order[2].upstream == "learning_rate_too_high"
    order = rank_findings(findings(()), LINKS.consequence_of)
    assert [f.cause for f in order] == ["learning_rate_too_high", "dead_relu", "inputs_not_normalized"]
    # a link to a cause not found on the run changes nothing
    order = rank_findings(findings(("bad_weight_init",))[:2], LINKS.consequence_of)
    assert [f.cause for f in order] == ["learning_rate_too_high", "dead_relu"] and order[0].upstream is None


def test_a_link_seen_on_the_run_outweighs_one_only_possible_in_general():
    # the corpus's Adam 1e-2 sweep member: an early overfit the rate raced to (overfitting follows it on
    # this run), the too-small-data reading following the rate too, and no regularisation ranked above both
    def findings(follows):
        return [
            _f("overfitting", "high", "warning", 0.6, kind="outcome", follows=follows),
            _f("no_regularization", "medium", "warning", 0.9),
            _f("learning_rate_too_high", "high", "warning", 0.4, kind="risk"),
            _f("dataset_too_small", "low", "warning", 0.5, follows=("learning_rate_too_high",)),
        ]

    declared = {"overfitting": ("dataset_too_small", "no_regularization")}  # as the overfitting rule declares
    order = rank_findings(findings(("learning_rate_too_high",)), declared)
    # through the cause that follows the rate (the nearest on the seen path), the rate leads
    assert [f.cause for f in order][:3] == ["learning_rate_too_high", "dataset_too_small", "overfitting"]
    assert order[2].upstream == "dataset_too_small"
    # no link seen: the declared ones alone, the nearest best-ranked one (no regularisation) leads
    order = rank_findings(findings(()), declared)
    assert [f.cause for f in order][:2] == ["no_regularization", "overfitting"]
    # a definite bug among the declared links is not outweighed by the rate seen on the run (review)
    bug = _f("train_val_preprocessing_mismatch", "medium", "failed", 0.5, kind="bug")
    lr = _f("learning_rate_too_high", "medium", "warning", 0.4, kind="risk")
    over = _f("overfitting", "high", "warning", 0.6, kind="outcome", follows=("learning_rate_too_high",))
    order = rank_findings([over, bug, lr], {"overfitting": ("train_val_preprocessing_mismatch",)})
    assert [f.cause for f in order] == ["train_val_preprocessing_mismatch", "overfitting", "learning_rate_too_high"]


def test_an_upstream_walk_never_passes_through_the_finding_itself():
    # the non-finite loss followed the rate on this run; the gradients exploded with the loss (a run-time
    # link back): the loss must hang under the rate, not under its own consequence (review)
    nan = _f("nonfinite_loss", "high", "failed", 1.0, follows=("learning_rate_too_high",))
    grads = _f("exploding_gradients", "high", "failed", 0.9, follows=("nonfinite_loss",))
    lr = _f("learning_rate_too_high", "medium", "failed", 0.6)
    order = rank_findings([nan, grads, lr], {"nonfinite_loss": ("exploding_gradients",)})
    assert order[0].cause == "learning_rate_too_high"
    assert {f.cause: f.upstream for f in order}["nonfinite_loss"] == "learning_rate_too_high"


def test_a_contradicted_finding_is_dropped_with_a_note():
    result = _judged([_f("learning_rate_too_low", "medium", "failed"), _f("nonfinite_loss", "high", "failed")], LINKS)
    assert result.causes == ["nonfinite_loss"]
    assert result.notes == ["learning_rate_too_low not reported: contradicted by nonfinite_loss"]


def test_a_harmful_finding_explained_away_leaves_its_harm_with_what_explains_it():
    result = _judged([_f("labels_unrelated", "medium", "failed"), _f("class_imbalance", "high", "warning")], LINKS)
    assert result.causes == ["class_imbalance"] and result.status == "failed"
    assert result.notes == ["labels_unrelated not reported: explained by class_imbalance"]


def test_the_false_discovery_control_settles_the_status_again():
    weak = Finding("not_converged", "medium", "warning", "s", "r", p_value=0.5, kind="outcome")
    risk = _f("targets_not_normalized")
    result = _judged([weak, risk])
    assert result.status == "warning" and set(result.causes) == {"not_converged", "targets_not_normalized"}
    others = [_result(f"m{i}", Finding("oscillating_loss", "low", "warning", "s", "r", p_value=0.9)) for i in range(5)]
    control_false_discoveries([result, *others])
    assert result.status == "healthy" and result.causes == [] and result.advisories == ["targets_not_normalized"]


def test_the_status_is_settled_on_findings_in_place():
    findings = [_f("missing_bias", "low")]
    assert settle(findings) == "healthy" and findings[0].advisory


def test_a_regression_no_better_than_predicting_its_mean_is_a_failed_outcome():
    """A regression's ln C is its targets' variance (the MSE of predicting their mean): a validation
    MSE at 95% of it or more is failed, as a classifier at 95% of ln C; a quarter or more a warning."""
    import numpy as np

    from tests.rules.conftest import falling, healthy_diagnostics, make_view, regression_loss, rng

    targets = rng(9).standard_normal(2560)  # the recorder's running statistics of standardised targets
    var = float(np.var(targets))

    def harm(val_share, fn="mse_loss"):
        d = healthy_diagnostics(loss=regression_loss(targets, fn=fn))
        view = make_view(falling(600, 1.05 * var, 0.8 * var, noise=0.1), np.full(12, val_share * var), diagnostics=d)
        return view.outcome_harm()

    assert harm(0.97).severity == "failed" and "no better than predicting their mean" in harm(0.97).summary
    assert harm(0.6).severity == "warning" and "mean" not in harm(0.6).summary
    assert harm(0.1) is None and harm(0.97, fn="l1_loss") is None  # the variance is no yardstick for L1


def test_a_multi_output_regression_is_held_against_each_outputs_own_variance():
    """68 keypoints in pixels (held-out program f120): a validation MSE of 174 is 18% of the pooled variance
    (984: the keypoints sit apart) but 71% of what predicting each keypoint's mean face leaves (246)."""
    import numpy as np

    from tests.rules.conftest import falling, healthy_diagnostics, make_view, regression_loss

    loss = regression_loss(np.linspace(30, 210, 2000))
    loss["targets"]["var"] = 984.0
    view = lambda lo: make_view(falling(600, 7000, 250), np.full(8, 174.0), diagnostics=healthy_diagnostics(loss=lo))  # noqa: E731
    assert view(loss).targets_variance() == 984.0 and view(loss).outcome_harm() is None  # recorded before output_var
    loss["targets"]["output_var"] = 246.0
    harm = view(loss).outcome_harm()
    assert view(loss).targets_variance() == 246.0 and harm.severity == "warning" and "71%" in harm.summary
