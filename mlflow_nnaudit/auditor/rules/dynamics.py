"""Rules read off the shape of the loss curves: training dynamics."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import LEARNING_RATE, TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num, fmt_step

#: a tail that still brings this share of the whole run's progress is "still improving"
TAIL_SHARE_IMPROVING = 0.10
#: tail window for "still improving": the last 30% of the curve
TAIL_START = 0.7
#: a run that lost less than this share of its starting loss did not learn
NO_LEARNING = 0.05
#: ... and less than this, with an early stall, is stuck on a plateau
PLATEAU_MAX_IMPROVEMENT = 0.30
#: a validation loss whose best is within this share of its start never learned anything
UNRELATED_VAL_GAIN = 0.02
#: Prechelt's generalization loss (%) that makes overfitting worth reporting
OVERFIT_GL = 10.0
#: validation rises shorter than this many evaluations look like early stopping at work
EARLY_STOP_EVALS = 3


def trend_evidence(name: str, curve_key: str, t, steps=None) -> Evidence:
    return Evidence(
        name,
        curve_key,
        {"tau": t.tau, "z": t.z, "p_value": t.p_value, "change": t.change,
         "change_ci90": [t.change_low, t.change_high], "variance_inflation": t.variance_inflation, "n_blocks": t.n},
        steps,
    )


class Diverging(Rule):
    """The training loss climbs back up after its best point: it loses at least half of the
    progress it had made (or grows tenfold), and the climb is a significant upward trend
    (Mann-Kendall with Hamed-Rao correction on the block medians after the best block).
    A validation loss that rises with it confirms the finding."""

    cause = "diverging"

    def evaluate(self, view: RunView) -> Finding | None:
        d = view.divergence(TRAIN_LOSS)
        if d is None or not d.detected:
            return None
        curve = view.curve(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        ev = [
            Evidence("divergence", curve.key, {"start": lv.start, "best": lv.best, "end": lv.end,
                                               "regained_share": d.regained, "growth": d.growth},
                     (d.onset_x, float(curve.x()[-1]))),
            trend_evidence("mann_kendall_after_best", curve.key, d.trend_after_best),
        ]
        vd = view.divergence(VAL_LOSS)
        both = vd is not None and vd.detected
        if both:
            ev.append(Evidence("divergence", view.curve(VAL_LOSS).key, {"regained_share": vd.regained}))
        lr = view.learning_rate()
        advice = f"lower the learning rate{f' from {fmt_num(lr[1])}' if lr else ''} 3-10x or add a warm-up"
        schedule = view.lr_at(d.onset_x)
        if schedule is not None and schedule[1] >= 3 * schedule[0] > 0:
            advice = (f"the learning-rate schedule had raised it from {fmt_num(schedule[0])} to "
                      f"{fmt_num(schedule[1])} by then: cap the schedule 3-10x below that")
            ev.append(Evidence("lr_schedule", view.curve(LEARNING_RATE).key,
                               {"lr_start": schedule[0], "lr_at_onset": schedule[1]}))
        return self.finding(
            # the test behind it, unless an explosion decided it on its own
            p_value=d.trend_after_best.p_value if d.growth < 10 else None,
            confidence="high" if (both or d.growth >= 10) else "medium",
            severity="failed",
            score=min(1.0, 0.5 + 0.1 * min(d.regained, 5)),
            summary=f"the training loss fell to {fmt_num(lv.best)} by step {fmt_step(d.onset_x)}, then climbed to "
            f"{fmt_num(lv.end)} (started at {fmt_num(lv.start)})" + (" and the validation loss rose too" if both else ""),
            recommendation=f"Training diverged after step {fmt_step(d.onset_x)} (loss {fmt_num(lv.best)} -> "
            f"{fmt_num(lv.end)}): {advice}, clip gradients (`torch.nn.utils.clip_grad_norm_`), and keep the "
            "checkpoint from the best step.",
            evidence=ev,
        )


class Overfitting(Rule):
    """The validation loss rises after its best evaluation while the training loss keeps
    falling. Decided with Prechelt's criteria: the generalization loss GL (validation loss
    now vs its best, in %) must exceed 10%, the validation loss must trend upward after its
    best point (autocorrelation-corrected Mann-Kendall) or rise at 3 consecutive evaluations
    (UP_3), and the train/validation gap must grow. A rise of only a few evaluations at the
    end, small in size, is what early stopping produces and is not reported."""

    cause = "overfitting"

    def evaluate(self, view: RunView) -> Finding | None:
        of = view.overfit()
        if of is None or of.gl < OVERFIT_GL:
            return None
        rising = of.val_trend_after_best.direction > 0 or of.up >= 3
        gap_growing = of.gap_trend.direction > 0 or of.gap_trend.change > 0
        train_falling = of.train_trend_after_best.direction <= 0
        if not (rising and gap_growing and train_falling):
            return None
        if of.evals_after_best <= EARLY_STOP_EVALS and of.gl < 2 * OVERFIT_GL:
            return None  # a small rise over the last few evaluations: early stopping's business
        val = view.curve(VAL_LOSS)
        vx = val.x()[val.finite]
        best_step = float(vx[of.best_index])
        ev = [
            Evidence("prechelt", val.key, {"GL_percent": of.gl, "PQ": of.pq, "UP": of.up,
                                           "evals_after_best": of.evals_after_best},
                     (best_step, float(vx[-1]))),
            trend_evidence("mann_kendall_val_after_best", val.key, of.val_trend_after_best),
            trend_evidence("mann_kendall_gap_after_best", val.key, of.gap_trend),
        ]
        return self.finding(
            p_value=of.val_trend_after_best.p_value if of.val_trend_after_best.direction > 0 else None,
            confidence="high" if of.gl >= 50 else "medium",
            severity="warning",
            score=min(1.0, of.gl / 100.0),
            summary=f"validation loss was best at step {fmt_step(best_step)} and ended {of.gl:.0f}% above it while "
            "the training loss kept falling",
            recommendation=f"The model overfits from step {fmt_step(best_step)} on (validation loss ends {of.gl:.0f}% "
            "above its best): keep the best checkpoint or stop early there, and add regularisation (weight decay, "
            "dropout, data augmentation) or more data.",
            evidence=ev,
        )


class NotConverged(Rule):
    """The loss is still falling when training stops: over the last 30% of the run the
    (validation, else training) loss has a significant downward trend (autocorrelation-
    corrected Mann-Kendall) and that stretch still brought at least 10% of the run's total
    progress. A converged curve's tail brings a few percent at most."""

    cause = "not_converged"

    def evaluate(self, view: RunView) -> Finding | None:
        role = VAL_LOSS if view.finite_curve(VAL_LOSS) is not None else TRAIN_LOSS
        curve = view.finite_curve(role)
        if curve is None:
            return None
        div = view.divergence(role)
        if div is not None and div.detected:
            return None
        t = view.trend(role, TAIL_START, 1.0)
        total = view.drop(role, 0.0, 1.0)
        tail = view.drop(role, TAIL_START, 1.0)
        if t is None or total is None or total <= 0 or t.direction >= 0:
            return None
        share = tail / total
        if share < TAIL_SHARE_IMPROVING:
            return None
        name = "validation" if role == VAL_LOSS else "training"
        steps = (float(curve.steps[int(TAIL_START * len(curve.steps))]), float(curve.steps[-1]))
        return self.finding(
            p_value=t.p_value,
            confidence="high" if t.p_value < 1e-3 and share >= 0.2 else "medium",
            severity="warning",
            score=min(1.0, share),
            summary=f"the {name} loss was still falling at the end: the last 30% of the run brought {share:.0%} of "
            "its total improvement",
            recommendation=f"Training stopped while the {name} loss was still improving (the last 30% of steps gave "
            f"{share:.0%} of the total gain): train longer, or keep the learning rate higher for longer before decaying it.",
            evidence=[trend_evidence("mann_kendall_tail", curve.key, t, steps),
                      Evidence("tail_share_of_progress", curve.key, {"tail_drop": tail, "total_drop": total, "share": share})],
        )


class Plateau(Rule):
    """Training (and validation, where logged) loss goes flat early, well above a good loss:
    the curve is flat from some point in the first half on (an equivalence test: the 90%
    interval of the Theil-Sen change over the rest of the run lies within +/-5% of the
    starting loss, and no significant downward trend remains there), and the loss lost less
    than 30% of its starting value before that. A converged run also ends flat, but after a
    large drop, so it is not a plateau."""

    cause = "plateau"

    def evaluate(self, view: RunView) -> Finding | None:
        st = view.stall(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if st is None or lv is None or st.start_fraction is None or st.start_fraction > 0.5 or lv.start <= 0:
            return None
        improvement = (lv.start - st.level) / abs(lv.start)
        if improvement >= PLATEAU_MAX_IMPROVEMENT:
            return None
        tail = view.trend(TRAIN_LOSS, st.start_fraction, 1.0)
        if tail is not None and tail.direction < 0:
            return None  # within tolerance, but still significantly falling: slow, not stuck
        vst = view.stall(VAL_LOSS)
        val_flat = vst is not None and vst.start_fraction is not None
        if view.finite_curve(VAL_LOSS) is not None and not val_flat:
            return None  # validation still moving: not a plateau of both
        curve = view.curve(TRAIN_LOSS)
        no_learning = improvement < NO_LEARNING
        return self.finding(
            confidence="medium" if no_learning else "low",
            severity="failed" if no_learning else "warning",
            score=1.0 - improvement,
            summary=f"the training loss has been flat at {fmt_num(st.level)} since step {fmt_step(st.start_x)} "
            f"({improvement:.0%} below where it started)",
            recommendation=f"Learning stopped at step {fmt_step(st.start_x)} with the loss at {fmt_num(st.level)}, "
            f"only {improvement:.0%} below its start: check that inputs are normalised and labels match inputs, "
            "try a learning rate 10x higher and 10x lower, and check the initialisation and the output layer.",
            evidence=[Evidence("stall", curve.key, {"flat_from_share": st.start_fraction, "level": st.level,
                                                    "start": lv.start, "improvement_share": improvement},
                               (st.start_x, float(curve.x()[-1])))],
        )


class OscillatingLoss(Rule):
    """The loss swings up and down without settling. Two ways to see it in the second half
    of the training curve: a periodic swing whose spectral peak stands far above a red-noise
    (AR(1), phi >= 0) baseline (Bonferroni-corrected p < 0.01) with an amplitude of at least
    10% of the loss level; or swings so large (point-to-point noise at least half the loss
    level) that they exceed everything the run gained."""

    cause = "oscillating_loss"

    def evaluate(self, view: RunView) -> Finding | None:
        osc = view.oscillation(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if osc is None or lv is None:
            return None
        level = max(abs(lv.end), 1e-12)
        periodic = osc.detected and osc.amplitude >= 0.10 * level
        gained = lv.start - lv.end
        erratic = lv.noise >= 0.5 * level and lv.noise >= gained
        if not (periodic or erratic):
            return None
        curve = view.curve(TRAIN_LOSS)
        what = (f"a periodic swing of +/-{fmt_num(osc.amplitude)} every ~{osc.period:.0f} points"
                if periodic else f"point-to-point swings of {fmt_num(lv.noise)} around a level of {fmt_num(lv.end)}")
        lr = view.learning_rate()
        lr_text = f" (now {fmt_num(lr[1])})" if lr else ""
        return self.finding(
            p_value=osc.p_value if periodic else None,
            confidence="medium" if periodic and erratic else "low",
            severity="warning",
            score=min(1.0, lv.noise / level) if erratic else min(1.0, osc.amplitude / level),
            summary=f"the training loss oscillates: {what}",
            recommendation=f"The loss oscillates ({what}): lower the learning rate{lr_text} 2-5x or use a decaying "
            "schedule, increase the batch size, and make sure the data is shuffled every epoch.",
            evidence=[Evidence("oscillation_vs_red_noise", curve.key,
                               {"period_points": osc.period, "power_ratio": osc.power_ratio, "p_value": osc.p_value,
                                "amplitude": osc.amplitude, "ar1_phi": osc.phi}),
                      Evidence("noise_vs_level", curve.key, {"noise": lv.noise, "level": lv.end, "gained": gained})],
        )


class LabelsUnrelated(Rule):
    """The training loss falls a long way (at least 50% of its start) while the validation loss
    never gets meaningfully better than where it started (its best is within 2% of its first
    value): the model memorises the training set and learns nothing that carries over, as
    happens with shuffled, noisy or mispaired labels."""

    cause = "labels_unrelated"
    explained_by = ("class_imbalance", "train_val_preprocessing_mismatch")

    def evaluate(self, view: RunView) -> Finding | None:
        tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
        if tr is None or va is None or tr.start <= 0 or va.start <= 0:
            return None
        train_gain = (tr.start - tr.end) / tr.start
        val_gain = (va.start - va.best) / va.start
        if train_gain < 0.5 or val_gain > UNRELATED_VAL_GAIN:
            return None
        return self.finding(
            confidence="medium",
            severity="failed",
            score=min(1.0, train_gain),
            summary=f"the training loss fell {train_gain:.0%} while the validation loss never improved on its start "
            f"(best {val_gain:.0%} below it)",
            recommendation="The model memorises the training set but learns nothing that generalises: check that "
            "labels match their inputs (shuffle inputs and labels together, check the join/pairing code), look at a "
            "few labelled samples by hand, and check that validation uses the same label mapping.",
            evidence=[Evidence("train_vs_val_progress", view.curve(VAL_LOSS).key,
                               {"train_gain": train_gain, "val_best_gain": val_gain})],
        )


class DatasetSuspect(Rule):
    """The validation loss falls significantly (at least 20%) while the training loss stays
    flat (within 5% of its start, no significant downward trend): the two splits do not come
    from the same data, or the curves were logged under swapped names."""

    cause = "dataset_suspect"

    def evaluate(self, view: RunView) -> Finding | None:
        tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
        trend = view.trend(TRAIN_LOSS)
        if tr is None or va is None or tr.start <= 0 or va.start <= 0 or trend is None:
            return None
        train_gain = (tr.start - tr.end) / tr.start
        val_gain = (va.start - va.end) / va.start
        if abs(train_gain) > 0.05 or trend.direction < 0 or val_gain < 0.2:
            return None
        return self.finding(
            confidence="medium",
            severity="failed",
            score=val_gain,
            summary=f"the validation loss fell {val_gain:.0%} while the training loss stayed flat",
            recommendation="The validation loss improves while the training loss does not: check that the curves are "
            "not logged under swapped names, that the training data is not corrupted (labels, augmentation), and "
            "that training and validation come from the same source.",
            evidence=[Evidence("train_vs_val_progress", view.curve(VAL_LOSS).key,
                               {"train_gain": train_gain, "val_gain": val_gain})],
        )


class LossMetricDisagreement(Rule):
    """The loss improves significantly while the task metric does not: accuracy (validation,
    else training) shows no significant upward trend (autocorrelation-corrected Mann-Kendall)
    and changes by less than 1 percentage point, while the matching loss falls by at least
    10%."""

    cause = "loss_metric_disagreement"

    def evaluate(self, view: RunView) -> Finding | None:
        for acc_role, loss_role in ((VAL_ACC, VAL_LOSS), (TRAIN_ACC, TRAIN_LOSS)):
            acc, loss = view.levels(acc_role), view.levels(loss_role)
            acc_trend = view.trend(acc_role)
            if acc is None or loss is None or acc_trend is None or loss.start <= 0:
                continue
            loss_gain = (loss.start - loss.end) / loss.start
            scale = 100.0 if max(acc.start, acc.end) > 1.5 else 1.0  # percent or fraction
            acc_change = (acc.end - acc.start) / scale
            if loss_gain < 0.1 or acc_trend.direction > 0 or acc_change > 0.01:
                return None
            return self.finding(
                confidence="medium",
                severity="warning",
                score=loss_gain,
                summary=f"the loss fell {loss_gain:.0%} while {view.curve(acc_role).key} did not improve "
                f"({fmt_num(acc.start)} -> {fmt_num(acc.end)})",
                recommendation="The loss improves but the accuracy does not: check that the metric is computed on "
                "the same outputs and labels as the loss (argmax over the right dimension, same label mapping), "
                "and that the loss measures what you care about (class weights, label smoothing, thresholds).",
                evidence=[Evidence("loss_vs_metric", view.curve(acc_role).key,
                                   {"loss_gain": loss_gain, "metric_start": acc.start, "metric_end": acc.end})],
            )
        return None
